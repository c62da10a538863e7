package scalernudge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// The scaler's physical ARN as CloudFormation names a SAM function without a
// FunctionName (stack-LogicalId-suffix). The harness resolves the template's
// !GetAtt ScalerFunction.Arn, in the web role's policy, to exactly this, and the
// web tier is configured with the same value (FACEFLEET_SCALER_FUNCTION=
// ${ScalerFunction.Arn}, checked in test/template).
const (
	iamRegion  = "us-east-1"
	iamAccount = awstest.MotoAccount
	scalerName = "ffiam-ScalerFunction-1Q2W3E4R5T6Y"
	scalerARN  = "arn:aws:lambda:" + iamRegion + ":" + iamAccount + ":function:" + scalerName
)

func TestLambdaInvokeResource(t *testing.T) {
	for _, c := range []struct{ path, query, want string }{
		{"/2015-03-31/functions/f/invocations", "", "arn:aws:lambda:r:1:function:f"},
		{"/2015-03-31/functions/f%3Alive/invocations", "", "arn:aws:lambda:r:1:function:f:live"},
		{"/2015-03-31/functions/f/invocations", "Qualifier=7", "arn:aws:lambda:r:1:function:f:7"},
		{"/2015-03-31/functions/2%3Afunction%3Af/invocations", "", "arn:aws:lambda:r:2:function:f"},
		{"/2015-03-31/functions/arn%3Aaws%3Alambda%3Ax%3A3%3Afunction%3Af%3Alive/invocations", "", "arn:aws:lambda:x:3:function:f:live"},
	} {
		got, err := awstest.LambdaInvokeResource(c.path, c.query, "r", "1")
		if err != nil || got != c.want {
			t.Errorf("awstest.LambdaInvokeResource(%s?%s) = %q, %v; want %q", c.path, c.query, got, err, c.want)
		}
	}
	for _, bad := range []string{"/2015-03-31/functions/f/invoke-async", "/2015-03-31/functions/a%3Ab%3Ac%3Ad%3Ae/invocations"} {
		if got, err := awstest.LambdaInvokeResource(bad, "", "r", "1"); err == nil {
			t.Errorf("awstest.LambdaInvokeResource(%s) = %q, want an error", bad, got)
		}
	}
	if _, err := awstest.LambdaInvokeResource("/2015-03-31/functions/f%3A1/invocations", "Qualifier=2", "r", "1"); err == nil {
		t.Error("disagreeing qualifiers accepted")
	}
}

// TestWebRoleMayInvokeOnlyTheScaler proves the web role's grant (template.yaml,
// WebRole, Sid NudgeScaler) against the exact request the web tier's nudger
// sends with the real SDK: the request's function resource, derived as Lambda
// does, is authorised for lambda:InvokeFunction by the template's own web
// policies (plus the AWS managed policies it attaches, read from moto) with
// awstest.Authorize. moto itself cannot prove it: moto 5.2.1 authorises Invoke
// as the action "lambda:Invoke" against the resource "*" (pinned below), so
// it refuses the template's correct grant and could not tell two functions
// apart. See docs/emulators.md.
func TestWebRoleMayInvokeOnlyTheScaler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := awstest.StartMotoForTest(t) // for the AWS managed policies' documents
	tmpl, err := awstest.LoadTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	stack := m.NewStack("ffiam")
	stack.Attrs["ScalerFunction.Arn"] = scalerARN
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	adminIAM := iam.NewFromConfig(admin.Config, func(o *iam.Options) { o.BaseEndpoint = aws.String(m.Endpoint) })
	policies := func(tier string) []awstest.Policy {
		t.Helper()
		pols, managed, err := tmpl.TierPolicies(tier, stack)
		if err != nil {
			t.Fatal(err)
		}
		for _, arn := range managed {
			p, err := adminIAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String(arn)})
			if err != nil {
				t.Fatalf("%s tier attaches %s, which moto does not know: %v", tier, arn, err)
			}
			v, err := adminIAM.GetPolicyVersion(ctx, &iam.GetPolicyVersionInput{PolicyArn: aws.String(arn), VersionId: p.Policy.DefaultVersionId})
			if err != nil {
				t.Fatal(err)
			}
			doc, err := url.QueryUnescape(aws.ToString(v.PolicyVersion.Document))
			if err != nil {
				t.Fatal(err)
			}
			pols = append(pols, awstest.Policy{Name: arn, Document: doc})
		}
		return pols
	}

	// The nudger with the real SDK client, against a recorder that answers
	// each Invoke as Lambda answers an Event invoke (202).
	var mu sync.Mutex
	var seen []*http.Request
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer rec.Close()
	sdk := lambda.New(lambda.Options{Region: iamRegion, BaseEndpoint: aws.String(rec.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")})
	resourceOf := func(function string) string {
		t.Helper()
		mu.Lock()
		seen = nil
		mu.Unlock()
		n := newNudger(t, Options{Function: function, Invoker: sdk})
		n.Nudge()
		n.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || n.Stats().Invoked != 1 {
			t.Fatalf("nudging %s sent %d requests (stats %+v), want one accepted", function, len(seen), n.Stats())
		}
		r := seen[0]
		if r.Header.Get("X-Amz-Invocation-Type") != string(types.InvocationTypeEvent) {
			t.Fatalf("invocation type %q, want Event", r.Header.Get("X-Amz-Invocation-Type"))
		}
		res, err := awstest.LambdaInvokeResource(r.URL.EscapedPath(), r.URL.RawQuery, iamRegion, iamAccount)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	web := policies("web")
	for _, c := range []struct {
		what, function string
		want           bool
	}{
		{"the scaler, by the ARN the web tier is configured with", scalerARN, true},
		{"the scaler, by name", scalerName, true},
		{"the scaler, by partial ARN", iamAccount + ":function:" + scalerName, true},
		{"another function", "arn:aws:lambda:" + iamRegion + ":" + iamAccount + ":function:ffiam-Other", false},
		{"a function whose name extends the scaler's", scalerARN + "X", false},
		{"the scaler's alias", scalerARN + ":live", false},
		{"the scaler's version", scalerARN + ":3", false},
		{"the scaler in another region", strings.Replace(scalerARN, iamRegion, "eu-west-1", 1), false},
	} {
		res := resourceOf(c.function)
		if got := awstest.MayInvoke(t, web, res); got != c.want {
			t.Errorf("web tier invoking %s (resource %s): allowed %v, want %v", c.what, res, got, c.want)
		}
	}

	// Without the NudgeScaler statement nothing else in the web tier's
	// policies (managed ones included) allows the nudge: the grant is that
	// statement and no wider one.
	var stripped []awstest.Policy
	dropped := 0
	for _, p := range web {
		var n int
		p.Document, n = dropSid(t, p.Document, "NudgeScaler")
		dropped += n
		stripped = append(stripped, p)
	}
	if dropped != 1 {
		t.Fatalf("the web policies have %d statements with Sid NudgeScaler, want 1", dropped)
	}
	if awstest.MayInvoke(t, stripped, resourceOf(scalerARN)) {
		t.Error("the web tier may invoke the scaler without its NudgeScaler statement: some other grant is wider")
	}
	for _, tier := range []string{"app", "scaler"} {
		if awstest.MayInvoke(t, policies(tier), resourceOf(scalerARN)) {
			t.Errorf("the %s tier may invoke the scaler; only the web tier should", tier)
		}
	}

	// moto's deviations, pinned so an upgrade that fixes them is noticed.
	// (1) moto authorises Invoke as the non-IAM action lambda:Invoke on "*":
	// invoking the scaler by name, the web user with the template's correct
	// grant is refused, and a user granted lambda:Invoke on "*" passes IAM
	// (the function does not exist there: ResourceNotFound). (2) Under
	// authentication moto refuses every Invoke addressed by ARN, as the web
	// tier addresses it, with SignatureDoesNotMatch: it signs the path
	// differently from SigV4's double encoding of ":".
	webUser, err := m.TierUser(ctx, "web", stack)
	if err != nil {
		t.Fatal(err)
	}
	motoUser, err := m.UserWith(ctx, "ffiam-motoinvoke", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:Invoke","Resource":"*"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(c awstest.Creds, function string) (code string, err error) {
		t.Helper()
		cl, err := m.ClientsFor(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		tap := &bodyTap{}
		lc := lambda.NewFromConfig(cl.Config, func(o *lambda.Options) {
			o.BaseEndpoint = aws.String(m.Endpoint)
			o.HTTPClient = tap
			o.RetryMaxAttempts = 1
		})
		_, err = lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), InvocationType: types.InvocationTypeEvent, Payload: []byte(scalerfn.NudgeEvent)})
		if m := regexp.MustCompile(`<Code>([A-Za-z]+)</Code>`).FindStringSubmatch(tap.last); m != nil {
			code = m[1]
		}
		return code, err
	}
	if code, err := invoke(webUser, scalerName); code != "AccessDenied" {
		t.Errorf("moto answered the web user's Invoke of %s with %q (%v), not AccessDenied: moto may now authorise lambda:InvokeFunction; test the nudge under moto and update docs/emulators.md", scalerName, code, err)
	}
	var nf *types.ResourceNotFoundException
	if _, err := invoke(motoUser, scalerName); !errors.As(err, &nf) {
		t.Errorf("moto answered a lambda:Invoke-on-* user's Invoke with %v, want ResourceNotFound (past IAM): moto's Lambda authorisation changed; update docs/emulators.md", err)
	}
	if code, err := invoke(motoUser, scalerARN); code != "SignatureDoesNotMatch" {
		t.Errorf("moto answered an Invoke by ARN with %q (%v), not SignatureDoesNotMatch: moto's signing of Lambda paths changed; update docs/emulators.md", code, err)
	}
}

// bodyTap is an HTTP client that keeps the last error response's body (moto
// answers IAM and signature refusals of Lambda calls with XML the SDK cannot
// decode, so the code is read here).
type bodyTap struct{ last string }

func (b *bodyTap) Do(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(r)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	b.last = string(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// dropSid removes the statements with Sid sid from a policy document and
// says how many there were.
func dropSid(t *testing.T, doc, sid string) (string, int) {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	stmts, _ := d["Statement"].([]any)
	var kept []any
	for _, s := range stmts {
		if st, _ := s.(map[string]any); st["Sid"] != sid {
			kept = append(kept, s)
		}
	}
	d["Statement"] = kept
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), len(stmts) - len(kept)
}
