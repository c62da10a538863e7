package ec2fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// maxIDLen bounds what InstanceID accepts from the metadata service.
const maxIDLen = 64

// InstanceID reads this instance's id from the instance metadata service (IMDSv2:
// the client fetches a session token first). endpoint "" uses the SDK's default
// (169.254.169.254 or AWS_EC2_METADATA_SERVICE_ENDPOINT).
func InstanceID(ctx context.Context, endpoint string) (string, error) {
	c := imds.New(imds.Options{Endpoint: endpoint})
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		return "", fmt.Errorf("ec2fleet: read instance-id from IMDSv2 (is this an EC2 instance? pass -instance-id otherwise): %w", err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, maxIDLen+1))
	if err != nil {
		return "", fmt.Errorf("ec2fleet: read instance-id from IMDSv2: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !strings.HasPrefix(id, "i-") || len(id) > maxIDLen {
		return "", fmt.Errorf("ec2fleet: IMDS returned %q, not an instance id", id)
	}
	return id, nil
}

// StopSelf asks EC2 to stop instance id (the caller's own instance, so no pool
// check): the app tier calls it when it has been idle, and the fleet shrinks
// without the scaler's help.
func StopSelf(ctx context.Context, client *ec2.Client, id string) error {
	if client == nil {
		return errors.New("ec2fleet: nil EC2 client")
	}
	if id == "" {
		return errors.New("ec2fleet: empty instance id")
	}
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		return wrap("stop self "+id, err)
	}
	return nil
}
