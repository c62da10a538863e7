package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// The tiers refuse bad configuration with a clear error before touching AWS.
func TestTierFlagErrors(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, name := range []string{"FACEFLEET_REQUEST_QUEUE_URL", "FACEFLEET_RESPONSE_QUEUE_URL", "FACEFLEET_INPUT_BUCKET", "FACEFLEET_OUTPUT_BUCKET", "FACEFLEET_INSTANCE_ID", "FACEFLEET_APP_TAG_KEY", "FACEFLEET_APP_TAG_VALUE"} {
		t.Setenv(name, "")
	}
	full := []string{"-request-queue-url", "http://127.0.0.1:1/0/req", "-response-queue-url", "http://127.0.0.1:1/0/resp",
		"-input-bucket", "in", "-output-bucket", "out", "-aws-region", "us-east-1"}
	cases := []struct {
		name string
		run  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
		want string
	}{
		{"webtier without queues", runWebtier, nil, "missing [-request-queue-url -response-queue-url -input-bucket -output-bucket]"},
		{"apptier without queues", runApptier, []string{"-self-stop", "none"}, "missing [-request-queue-url"},
		{"apptier bad self-stop", runApptier, append([]string{"-self-stop", "reboot"}, full...), `-self-stop "reboot" must be`},
		{"apptier exec without a command", runApptier, append([]string{"-self-stop", "exec:"}, full...), "must be ec2, none or exec:CMD"},
		{"apptier too many workers", runApptier, append([]string{"-workers", "0"}, full...), "-workers 0 must be 1..64"},
		{"webtier bad endpoint", runWebtier, append([]string{"-sqs-endpoint", "127.0.0.1:4566"}, full...), "not an absolute URL"},
		{"bad log level", runWebtier, append([]string{"-log-level", "loud"}, full...), "-log-level"},
		{"webtier fleet tag key without value", runWebtier, append([]string{"-fleet-tag-key", "tier"}, full...), "set both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := c.run(context.Background(), c.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v; want one containing %q", err, c.want)
			}
		})
	}
}
