package template_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/testenv"
)

// teardownStack is a stand-in for the facefleet stack with the resources
// deploy/teardown.sh touches, under their logical ids (moto's CloudFormation
// cannot run the SAM transform, and needs no launch templates or instances for
// this).
const teardownStack = `Resources:
  InputBucket: {Type: AWS::S3::Bucket}
  OutputBucket: {Type: AWS::S3::Bucket}
  ArtifactsBucket:
    Type: AWS::S3::Bucket
    Properties: {VersioningConfiguration: {Status: Enabled}}
  ScalerRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: "sts:AssumeRole"}]}
  ScalerFunction:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Timeout: 2
      Role: !GetAtt ScalerRole.Arn
      Code: {ZipFile: "def handler(e, c): return 1"}
`

// TestTeardownAgainstMoto runs deploy/teardown.sh with the real AWS CLI against
// moto_server: app instances (and only they) end terminated, the versioned
// artefacts bucket with old versions is emptied, and the stack is deleted. It
// takes minutes on a busy machine (every CLI call starts Python), so it runs
// from `make teardown-check` (FACEFLEET_TEARDOWN_MOTO=1), not in `make test`,
// where TestTeardownOrder checks the same script's calls with a stub.
//
// What moto does not model here: the Lambda never runs (so the wait for a
// running invocation is not exercised against a live one), and instances
// terminate at once.
func TestTeardownAgainstMoto(t *testing.T) {
	if os.Getenv("FACEFLEET_TEARDOWN_MOTO") != "1" {
		t.Skip("skipping: run with `make teardown-check` (FACEFLEET_TEARDOWN_MOTO=1); it takes minutes")
	}
	awsCLI := testenv.Tool(t, "aws", "install the AWS CLI v2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	m, err := awstest.StartMotoOpen(ctx)
	cancel()
	if err != nil {
		testenv.Missing(t, "moto_server: %v", err)
	}
	t.Cleanup(m.Stop)
	endpoint := m.Endpoint
	home := t.TempDir()
	// Never the caller's AWS settings: only moto, with dummy keys.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_ENDPOINT_URL="+endpoint, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"), "AWS_PAGER=")
	aws := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, awsCLI, args...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("aws %v: %v\n%s%s", args, err, out, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	tplFile := filepath.Join(home, "stack.yaml")
	if err := os.WriteFile(tplFile, []byte(teardownStack), 0o644); err != nil {
		t.Fatal(err)
	}
	const stack = "ff-teardown"
	aws("cloudformation", "create-stack", "--stack-name", stack, "--template-body", "file://"+tplFile, "--capabilities", "CAPABILITY_IAM")
	aws("cloudformation", "wait", "stack-create-complete", "--stack-name", stack)
	phys := func(logical string) string {
		return aws("cloudformation", "describe-stack-resource", "--stack-name", stack, "--logical-resource-id", logical,
			"--query", "StackResourceDetail.PhysicalResourceId", "--output", "text")
	}
	art, in := phys("ArtifactsBucket"), phys("InputBucket")
	obj := filepath.Join(home, "obj")
	if err := os.WriteFile(obj, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // three versions of one key, then a delete marker
		aws("s3", "cp", "--only-show-errors", obj, "s3://"+art+"/facefleet/bin/facefleet-linux-amd64")
	}
	aws("s3", "rm", "--only-show-errors", "s3://"+art+"/facefleet/bin/facefleet-linux-amd64")
	aws("s3", "cp", "--only-show-errors", obj, "s3://"+art+"/facefleet/models/a.onnx")
	aws("s3", "cp", "--only-show-errors", obj, "s3://"+in+"/upload.jpg")
	ami := aws("ec2", "describe-images", "--owners", "amazon", "--query", "Images[0].ImageId", "--output", "text")
	app := strings.Fields(aws("ec2", "run-instances", "--image-id", ami, "--count", "2",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=facefleet-app,Value="+stack+"}]",
		"--query", "Instances[].InstanceId", "--output", "text"))
	other := aws("ec2", "run-instances", "--image-id", ami, "--count", "1",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=facefleet-app,Value=another-stack}]",
		"--query", "Instances[0].InstanceId", "--output", "text")

	cmd := exec.Command(filepath.Join(root(), "deploy", "teardown.sh"), stack)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("teardown.sh: %v\n%s", err, out)
	}
	t.Logf("teardown.sh:\n%s", out)
	for _, id := range app {
		if s := aws("ec2", "describe-instances", "--instance-ids", id, "--query", "Reservations[0].Instances[0].State.Name", "--output", "text"); s != "terminated" {
			t.Errorf("app instance %s is %s", id, s)
		}
	}
	if s := aws("ec2", "describe-instances", "--instance-ids", other, "--query", "Reservations[0].Instances[0].State.Name", "--output", "text"); s != "running" {
		t.Errorf("another stack's instance %s is %s", other, s)
	}
	if s := aws("cloudformation", "list-stacks", "--query", "StackSummaries[?StackName=='"+stack+"'].StackStatus", "--output", "text"); s != "DELETE_COMPLETE" {
		t.Errorf("stack status %q, want DELETE_COMPLETE", s)
	}
	if b := aws("s3api", "list-buckets", "--query", "Buckets[].Name", "--output", "text"); strings.Contains(b, art) || strings.Contains(b, in) {
		t.Errorf("buckets left: %s", b)
	}
}
