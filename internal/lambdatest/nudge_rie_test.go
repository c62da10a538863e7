package lambdatest

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/facefleet/facefleet/internal/scalernudge"
)

// TestWebTierNudgeStartsAWorker: the web tier's nudger, with the real SDK Lambda
// client, invokes the real scaler bootstrap through the Invoke API that the
// Runtime Interface Emulator serves. The queue still reads 0 (the approximate
// count lags) and the fleet has one stopped instance: only the nudge flag can
// make the policy start it. RIE runs an InvocationType Event invoke
// synchronously and answers 200 (Lambda queues it and answers 202); the request
// the SDK sends is checked against an HTTP endpoint in internal/scalernudge.
func TestWebTierNudgeStartsAWorker(t *testing.T) {
	e := startScaler(t, "stopped")
	e.sqs.set(0, false)
	client := lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(strings.TrimSuffix(e.fn.URL, InvokePath)),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	n, err := scalernudge.New(scalernudge.Options{Function: "function", Invoker: client, MinGap: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for range 50 { // a burst: one invoke
		n.Nudge()
	}
	n.Wait()
	if s := n.Stats(); s.Invoked != 1 || s.Failed != 0 || s.Suppressed != 49 {
		t.Fatalf("nudger stats %+v, want one invoke for the burst\n%s", s, e.fn.Logs())
	}
	actions, _ := e.ec2.snapshot()
	if len(actions) != 1 || !strings.HasPrefix(actions[0], "StartInstances i-") {
		t.Errorf("EC2 actions %v, want the stopped instance started by the nudge\n%s", actions, e.fn.Logs())
	}
	if !strings.Contains(e.fn.Logs(), `"trigger":"nudge"`) {
		t.Errorf("the function's log shows no nudge step:\n%s", e.fn.Logs())
	}
}
