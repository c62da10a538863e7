package overflowfn

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// fakeWorker stands in for apptier.Worker: Run returns on Drain, on ctx, or by
// itself after idle (0: never).
type fakeWorker struct {
	idle    time.Duration
	drained chan struct{}
	once    sync.Once
}

func (w *fakeWorker) Drain() { w.once.Do(func() { close(w.drained) }) }

func (w *fakeWorker) Run(ctx context.Context) error {
	var idle <-chan time.Time
	if w.idle > 0 {
		idle = time.After(w.idle)
	}
	select {
	case <-w.drained:
	case <-ctx.Done():
	case <-idle:
	}
	return nil
}

type fakeFleet struct {
	mu    sync.Mutex
	state fleet.State
	err   error
	calls atomic.Int32
}

func (f *fakeFleet) set(s fleet.State) { f.mu.Lock(); f.state = s; f.mu.Unlock() }

func (f *fakeFleet) List(context.Context) ([]fleet.Instance, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.state == "" {
		return nil, nil
	}
	return []fleet.Instance{{ID: "i-1", State: f.state}}, nil
}

func newHandler(t *testing.T, fl Lister, w *fakeWorker, made *atomic.Int32) *Handler {
	t.Helper()
	h, err := New(Options{
		NewWorker: func(string) (Worker, error) { made.Add(1); return w, nil },
		Fleet:     fl, Margin: 300 * time.Millisecond, WorkerWait: 100 * time.Millisecond, FleetCheck: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func invoke(t *testing.T, h *Handler, timeout time.Duration) (Result, error, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	r, err := h.Invoke(ctx, json.RawMessage(WorkEvent))
	return r, err, time.Since(start)
}

func TestStopsAtOnceWhenEC2AlreadyRuns(t *testing.T) {
	var made atomic.Int32
	f := &fakeFleet{state: fleet.Running}
	r, err, _ := invoke(t, newHandler(t, f, &fakeWorker{drained: make(chan struct{})}, &made), 5*time.Second)
	if err != nil || r.Stop != StopEC2Running || made.Load() != 0 {
		t.Fatalf("result %+v err %v workers %d; want ec2-running and no worker", r, err, made.Load())
	}
}

func TestDrainsWhenEC2StartsRunning(t *testing.T) {
	var made atomic.Int32
	f := &fakeFleet{state: fleet.Pending} // pending is what the overflow bridges
	w := &fakeWorker{drained: make(chan struct{})}
	h := newHandler(t, f, w, &made)
	go func() { time.Sleep(200 * time.Millisecond); f.set(fleet.Running) }()
	r, err, took := invoke(t, h, 10*time.Second)
	if err != nil || r.Stop != StopEC2Running || made.Load() != 1 {
		t.Fatalf("result %+v err %v; want ec2-running after working", r, err)
	}
	if took > 2*time.Second || r.FleetChecks < 2 {
		t.Fatalf("took %v with %d checks; want a stop within a few 50 ms checks", took, r.FleetChecks)
	}
}

func TestDrainsMarginBeforeTheDeadline(t *testing.T) {
	var made atomic.Int32
	w := &fakeWorker{drained: make(chan struct{})}
	r, err, took := invoke(t, newHandler(t, &fakeFleet{}, w, &made), time.Second)
	if err != nil || r.Stop != StopDeadline {
		t.Fatalf("result %+v err %v; want deadline", r, err)
	}
	// Drained 300 ms before the 1 s deadline (the fake returns at once).
	if took < 600*time.Millisecond || took > 850*time.Millisecond {
		t.Fatalf("returned after %v; want about 700 ms (1 s - 300 ms margin)", took)
	}
}

func TestReturnsWhenTheWorkerIsIdle(t *testing.T) {
	var made atomic.Int32
	w := &fakeWorker{drained: make(chan struct{}), idle: 100 * time.Millisecond}
	r, err, _ := invoke(t, newHandler(t, &fakeFleet{}, w, &made), 10*time.Second)
	if err != nil || r.Stop != StopIdle {
		t.Fatalf("result %+v err %v; want idle", r, err)
	}
}

// A fleet that cannot be listed is not a running instance: the invocation
// works on (until idle here) and reports the failures.
func TestFleetErrorsDoNotStopTheWork(t *testing.T) {
	var made atomic.Int32
	f := &fakeFleet{err: errors.New("throttled")}
	w := &fakeWorker{drained: make(chan struct{}), idle: 300 * time.Millisecond}
	r, err, _ := invoke(t, newHandler(t, f, w, &made), 10*time.Second)
	if err != nil || r.Stop != StopIdle || r.FleetErrors < 2 || r.FleetErrors != r.FleetChecks || !strings.Contains(r.LastError, "throttled") {
		t.Fatalf("result %+v err %v; want idle with every check failed and reported", r, err)
	}
}

func TestRefusals(t *testing.T) {
	var made atomic.Int32
	h := newHandler(t, &fakeFleet{}, &fakeWorker{drained: make(chan struct{})}, &made)
	for _, p := range []string{`[]`, `{"action":"stop"}`, `{"actoin":"work"}`, `nope`, `{"action":"work","x":` + strings.Repeat("1", 5000) + `}`} {
		var ee *EventError
		if _, err := h.Invoke(context.Background(), json.RawMessage(p)); !errors.As(err, &ee) {
			t.Errorf("payload %.40q: err %v; want an EventError", p, err)
		}
	}
	if _, err := h.Invoke(context.Background(), json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), "no deadline") {
		t.Errorf("no deadline: err %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := h.Invoke(ctx, json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), "raise the function's timeout") {
		t.Errorf("deadline inside the margin: err %v", err)
	}
	if made.Load() != 0 {
		t.Errorf("%d workers built for refused invocations", made.Load())
	}
	if _, err := New(Options{NewWorker: func(string) (Worker, error) { return nil, nil }, Fleet: &fakeFleet{}, Margin: time.Second, WorkerWait: time.Second}); err == nil {
		t.Error("a margin no longer than the long-poll wait was accepted")
	}
}

func TestModelsAndLibraryComeFromTheTaskRoot(t *testing.T) {
	env := map[string]string{"LAMBDA_TASK_ROOT": "/var/task"}
	get := taskRootDefaults(func(k string) string { return env[k] })
	if got := get("FACEFLEET_MODELS"); got != "/var/task/models" {
		t.Errorf("models %q", got)
	}
	if got := get("FACEFLEET_ORT_LIB"); got != "/var/task/lib/libonnxruntime.so.1" {
		t.Errorf("ort lib %q", got)
	}
	env["FACEFLEET_MODELS"] = "/opt/m"
	if got := get("FACEFLEET_MODELS"); got != "/opt/m" {
		t.Errorf("set FACEFLEET_MODELS %q was not kept", got)
	}
	delete(env, "LAMBDA_TASK_ROOT")
	get = taskRootDefaults(func(k string) string { return env[k] })
	if got := get("FACEFLEET_ORT_LIB"); got != "" {
		t.Errorf("outside Lambda ort lib %q; want the setting's own default", got)
	}
}

// An instance counts only once it has been running for EC2Warmup.
func TestEC2WarmupBeforeTakingOver(t *testing.T) {
	since := time.Now()
	h, err := New(Options{NewWorker: func(string) (Worker, error) { return nil, nil }, Fleet: listFunc(func() []fleet.Instance {
		return []fleet.Instance{{ID: "i-1", State: fleet.Running, Since: since}}
	}), Margin: time.Second, WorkerWait: 100 * time.Millisecond, EC2Warmup: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if h.running(context.Background(), &r, h.log) {
		t.Error("an instance running for 0 s counted; warm-up 10 s")
	}
	since = time.Now().Add(-11 * time.Second)
	if !h.running(context.Background(), &r, h.log) {
		t.Error("an instance running for 11 s did not count; warm-up 10 s")
	}
	since = time.Time{}
	if !h.running(context.Background(), &r, h.log) {
		t.Error("a running instance with no start time did not count")
	}
}

type listFunc func() []fleet.Instance

func (l listFunc) List(context.Context) ([]fleet.Instance, error) { return l(), nil }

// FuzzParseEvent: any payload is accepted or refused with an *EventError,
// never a panic.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`{}`, WorkEvent, `{"action":""}`, `{"action":"stop"}`, `[]`, `null`, ``, `{"action":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ParseEvent(b)
		var ee *EventError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("ParseEvent(%q) = %v, not an *EventError", b, err)
		}
		if err == nil && len(b) > 4096 {
			t.Fatalf("ParseEvent accepted %d bytes", len(b))
		}
	})
}

// markedWorker checks, while it runs, that its invocation's marker exists.
type markedWorker struct {
	fakeWorker
	store *memblob.Store
	seen  []string
}

func (w *markedWorker) Run(ctx context.Context) error {
	ms, err := w.store.List(ctx, scalerfn.OverflowMarkerPrefix)
	if err != nil {
		return err
	}
	for _, m := range ms {
		w.seen = append(w.seen, m.Key)
	}
	return w.fakeWorker.Run(ctx)
}

// While it works an invocation keeps one marker for the scaler to count, and
// deletes it when it returns.
func TestMarkerWhileWorking(t *testing.T) {
	store := memblob.New()
	w := &markedWorker{fakeWorker: fakeWorker{drained: make(chan struct{}), idle: 50 * time.Millisecond}, store: store}
	h, err := New(Options{NewWorker: func(string) (Worker, error) { return w, nil }, Fleet: &fakeFleet{},
		Margin: 300 * time.Millisecond, WorkerWait: 100 * time.Millisecond, Markers: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"}), 5*time.Second)
	defer cancel()
	r, err := h.Invoke(ctx, json.RawMessage(WorkEvent))
	if err != nil || r.Stop != StopIdle {
		t.Fatalf("%+v %v", r, err)
	}
	if len(w.seen) != 1 || w.seen[0] != scalerfn.OverflowMarkerPrefix+"overflow-req-1" {
		t.Fatalf("markers while working %v; want one for this invocation", w.seen)
	}
	if ms, _ := store.List(context.Background(), scalerfn.OverflowMarkerPrefix); len(ms) != 0 {
		t.Fatalf("markers after returning %v; want none", ms)
	}
}
