package scalernudge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// fakeInvoker records invokes. It does not model Lambda: no throttling, no
// async queue; the HTTP test below checks what the SDK really sends.
type fakeInvoker struct {
	mu     sync.Mutex
	calls  []*lambda.InvokeInput
	err    error
	status int32
	block  chan struct{} // when set, Invoke waits for it (or ctx)
}

func (f *fakeInvoker) Invoke(ctx context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	st := f.status
	if st == 0 {
		st = 202
	}
	return &lambda.InvokeOutput{StatusCode: st}, nil
}

func (f *fakeInvoker) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.calls) }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time                                { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration)                           { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }
func newClock() *fakeClock                                         { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (f fakeFleet) List(context.Context) ([]fleet.Instance, error) { return f.insts, f.err }

type fakeFleet struct {
	insts []fleet.Instance
	err   error
}

func newNudger(t *testing.T, o Options) *Nudger {
	t.Helper()
	if o.Function == "" {
		o.Function = "facefleet-ScalerFunction-abc"
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func TestBurstMakesOneCall(t *testing.T) {
	inv, clk := &fakeInvoker{}, newClock()
	n := newNudger(t, Options{Invoker: inv, Now: clk.Now, MinGap: 5 * time.Second})
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(n.Nudge)
	}
	wg.Wait()
	n.Wait()
	if got := inv.count(); got != 1 {
		t.Fatalf("a burst of 100 made %d invokes, want 1", got)
	}
	in := inv.calls[0]
	if aws.ToString(in.FunctionName) != "facefleet-ScalerFunction-abc" || in.InvocationType != "Event" || string(in.Payload) != scalerfn.NudgeEvent {
		t.Errorf("invoke = %s %s %q, want the function, Event, %q", aws.ToString(in.FunctionName), in.InvocationType, in.Payload, scalerfn.NudgeEvent)
	}
	if ev, err := scalerfn.ParseEvent(in.Payload); err != nil || ev.Trigger != scalerfn.TriggerNudge {
		t.Errorf("the handler reads the payload as %+v, %v; want a nudge", ev, err)
	}
	// Still within the gap: nothing; at the gap: the next call.
	clk.add(5*time.Second - time.Millisecond)
	n.Nudge()
	n.Wait()
	if got := inv.count(); got != 1 {
		t.Fatalf("%d invokes 1 ms before MinGap, want 1", got)
	}
	clk.add(time.Millisecond)
	n.Nudge()
	n.Wait()
	if got := inv.count(); got != 2 {
		t.Fatalf("%d invokes at MinGap, want 2", got)
	}
	if s := n.Stats(); s.Invoked != 2 || s.Suppressed != 100 || s.Failed != 0 {
		t.Errorf("stats = %+v, want 2 invoked, 100 suppressed", s)
	}
}

func TestOneCallInFlight(t *testing.T) {
	inv, clk := &fakeInvoker{block: make(chan struct{})}, newClock()
	n := newNudger(t, Options{Invoker: inv, Now: clk.Now, MinGap: time.Second, Timeout: time.Second})
	n.Nudge()
	clk.add(time.Hour) // the gap has passed, but the first call has not returned
	n.Nudge()
	close(inv.block)
	n.Wait()
	if got := inv.count(); got != 1 {
		t.Fatalf("%d invokes with one in flight, want 1", got)
	}
}

func TestFleetWithWorkerSkipsInvoke(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fl     fakeFleet
		invoke bool
	}{
		{"running", fakeFleet{insts: []fleet.Instance{{ID: "i-1", State: fleet.Stopped}, {ID: "i-2", State: fleet.Running}}}, false},
		{"pending", fakeFleet{insts: []fleet.Instance{{ID: "i-1", State: fleet.Pending}}}, false},
		{"stopping and stopped", fakeFleet{insts: []fleet.Instance{{ID: "i-1", State: fleet.Stopping}, {ID: "i-2", State: fleet.Stopped}}}, true},
		{"empty", fakeFleet{}, true},
		{"list fails", fakeFleet{err: errors.New("ec2: throttled")}, true},
	} {
		inv := &fakeInvoker{}
		n := newNudger(t, Options{Invoker: inv, Fleet: tc.fl, Now: newClock().Now})
		n.Nudge()
		n.Wait()
		if got := inv.count() == 1; got != tc.invoke {
			t.Errorf("%s: invoked %v, want %v", tc.name, got, tc.invoke)
		}
		if s := n.Stats(); !tc.invoke && s.Busy != 1 {
			t.Errorf("%s: stats %+v, want Busy 1", tc.name, s)
		}
	}
}

func TestFailuresAreCountedNotFatal(t *testing.T) {
	clk := newClock()
	inv := &fakeInvoker{err: errors.New("AccessDeniedException: not authorized to perform lambda:InvokeFunction")}
	n := newNudger(t, Options{Invoker: inv, Now: clk.Now})
	n.Nudge()
	n.Wait()
	inv.err, inv.status = nil, 500
	clk.add(time.Minute)
	n.Nudge()
	n.Wait()
	if s := n.Stats(); s.Failed != 2 || s.Invoked != 0 {
		t.Errorf("stats = %+v, want 2 failed", s)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Invoker: &fakeInvoker{}},
		{Function: "f"},
		{Function: "f", Invoker: &fakeInvoker{}, MinGap: -1},
		{Function: "f", Invoker: &fakeInvoker{}, MinGap: time.Second, Timeout: 2 * time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	n, err := New(Options{Function: "f", Invoker: &fakeInvoker{}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.o.MinGap != scalerfn.Deployed.NudgeMinGap || n.o.Timeout > n.o.MinGap {
		t.Errorf("defaults MinGap %v Timeout %v", n.o.MinGap, n.o.Timeout)
	}
	n.Close()
	n.Nudge() // after Close: ignored, no panic
	if n.Stats().Invoked != 0 {
		t.Error("a nudge after Close invoked")
	}
}

// TestSDKRequest checks what the real SDK client sends to a Lambda Invoke
// endpoint: the path, the Event invocation type, the payload, a signed request.
func TestSDKRequest(t *testing.T) {
	type seen struct {
		method, path, invType, auth string
		body                        []byte
	}
	got := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), r.Header.Get("X-Amz-Invocation-Type"), r.Header.Get("Authorization"), b}
		w.WriteHeader(http.StatusAccepted) // what Lambda answers an Event invoke
	}))
	defer srv.Close()
	client := lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	arn := "arn:aws:lambda:us-east-1:123456789012:function:facefleet-ScalerFunction-abc"
	n := newNudger(t, Options{Function: arn, Invoker: client})
	n.Nudge()
	n.Wait()
	select {
	case s := <-got:
		if s.method != http.MethodPost || s.path != "/2015-03-31/functions/"+"arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afacefleet-ScalerFunction-abc"+"/invocations" {
			t.Errorf("request %s %s, want POST to the function's invocations path", s.method, s.path)
		}
		if s.invType != "Event" {
			t.Errorf("X-Amz-Invocation-Type = %q, want Event", s.invType)
		}
		if string(s.body) != scalerfn.NudgeEvent {
			t.Errorf("payload %q, want %q", s.body, scalerfn.NudgeEvent)
		}
		if len(s.auth) < 20 || s.auth[:16] != "AWS4-HMAC-SHA256" {
			t.Errorf("Authorization %q, want a SigV4 signature", s.auth)
		}
	default:
		t.Fatal("the endpoint saw no request")
	}
	if s := n.Stats(); s.Invoked != 1 {
		t.Errorf("stats = %+v, want the 202 counted as invoked", s)
	}
}
