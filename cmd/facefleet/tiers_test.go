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
		{"webtier without queues", runWebtier, nil, "-request-queue-url (env FACEFLEET_REQUEST_QUEUE_URL) is required"},
		{"webtier without buckets", runWebtier, nil, "-output-bucket (env FACEFLEET_OUTPUT_BUCKET) is required"},
		{"apptier without queues", runApptier, []string{"-self-stop", "none"}, "-response-queue-url (env FACEFLEET_RESPONSE_QUEUE_URL) is required"},
		{"apptier bad self-stop", runApptier, append([]string{"-self-stop", "reboot"}, full...), `-self-stop "reboot": must be`},
		{"apptier exec without a command", runApptier, append([]string{"-self-stop", "exec:"}, full...), "must be ec2, none or exec:CMD"},
		{"apptier too few workers", runApptier, append([]string{"-workers", "0"}, full...), `-workers "0": out of range in 1 .. 64`},
		{"webtier bad endpoint", runWebtier, append([]string{"-sqs-endpoint", "127.0.0.1:4566"}, full...), "must be an absolute URL"},
		{"bad log level", runWebtier, append([]string{"-log-level", "loud"}, full...), `-log-level "loud": must be one of`},
		{"webtier tag key without value", runWebtier, append([]string{"-app-tag-key", "tier"}, full...), "set both"},
		{"webtier old tag flag", runWebtier, append([]string{"-fleet-tag-key", "tier"}, full...), "set both"},
		{"webtier max pixels", runWebtier, append([]string{"-max-pixels", "0"}, full...), `-max-pixels "0": out of range`},
		{"up bad limits", runUp, []string{"-max-body", "10", "-policy", "fastest"}, `-max-body "10": out of range`},
		{"up bad policy", runUp, []string{"-max-body", "10", "-policy", "fastest"}, `-policy "fastest": must be one of`},
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
