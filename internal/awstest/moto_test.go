package awstest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/awstest"
)

// TestTemplatePoliciesResolve: every tier's policies in template.yaml resolve to
// JSON with no intrinsic left, naming this stack's resources.
func TestTemplatePoliciesResolve(t *testing.T) {
	tmpl, err := awstest.LoadTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	st := &awstest.Stack{Name: "s1", Region: "eu-west-1", Account: "111122223333", Endpoint: "https://sqs.eu-west-1.amazonaws.com"}
	for tier := range awstest.Tiers {
		pols, _, err := tmpl.TierPolicies(tier, st)
		if err != nil {
			t.Fatalf("%s: %v", tier, err)
		}
		for _, p := range pols {
			if strings.Contains(p.Document, "Fn::") || strings.Contains(p.Document, `"Ref"`) || strings.Contains(p.Document, "${") {
				t.Errorf("%s/%s still holds an intrinsic: %s", tier, p.Name, p.Document)
			}
			var d struct{ Statement []map[string]any }
			if err := json.Unmarshal([]byte(p.Document), &d); err != nil || len(d.Statement) == 0 {
				t.Errorf("%s/%s: %v, %d statements", tier, p.Name, err, len(d.Statement))
			}
		}
		joined := ""
		for _, p := range pols {
			joined += p.Document
		}
		if tier != "scaler" && !strings.Contains(joined, "arn:aws:s3:::s1-inputbucket/*") {
			t.Errorf("%s's policies do not name the stack's input bucket: %s", tier, joined)
		}
		if !strings.Contains(joined, "arn:aws:sqs:eu-west-1:111122223333:s1-RequestQueue") {
			t.Errorf("%s's policies do not name the stack's request queue: %s", tier, joined)
		}
	}
	if _, _, err := tmpl.TierPolicies("db", st); err == nil {
		t.Error("unknown tier accepted")
	}
}

// TestTemplateGrantsListWithGet: the adapters read "not found" as 404, which AWS
// answers only to a caller that may also list the bucket (else 403). moto
// answers 404 either way (docs/emulators.md), so the rule is checked here on
// the template: every bucket a tier may GetObject from, it may also ListBucket.
func TestTemplateGrantsListWithGet(t *testing.T) {
	tmpl, err := awstest.LoadTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	st := &awstest.Stack{Name: "s1", Region: "us-east-1", Account: "111122223333"}
	for _, tier := range []string{"web", "app"} {
		pols, _, err := tmpl.TierPolicies(tier, st)
		if err != nil {
			t.Fatal(err)
		}
		gets, lists := map[string]bool{}, map[string]bool{}
		for _, p := range pols {
			var d struct {
				Statement []struct {
					Effect, Sid      string
					Action, Resource any
				}
			}
			if err := json.Unmarshal([]byte(p.Document), &d); err != nil {
				t.Fatal(err)
			}
			for _, s := range d.Statement {
				if s.Effect != "Allow" || s.Sid == "ReadArtifacts" { // artefacts are read by path, never probed
					continue
				}
				for _, a := range strs(s.Action) {
					for _, r := range strs(s.Resource) {
						bucket, _, _ := strings.Cut(strings.TrimPrefix(r, "arn:aws:s3:::"), "/")
						switch a {
						case "s3:GetObject":
							gets[bucket] = true
						case "s3:ListBucket":
							lists[bucket] = true
						}
					}
				}
			}
		}
		for b := range gets {
			if !lists[b] {
				t.Errorf("tier %s may GetObject from %s but not ListBucket it: a missing key reads as 403 on AWS, not ErrNotFound", tier, b)
			}
		}
	}
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var res []string
		for _, e := range x {
			res = append(res, e.(string))
		}
		return res
	}
	return nil
}

// TestMotoEnforcesTemplatePolicies starts moto with IAM on, creates a stack's
// queues and buckets, gives each tier a user with the template's policies and
// checks what each may and may not do.
func TestMotoEnforcesTemplatePolicies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := awstest.StartMotoForTest(t)
	if !strings.HasPrefix(m.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %s is not loopback", m.Endpoint)
	}
	st := m.NewStack("pol")
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"RequestQueue", "ResponseQueue", "RequestDLQ"} {
		if _, err := awstest.CreateQueue(ctx, admin.SQS(), awstest.QueueSpec{Name: st.QueueName(q)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"InputBucket", "OutputBucket"} {
		if err := awstest.CreateBucket(ctx, admin.S3(), st.BucketName(b)); err != nil {
			t.Fatal(err)
		}
	}
	users := map[string]*s3.Client{}
	queues := map[string]*sqs.Client{}
	var scalerEC2 *ec2.Client
	for tier := range awstest.Tiers {
		c, err := m.TierUser(ctx, tier, st)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := m.ClientsFor(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		users[tier], queues[tier] = cl.S3(), cl.SQS()
		if tier == "scaler" {
			scalerEC2 = cl.EC2()
		}
	}
	reqURL := aws.String(st.QueueURL("RequestQueue"))
	in, out := aws.String(st.BucketName("InputBucket")), aws.String(st.BucketName("OutputBucket"))
	put := func(tier string, bucket *string, key string) error {
		_, err := users[tier].PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(key), Body: bytes.NewReader([]byte("x"))})
		return err
	}
	send := func(tier string) error {
		_, err := queues[tier].SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: reqURL, MessageBody: aws.String("{}")})
		return err
	}
	allowed := []struct {
		what string
		err  error
	}{
		{"web puts an upload", put("web", in, "a.png")},
		{"web sends a request", send("web")},
		{"web writes the gallery", put("web", out, "gallery/journal/00000000000000000001")},
		{"app writes a result", put("app", out, "results/a.json")},
	}
	for _, a := range allowed {
		if a.err != nil {
			t.Errorf("%s: %v; the template grants it", a.what, a.err)
		}
	}
	_, err = queues["app"].ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: reqURL})
	if err != nil {
		t.Errorf("app receives requests: %v", err)
	}
	if _, err := users["app"].GetObject(ctx, &s3.GetObjectInput{Bucket: in, Key: aws.String("a.png")}); err != nil {
		t.Errorf("app reads an upload: %v", err)
	}
	if _, err := scalerEC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{}); err != nil {
		t.Errorf("scaler describes instances: %v", err)
	}
	webCreds, err := m.TierUser(ctx, "web", m.NewStack("pol2"))
	if err != nil {
		t.Fatal(err)
	}
	webCl, err := m.ClientsFor(ctx, webCreds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := webCl.EC2().RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}); !awstest.IsAccessDenied(err) {
		t.Errorf("web launches an instance: %v; want AccessDenied (it may only describe)", err)
	}
	denied := []struct {
		what string
		err  error
	}{
		{"app writes the gallery (explicit Deny)", put("app", out, "gallery/journal/00000000000000000002")},
		{"app sends to the request queue", send("app")},
		{"scaler sends to the request queue", send("scaler")},
		{"web writes a result record", put("web", out, "results/a.json")},
		{"scaler writes an upload", put("scaler", in, "b.png")},
	}
	for _, d := range denied {
		if !awstest.IsAccessDenied(d.err) {
			t.Errorf("%s: %v; want AccessDenied", d.what, d.err)
		}
	}
	if _, err := queues["web"].ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: reqURL}); !awstest.IsAccessDenied(err) {
		t.Errorf("web receives from the request queue: %v; want AccessDenied", err)
	}
	// The front re-signs a query holding "/" for moto, but only after checking
	// the client's own signature: a wrong secret is still refused.
	if _, err := users["app"].ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: in, Prefix: aws.String("results/")}); err != nil {
		t.Errorf("app lists the input bucket under a prefix with '/': %v", err)
	}
	bad := m.OptionsFor(awstest.Creds{AccessKeyID: webCreds.AccessKeyID, SecretAccessKey: "wrong" + webCreds.SecretAccessKey})
	badCl, err := awsconfig.Load(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := badCl.S3().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: out, Prefix: aws.String("gallery/")}); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Errorf("a wrongly signed list with '/' in its prefix = %v; want SignatureDoesNotMatch", err)
	}
	if err := m.ProveEnforced(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMotoAdjust(t *testing.T) {
	got, err := awstest.MotoAdjust(`{"Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b"},{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `"Action":["s3:ListBucket","s3:HeadBucket"]`) || strings.Count(got, "HeadBucket") != 1 {
		t.Fatalf("MotoAdjust = %s", got)
	}
	got, err = awstest.MotoAdjust(`{"Statement":[{"Effect":"Allow","Action":["ec2:StartInstances"],"Resource":"arn:aws:ec2:r:a:instance/*"},{"Effect":"Allow","Action":["ec2:RunInstances","iam:PassRole"],"Resource":"arn:x"}]}`)
	if err != nil || strings.Count(got, `"Resource":"*"`) != 1 || !strings.Contains(got, `"Resource":"arn:x"`) {
		t.Fatalf("MotoAdjust = %s, %v; want only the all-EC2 statement widened to *", got, err)
	}
	if _, err := awstest.MotoAdjust("{"); err == nil {
		t.Fatal("MotoAdjust accepted bad JSON")
	}
}
