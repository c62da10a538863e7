package service_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/service"
)

// A worker or web tier resolves reply-to addresses only to queues of its own
// SQS endpoint and account.
func TestReplyQueuesStayInTheAccount(t *testing.T) {
	c := &awsconfig.Clients{Config: aws.Config{Region: "us-east-1"}}
	req, _ := sqsqueue.New(c.SQS(), "https://sqs.us-east-1.amazonaws.com/123456789012/req", sqsqueue.Options{})
	resp, _ := sqsqueue.New(c.SQS(), "https://sqs.us-east-1.amazonaws.com/123456789012/resp", sqsqueue.Options{})
	resolve := service.ReplyQueues(c, req, resp)
	for _, ok := range []string{resp.URL(), "https://sqs.us-east-1.amazonaws.com/123456789012/resp-2"} {
		if q, err := resolve(ok); err != nil || q == nil {
			t.Errorf("resolve(%q) = %v, %v", ok, q, err)
		}
	}
	for _, bad := range []string{"https://sqs.eu-west-1.amazonaws.com/123456789012/resp", "https://sqs.us-east-1.amazonaws.com/999999999999/resp",
		"http://sqs.us-east-1.amazonaws.com/123456789012/resp", "https://evil.example/123456789012/resp", "https://sqs.us-east-1.amazonaws.com/123456789012/resp?x=1", "::"} {
		if _, err := resolve(bad); err == nil {
			t.Errorf("resolve(%q) accepted", bad)
		}
	}
}
