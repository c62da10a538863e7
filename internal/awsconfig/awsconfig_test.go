package awsconfig_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/facefleet/facefleet/internal/awsconfig"
)

type recorder struct {
	mu   sync.Mutex
	seen []string // host + path of each request
}

func (r *recorder) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.seen = append(r.seen, req.Host+req.URL.Path)
		r.mu.Unlock()
		http.Error(w, "recorded", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func noCreds(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
}

// TestServiceEndpointEnv checks that this SDK version honours
// AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_S3 and that the flags override them.
func TestServiceEndpointEnv(t *testing.T) {
	noCreds(t)
	var viaEnv, viaFlag recorder
	envSrv, flagSrv := viaEnv.server(t), viaFlag.server(t)
	t.Setenv("AWS_ENDPOINT_URL_SQS", envSrv.URL)
	t.Setenv("AWS_ENDPOINT_URL_S3", envSrv.URL)
	t.Setenv("AWS_REGION", "eu-west-1")
	ctx := context.Background()

	c, err := awsconfig.Load(ctx, awsconfig.Options{S3PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String("http://sqs.eu-west-1.localhost/0/q")})
	_, _ = c.S3().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
	if viaEnv.count() != 2 {
		t.Fatalf("env endpoints got %d requests (%v); want SQS and S3", viaEnv.count(), viaEnv.seen)
	}
	if got := viaEnv.seen[1]; got != envSrv.Listener.Addr().String()+"/bkt/k" {
		t.Fatalf("S3 request went to %q; want path-style on the env endpoint", got)
	}

	c, err = awsconfig.Load(ctx, awsconfig.Options{SQSEndpoint: flagSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.SQS().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String("http://x/0/q")})
	if viaFlag.count() != 1 || viaEnv.count() != 2 {
		t.Fatalf("flag endpoint got %d, env %d; the flag must win", viaFlag.count(), viaEnv.count())
	}
}

func TestLoadValidates(t *testing.T) {
	noCreds(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	ctx := context.Background()
	if _, err := awsconfig.Load(ctx, awsconfig.Options{Region: "us-east-1", SQSEndpoint: "127.0.0.1:4566"}); err == nil {
		t.Error("an endpoint without a scheme was accepted")
	}
	if _, err := awsconfig.Load(ctx, awsconfig.Options{}); err == nil {
		t.Error("a missing region was accepted")
	}
}
