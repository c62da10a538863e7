package fakeec2_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet/fakeec2"
)

func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	res, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestWire checks the raw query protocol: EC2's XML namespace and error shape.
func TestWire(t *testing.T) {
	s := fakeec2.New(fakeec2.Options{})
	defer s.Close()
	code, body := post(t, s.URL, url.Values{"Action": {"DescribeInstances"}, "Version": {"2016-11-15"}})
	if code != 200 || !strings.Contains(body, `xmlns="`+fakeec2.Namespace+`"`) {
		t.Fatalf("DescribeInstances = %d %s", code, body)
	}
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"Action": {"TerminateEverything"}}, "<Code>InvalidAction</Code>"},
		{url.Values{"Action": {"DescribeInstances"}, "Filter.1.Name": {"vpc-id"}, "Filter.1.Value.1": {"x"}}, "<Code>InvalidParameterValue</Code>"},
		{url.Values{"Action": {"StopInstances"}, "InstanceId.1": {"i-0123456789abcdef0"}}, "<Code>InvalidInstanceID.NotFound</Code>"},
		{url.Values{"Action": {"StartInstances"}, "InstanceId.1": {"bogus"}}, "<Code>InvalidInstanceID.Malformed</Code>"},
		{url.Values{"Action": {"RunInstances"}, "MinCount": {"1"}, "MaxCount": {"1"}}, "<Code>MissingParameter</Code>"},
	} {
		code, body := post(t, s.URL, tc.form)
		if code < 400 || !strings.Contains(body, tc.want) || !strings.Contains(body, "<Response><Errors><Error>") {
			t.Errorf("%v = %d %s; want an EC2 error with %s", tc.form, code, body, tc.want)
		}
	}
}

// TestSDK drives the fake with the real SDK: idempotent RunInstances by client
// token, transitions, hooks and CreateTags.
func TestSDK(t *testing.T) {
	running := make(chan string, 4)
	s := fakeec2.New(fakeec2.Options{PendingDelay: 20 * time.Millisecond, OnRunning: func(id string) { running <- id }})
	defer s.Close()
	c := ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: aws.AnonymousCredentials{}, HTTPClient: awsconfig.NewHTTPClient()})
	ctx := context.Background()
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(2), MaxCount: aws.Int32(2), ClientToken: aws.String("tok-1"),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String("lt-0abc")},
	}
	a, err := c.RunInstances(ctx, in)
	if err != nil || len(a.Instances) != 2 {
		t.Fatalf("RunInstances = %v, %v", a, err)
	}
	b, err := c.RunInstances(ctx, in)
	if err != nil || len(b.Instances) != 2 || *b.Instances[0].InstanceId != *a.Instances[0].InstanceId {
		t.Fatalf("a retried RunInstances with the same client token launched again: %v, %v", b, err)
	}
	if got := len(s.Instances()); got != 2 {
		t.Fatalf("%d instances; want 2", got)
	}
	for range 2 {
		select {
		case <-running:
		case <-time.After(5 * time.Second):
			t.Fatal("OnRunning not called")
		}
	}
	id := *a.Instances[0].InstanceId
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("role"), Value: aws.String("app")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("tag:role"), Values: []string{"app"}}}})
	if err != nil || len(out.Reservations) != 1 || *out.Reservations[0].Instances[0].InstanceId != id || out.Reservations[0].Instances[0].State.Name != types.InstanceStateNameRunning {
		t.Fatalf("DescribeInstances(tag:role=app) = %+v, %v; want %s running", out, err, id)
	}
	st, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{})
	if err != nil || len(st.InstanceStatuses) != 2 {
		t.Fatalf("DescribeInstanceStatus = %+v, %v; want 2 running", st, err)
	}
}
