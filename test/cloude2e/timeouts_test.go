package cloude2e_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/testenv"
)

// The tiers take the request queue's visibility timeout and redrive count from
// the queue itself and refuse flags that disagree with it, and the web tier
// refuses a request timeout shorter than a crash-looping request's trip to the
// dead-letter queue (which would answer 504 where 502 is documented).
func TestTiersTakeTheirTimeoutsFromTheQueue(t *testing.T) {
	s := awstest.Need(t, faux)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clients, err := s.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reqQ, err := awstest.CreateQueue(ctx, clients.SQS(), awstest.QueueSpec{Name: awstest.Unique(t, "requests"), VisibilityTimeout: 10 * time.Second, MaxReceives: 3})
	if err != nil {
		t.Fatal(err)
	}
	respQ, err := awstest.CreateQueue(ctx, clients.SQS(), awstest.QueueSpec{Name: awstest.Unique(t, "responses")})
	if err != nil {
		t.Fatal(err)
	}
	bucket := awstest.Unique(t, "data")
	if err := awstest.CreateBucket(ctx, clients.S3(), bucket); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), s.Env()...)
	env = append(env, "FACEFLEET_S3_PATH_STYLE=1",
		"FACEFLEET_REQUEST_QUEUE_URL="+reqQ.URL, "FACEFLEET_RESPONSE_QUEUE_URL="+respQ.URL, "FACEFLEET_REQUEST_DLQ_URL="+reqQ.DLQURL,
		"FACEFLEET_INPUT_BUCKET="+bucket, "FACEFLEET_OUTPUT_BUCKET="+bucket,
		// No engine is needed: every case fails before it loads.
		"FACEFLEET_MODELS=/nonexistent", "FACEFLEET_ORT_LIB=/nonexistent")
	bin := testenv.Facefleet(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"worker visibility flag disagrees", []string{"apptier", "-self-stop", "none", "-instance-id", "i-1", "-visibility-timeout", "30s"}, "has 10s"},
		{"worker takes the queue's visibility", []string{"apptier", "-self-stop", "none", "-instance-id", "i-1"}, "/nonexistent"},
		{"max receives flag disagrees", []string{"webtier", "-host", "127.0.0.1", "-port", "0", "-max-receives", "5"}, "redrives after 3"},
		{"request timeout too short", []string{"webtier", "-host", "127.0.0.1", "-port", "0", "-poll-wait", "1s", "-request-timeout", "30s"}, "shorter than 36s = max receives 3 × visibility 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%v: %v\n%s\nwant a failure saying %q", tc.args, err, out, tc.want)
			}
		})
	}
}
