// Package ec2fleet is the fleet port on Amazon EC2 (aws-sdk-go-v2): the pool is
// every non-terminated instance carrying a tag (TagKey=TagValue); new instances come
// from a launch template and carry the tag. It passes fleettest against the fake
// EC2 endpoint in fakeec2.
package ec2fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/facefleet/facefleet/internal/fleet"
)

// ErrThrottled wraps EC2's RequestLimitExceeded (after the SDK's own retries): the
// caller should back off and try again next tick, not count it as capacity.
var ErrThrottled = errors.New("ec2fleet: EC2 API request rate exceeded")

// Options configure the pool.
type Options struct {
	// LaunchTemplateID is the template new instances are launched from (required
	// for Launch).
	LaunchTemplateID string
	// LaunchTemplateVersion defaults to "$Default".
	LaunchTemplateVersion string
	// TagKey and TagValue mark the pool's instances (required).
	TagKey, TagValue string
	// Max caps the pool's non-terminated instances (required, > 0); Launch never
	// goes above it.
	Max int
}

// Fleet is the EC2-backed pool.
type Fleet struct {
	client *ec2.Client
	opts   Options
}

var _ fleet.Fleet = (*Fleet)(nil)

// New validates opts and returns the fleet.
func New(client *ec2.Client, opts Options) (*Fleet, error) {
	if client == nil {
		return nil, errors.New("ec2fleet: nil EC2 client")
	}
	if opts.TagKey == "" || opts.TagValue == "" {
		return nil, errors.New("ec2fleet: TagKey and TagValue are required to tell the pool's instances apart")
	}
	if opts.Max <= 0 {
		return nil, fmt.Errorf("ec2fleet: Max %d must be positive", opts.Max)
	}
	if opts.LaunchTemplateVersion == "" {
		opts.LaunchTemplateVersion = "$Default"
	}
	return &Fleet{client: client, opts: opts}, nil
}

// poolStates are the states that count towards the pool (and the cap).
var poolStates = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

func (f *Fleet) describe(ctx context.Context, ids []string) ([]fleet.Instance, error) {
	in := &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + f.opts.TagKey), Values: []string{f.opts.TagValue}},
		{Name: aws.String("instance-state-name"), Values: poolStates},
	}}
	if len(ids) > 0 {
		in.InstanceIds = ids
	} else {
		in.MaxResults = aws.Int32(1000)
	}
	var res []fleet.Instance
	p := ec2.NewDescribeInstancesPaginator(f.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("describe instances", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				res = append(res, toInstance(i))
			}
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].ID < res[j].ID })
	return res, nil
}

// List returns the pool.
func (f *Fleet) List(ctx context.Context) ([]fleet.Instance, error) { return f.describe(ctx, nil) }

// transitionTime reads EC2's "User initiated (2006-01-02 15:04:05 GMT)".
var transitionTime = regexp.MustCompile(`\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) GMT\)`)

func toInstance(i types.Instance) fleet.Instance {
	in := fleet.Instance{ID: aws.ToString(i.InstanceId), Since: aws.ToTime(i.LaunchTime)}
	if i.State != nil {
		in.State = fleet.State(i.State.Name)
	}
	if in.State == "shutting-down" {
		in.State = fleet.Stopping
	}
	if in.State == fleet.Stopping || in.State == fleet.Stopped {
		if m := transitionTime.FindStringSubmatch(aws.ToString(i.StateTransitionReason)); m != nil {
			if t, err := time.Parse("2006-01-02 15:04:05", m[1]); err == nil {
				in.Since = t
			}
		}
	}
	return in
}

// checkPool fails with fleet.ErrNotFound unless every id is in the pool, so Start
// and Stop never touch an instance the pool does not own.
func (f *Fleet) checkPool(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return errors.New("ec2fleet: no instance ids given")
	}
	got, err := f.describe(ctx, ids)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(got))
	for _, in := range got {
		have[in.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ec2fleet: %s not in the pool tagged %s=%s: %w", strings.Join(missing, ", "), f.opts.TagKey, f.opts.TagValue, fleet.ErrNotFound)
	}
	return nil
}

// Start starts stopped instances of the pool.
func (f *Fleet) Start(ctx context.Context, ids ...string) error {
	if err := f.checkPool(ctx, ids); err != nil {
		return err
	}
	if _, err := f.client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids}); err != nil {
		return wrap("start "+strings.Join(ids, ","), err)
	}
	return nil
}

// Retire implements scaling.Retirer: stop after the current job. StopInstances
// shuts the OS down normally; systemd sends the worker SIGTERM and waits up to
// TimeoutStopSec (the template's DrainSeconds) while it finishes the image in hand,
// answers and acknowledges it, so Retire is Stop.
func (f *Fleet) Retire(ctx context.Context, ids ...string) error { return f.Stop(ctx, ids...) }

// Stop stops running or pending instances of the pool.
func (f *Fleet) Stop(ctx context.Context, ids ...string) error {
	if err := f.checkPool(ctx, ids); err != nil {
		return err
	}
	if _, err := f.client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
		return wrap("stop "+strings.Join(ids, ","), err)
	}
	return nil
}

// Launch runs n new instances from the launch template, all or none, and fails
// with fleet.ErrCapacity (launching nothing) when that would take the pool above Max.
func (f *Fleet) Launch(ctx context.Context, n int) ([]fleet.Instance, error) {
	if n <= 0 {
		return nil, fmt.Errorf("ec2fleet: launch count %d must be positive", n)
	}
	if f.opts.LaunchTemplateID == "" {
		return nil, errors.New("ec2fleet: no LaunchTemplateID configured, cannot launch instances")
	}
	pool, err := f.List(ctx)
	if err != nil {
		return nil, err
	}
	if len(pool)+n > f.opts.Max {
		return nil, fmt.Errorf("ec2fleet: launching %d would make the pool %d, above its cap of %d: %w", n, len(pool)+n, f.opts.Max, fleet.ErrCapacity)
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	out, err := f.client.RunInstances(ctx, &ec2.RunInstancesInput{
		MinCount: aws.Int32(int32(n)),
		MaxCount: aws.Int32(int32(n)),
		LaunchTemplate: &types.LaunchTemplateSpecification{
			LaunchTemplateId: aws.String(f.opts.LaunchTemplateID),
			Version:          aws.String(f.opts.LaunchTemplateVersion),
		},
		// Tag the volumes in the request too: the scaler's policy allows
		// RunInstances on volume/* only with this request tag (a launch
		// template's tags are not request tags).
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance,
			Tags:         []types.Tag{{Key: aws.String(f.opts.TagKey), Value: aws.String(f.opts.TagValue)}},
		}, {
			ResourceType: types.ResourceTypeVolume,
			Tags:         []types.Tag{{Key: aws.String(f.opts.TagKey), Value: aws.String(f.opts.TagValue)}},
		}},
		// A client token makes the SDK's retries of this call idempotent.
		ClientToken: aws.String(hex.EncodeToString(tok[:])),
	})
	if err != nil {
		return nil, wrap(fmt.Sprintf("run %d instances from %s", n, f.opts.LaunchTemplateID), err)
	}
	res := make([]fleet.Instance, 0, len(out.Instances))
	for _, i := range out.Instances {
		res = append(res, toInstance(i))
	}
	return res, nil
}

// wrap maps EC2 error codes onto the fleet errors with an actionable message.
func wrap(op string, err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("ec2fleet: %s: %w", op, err)
	}
	switch code := apiErr.ErrorCode(); {
	case code == "InsufficientInstanceCapacity" || code == "InstanceLimitExceeded" || code == "VcpuLimitExceeded":
		return fmt.Errorf("ec2fleet: %s: EC2 has no capacity for the request (%s: %s); retry later or try another instance type/zone: %w",
			op, code, apiErr.ErrorMessage(), fleet.ErrCapacity)
	case code == "RequestLimitExceeded" || code == "Throttling" || code == "ThrottlingException":
		return fmt.Errorf("ec2fleet: %s: throttled by EC2 (%s), back off: %w", op, code, ErrThrottled)
	case code == "IncorrectInstanceState" || code == "IncorrectState":
		return fmt.Errorf("ec2fleet: %s: %s: %w", op, apiErr.ErrorMessage(), fleet.ErrIncorrectState)
	case strings.HasPrefix(code, "InvalidInstanceID"):
		return fmt.Errorf("ec2fleet: %s: %s (%s): %w", op, apiErr.ErrorMessage(), code, fleet.ErrNotFound)
	}
	return fmt.Errorf("ec2fleet: %s: %w", op, err)
}
