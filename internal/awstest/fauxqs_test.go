package awstest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/facefleet/facefleet/internal/awstest"
)

func TestStartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := awstest.StartForTest(t)
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
	// SQS counts visibility in whole seconds: a sub-second spec rounds up, never
	// down to 0 (messages visible again at once).
	short, err := awstest.CreateQueue(ctx, c.SQS(), awstest.QueueSpec{Name: awstest.Unique(t, "selftest"), VisibilityTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := c.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: &short.URL, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := attrs.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)]; v != "1" {
		t.Errorf("VisibilityTimeout of a 500 ms spec = %q; want \"1\"", v)
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
