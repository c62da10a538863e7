package scalerfn

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/scaling"
)

// The overflow function's physical ARN as CloudFormation names a SAM function
// without a FunctionName (stack-LogicalId-suffix); the template passes it to
// the scaler as FACEFLEET_OVERFLOW_FUNCTION (!GetAtt OverflowFunction.Arn).
const (
	ovRegion  = "us-east-1"
	ovAccount = "123456789012"
	ovARN     = "arn:aws:lambda:" + ovRegion + ":" + ovAccount + ":function:ff-OverflowFunction-7Y6T5R4E3W2Q"
)

// seenInvoke is one request the recorder got.
type seenInvoke struct {
	method, path, query, invType, auth string
	body                               []byte
}

// lambdaRecorder answers Invoke requests as Lambda answers Event invokes (202),
// or with status when set.
type lambdaRecorder struct {
	mu     sync.Mutex
	seen   []seenInvoke
	status int
}

func (l *lambdaRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.seen = append(l.seen, seenInvoke{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-Amz-Invocation-Type"), r.Header.Get("Authorization"), b})
	status := l.status
	l.mu.Unlock()
	if status != 0 {
		w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"message":"Rate exceeded","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}`))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (l *lambdaRecorder) requests() []seenInvoke {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenInvoke(nil), l.seen...)
}

// sdkClient is the real SDK Lambda client on the recorder, without retries.
func sdkClient(t *testing.T, rec http.Handler) *lambda.Client {
	t.Helper()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return lambda.New(lambda.Options{Region: ovRegion, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")})
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestOverflowInvokerSDKRequest checks what the real SDK client sends: one
// signed asynchronous Invoke of the overflow function per invocation asked
// for, with OverflowEvent, and that the accepted ones count as running for
// ActiveFor.
func TestOverflowInvokerSDKRequest(t *testing.T) {
	rec := &lambdaRecorder{}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	inv, err := NewOverflowInvoker(OverflowOptions{Function: ovARN, Invoker: sdkClient(t, rec), Max: 10, ActiveFor: 10 * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := inv.Invoke(ctx, 3); err != nil {
		t.Fatal(err)
	}
	got := rec.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3", len(got))
	}
	for _, s := range got {
		if s.method != http.MethodPost || s.path != "/2015-03-31/functions/"+strings.ReplaceAll(ovARN, ":", "%3A")+"/invocations" || s.query != "" {
			t.Errorf("request %s %s?%s, want POST to the function's unqualified invocations path", s.method, s.path, s.query)
		}
		if s.invType != "Event" {
			t.Errorf("X-Amz-Invocation-Type %q, want Event", s.invType)
		}
		if string(s.body) != OverflowEvent {
			t.Errorf("payload %q, want %q", s.body, OverflowEvent)
		}
		if !strings.HasPrefix(s.auth, "AWS4-HMAC-SHA256 ") {
			t.Errorf("Authorization %q, want SigV4", s.auth)
		}
	}
	if a, l, _ := inv.Active(ctx); a != 3 || l != 10 {
		t.Fatalf("Active = %d of %d, want 3 of 10", a, l)
	}
	clk.t = clk.t.Add(6 * time.Second)
	if err := inv.Invoke(ctx, 2); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(5 * time.Second) // the first three are 11 s old
	if a, _, _ := inv.Active(ctx); a != 2 {
		t.Fatalf("Active = %d after the first invocations' ActiveFor, want 2", a)
	}
	clk.t = clk.t.Add(5 * time.Second)
	if a, _, _ := inv.Active(ctx); a != 0 {
		t.Fatalf("Active = %d after every ActiveFor, want 0", a)
	}
}

// A throttled invoke (429: the reserved concurrency is in use) is an error and
// is not counted as running.
func TestOverflowInvokerRefusedInvokes(t *testing.T) {
	rec := &lambdaRecorder{status: http.StatusTooManyRequests}
	inv, err := NewOverflowInvoker(OverflowOptions{Function: ovARN, Invoker: sdkClient(t, rec), Max: 4})
	if err != nil {
		t.Fatal(err)
	}
	err = inv.Invoke(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "TooManyRequests") {
		t.Fatalf("err %v, want the throttling named", err)
	}
	if a, _, _ := inv.Active(context.Background()); a != 0 {
		t.Fatalf("Active = %d after refused invokes, want 0", a)
	}
	for _, o := range []OverflowOptions{{Invoker: sdkClient(t, rec), Max: 1}, {Function: ovARN, Max: 1}, {Function: ovARN, Invoker: sdkClient(t, rec)}} {
		if _, err := NewOverflowInvoker(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

type countsQueue struct{ c queue.Counts }

func (q countsQueue) Counts(context.Context) (queue.Counts, error) { return q.c, nil }

// emptyFleet has no instance and launches pending ones.
type emptyFleet struct{ launched int }

func (f *emptyFleet) List(context.Context) ([]fleet.Instance, error) { return nil, nil }
func (f *emptyFleet) Start(context.Context, ...string) error         { return nil }
func (f *emptyFleet) Stop(context.Context, ...string) error          { return nil }
func (f *emptyFleet) Launch(_ context.Context, n int) ([]fleet.Instance, error) {
	f.launched += n
	out := make([]fleet.Instance, n)
	for i := range out {
		out[i] = fleet.Instance{ID: "i-" + string(rune('a'+i)), State: fleet.Pending}
	}
	return out, nil
}

// The scaler's controller with the real invoker: a burst from zero is handed
// to the overflow (the policy's count of invocations, sent as Event invokes)
// and, as the policy decides, no EC2 instance is launched for a burst the
// overflow clears alone; a second step does not invoke again for the same
// backlog while the first invocations count as running.
func TestControllerInvokesTheOverflowFunction(t *testing.T) {
	rec := &lambdaRecorder{}
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	inv, err := NewOverflowInvoker(OverflowOptions{Function: ovARN, Invoker: sdkClient(t, rec), Max: 10, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	fl := &emptyFleet{}
	c := scaling.NewController(scaling.ControllerOptions{Queue: countsQueue{queue.Counts{Visible: 100}}, Fleet: fl, Max: 15, Overflow: inv})
	d, err := c.Step(context.Background(), clk.t)
	if err != nil {
		t.Fatal(err)
	}
	if d.Overflow < 1 || len(rec.requests()) != d.Overflow || d.Observation.OverflowMax != 10 {
		t.Fatalf("decision %+v with %d invokes; want the policy's overflow count invoked, limit 10", d, len(rec.requests()))
	}
	if fl.launched != d.Start {
		t.Fatalf("launched %d, decided %d", fl.launched, d.Start)
	}
	first := d.Overflow
	clk.t = clk.t.Add(time.Second)
	d, err = c.Step(context.Background(), clk.t)
	if err != nil || d.Overflow != 0 || len(rec.requests()) != first || d.Observation.Overflow != first {
		t.Fatalf("second step %+v (err %v), %d invokes; want none more while %d count as running", d, err, len(rec.requests()), first)
	}
}

// TestScalerMayInvokeOnlyTheOverflow proves the scaler's grant (template.yaml,
// ScalerFunction, Sid InvokeOverflow) against the exact request the invoker
// sends with the real SDK: the resource Lambda derives from it is authorised
// for lambda:InvokeFunction by the template's scaler policies
// (awstest.Authorize; moto cannot, see docs/emulators.md), and nothing wider.
func TestScalerMayInvokeOnlyTheOverflow(t *testing.T) {
	tmpl, err := awstest.LoadTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	stack := &awstest.Stack{Name: "ff", Region: ovRegion, Account: ovAccount, Partition: "aws",
		Params: map[string]string{}, Refs: map[string]string{}, Attrs: map[string]string{"OverflowFunction.Arn": ovARN}}
	policies := func(tier string) []awstest.Policy {
		t.Helper()
		pols, _, err := tmpl.TierPolicies(tier, stack)
		if err != nil {
			t.Fatal(err)
		}
		return pols
	}
	resourceOf := func(function string) string {
		t.Helper()
		rec := &lambdaRecorder{}
		inv, err := NewOverflowInvoker(OverflowOptions{Function: function, Invoker: sdkClient(t, rec), Max: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := inv.Invoke(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		r := rec.requests()[0]
		res, err := awstest.LambdaInvokeResource(r.path, r.query, ovRegion, ovAccount)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	scaler := policies("scaler")
	name := ovARN[strings.LastIndex(ovARN, ":")+1:]
	for _, c := range []struct {
		what, function string
		want           bool
	}{
		{"the overflow, by the ARN the scaler is configured with", ovARN, true},
		{"the overflow, by name", name, true},
		{"another function", "arn:aws:lambda:" + ovRegion + ":" + ovAccount + ":function:ff-Other", false},
		{"the scaler itself", "arn:aws:lambda:" + ovRegion + ":" + ovAccount + ":function:ff-ScalerFunction", false},
		{"the overflow's alias", ovARN + ":live", false},
		{"the overflow in another region", strings.Replace(ovARN, ovRegion, "eu-west-1", 1), false},
	} {
		res := resourceOf(c.function)
		if got := awstest.MayInvoke(t, scaler, res); got != c.want {
			t.Errorf("scaler invoking %s (resource %s): allowed %v, want %v", c.what, res, got, c.want)
		}
	}
	for _, tier := range []string{"web", "app", "overflow"} {
		if awstest.MayInvoke(t, policies(tier), resourceOf(ovARN)) {
			t.Errorf("the %s tier may invoke the overflow; only the scaler should", tier)
		}
	}
}

type markerList struct {
	ms  []blob.Attributes
	err error
}

func (l *markerList) List(context.Context, string) ([]blob.Attributes, error) { return l.ms, l.err }

// Active counts the running invocations' fresh markers (a stale one is an
// invocation Lambda ended), or its own recent invokes when those are more
// (not started yet) or the listing fails.
func TestOverflowInvokerCountsMarkers(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ml := &markerList{ms: []blob.Attributes{
		{Key: OverflowMarkerPrefix + "a", Modified: clk.t.Add(-50 * time.Second)},
		{Key: OverflowMarkerPrefix + "b", Modified: clk.t.Add(-time.Second)},
		{Key: OverflowMarkerPrefix + "c", Modified: clk.t.Add(-OverflowMarkerMaxAge - time.Second)}, // stale
	}}
	inv, err := NewOverflowInvoker(OverflowOptions{Function: ovARN, Invoker: sdkClient(t, &lambdaRecorder{}), Max: 10, Markers: ml, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if a, _, _ := inv.Active(ctx); a != 2 {
		t.Fatalf("Active = %d, want the 2 fresh markers", a)
	}
	if err := inv.Invoke(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if a, _, _ := inv.Active(ctx); a != 3 {
		t.Fatalf("Active = %d after 3 invokes not yet marked, want 3", a)
	}
	ml.err = errors.New("SlowDown")
	if a, _, err := inv.Active(ctx); a != 3 || err != nil || inv.LastListError() == nil {
		t.Fatalf("Active = %d, %v with the listing failing (last list error %v); want the 3 recent invokes, no error", a, err, inv.LastListError())
	}
	ml.err = nil
	clk.t = clk.t.Add(11 * time.Second) // the invokes are past ActiveFor; marker b is 12 s old, a 61 s
	if a, _, _ := inv.Active(ctx); a != 2 || inv.LastListError() != nil {
		t.Fatalf("Active = %d, want the 2 fresh markers again", a)
	}
}
