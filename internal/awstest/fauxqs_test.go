package awstest_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awstest"
)

func TestStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := awstest.Start(ctx)
	if err != nil {
		if os.Getenv("FACEFLEET_REQUIRE_DEPS") == "1" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %s is not loopback", s.Endpoint)
	}
	c, err := s.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	q, err := awstest.CreateQueue(ctx, c.SQS(), awstest.QueueSpec{Name: awstest.Unique(t, "selftest"), MaxReceives: 2})
	if err != nil {
		t.Fatal(err)
	}
	if q.URL == "" || q.DLQURL == "" || !strings.Contains(q.DLQARN, "selftest") {
		t.Fatalf("queue %+v; want URLs and the DLQ's ARN", q)
	}
	if err := awstest.CreateBucket(ctx, c.S3(), awstest.Unique(t, "selftest")); err != nil {
		t.Fatal(err)
	}
	if logs := s.Logs(); strings.Contains(logs, "incoming request") {
		t.Errorf("fauxqs logs every request (logger not off):\n%.500s", logs)
	}
	s.Stop()
	if _, err := http.Get(s.Endpoint + "/health"); err == nil {
		t.Fatal("fauxqs still answers after Stop")
	}
}
