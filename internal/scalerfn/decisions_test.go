package scalerfn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/decisionlog"
)

// failingPut is the output store refusing writes (an IAM grant missing, S3
// down); reads go to the memblob underneath.
type failingPut struct{ *memblob.Store }

func (failingPut) Put(context.Context, string, []byte, string) (string, error) {
	return "", errors.New("s3: AccessDenied")
}

func (failingPut) PutIfAbsent(context.Context, string, []byte, string) (string, error) {
	return "", errors.New("s3: AccessDenied")
}

func newLoggingHandler(t *testing.T, ctrl Controller, clk Clock, store blob.Store) *Handler {
	t.Helper()
	h, err := New(Options{Controller: ctrl, Clock: clk, Interval: 5 * time.Second, Margin: 3 * time.Second, DecisionLog: store})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDecisionLogKeepsActingStepsAndTheLast(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	store := memblob.New()
	sqsDown := errors.New("sqs: connection refused")
	// Steps at 0, 5, 10, 15 s: no-op, start 7, failed, no-op (the last).
	ctrl := &fakeController{visible: []int{0, 7, 0, 0}, fail: map[int]error{2: sqsDown}}
	h := newLoggingHandler(t, ctrl, clk, store)
	res, err := h.Invoke(withDeadline(t, clk, 20*time.Second), readEvent(t, "scheduled.json"))
	if err != nil || res.DecisionsErr != "" {
		t.Fatalf("invoke: %+v, %v", res, err)
	}
	got, err := decisionlog.Read(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("log holds %d decisions, want 3 (the start, the failure, the last): %+v", len(got), got)
	}
	if got[0].Start != 7 || got[0].Reason != "test" || got[0].Observation.Visible != 7 {
		t.Errorf("first = %+v, want the start of 7 with its reason and counts", got[0])
	}
	if !strings.Contains(got[1].Error, "connection refused") || !got[1].Observation.Now.Equal(ctrl.times[2]) {
		t.Errorf("second = %+v, want the failed step at its time", got[1])
	}
	if !got[2].Observation.Now.Equal(ctrl.times[3]) || got[2].Start != 0 {
		t.Errorf("last = %+v, want the final no-op step", got[2])
	}

	// A second invocation appends; its start replaces the stored no-op (a
	// no-op is kept only as the newest decision).
	ctrl2 := &fakeController{visible: []int{2}}
	h2 := newLoggingHandler(t, ctrl2, clk, store)
	if _, err := h2.Invoke(context.Background(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	got, _ = decisionlog.Read(context.Background(), store)
	if len(got) != 3 || got[1].Error == "" || got[2].Start != 2 {
		t.Fatalf("after the second invocation: %d decisions, last %+v; want 3: the start of 7, the failure, the start of 2", len(got), got[len(got)-1])
	}
}

func TestDecisionLogIsBounded(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	store := memblob.New()
	for i := range decisionlog.Max + 20 {
		ctrl := &fakeController{visible: []int{i + 1}}
		if _, err := newLoggingHandler(t, ctrl, clk, store).Invoke(context.Background(), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		clk.now = clk.now.Add(time.Minute)
	}
	got, err := decisionlog.Read(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != decisionlog.Max || got[0].Start != 21 || got[len(got)-1].Start != decisionlog.Max+20 {
		t.Fatalf("log = %d decisions from start %d to %d; want the newest %d", len(got), got[0].Start, got[len(got)-1].Start, decisionlog.Max)
	}
	_, attrs, _ := store.Get(context.Background(), decisionlog.Key)
	if attrs.Size > decisionlog.MaxBytes {
		t.Errorf("object is %d bytes, over %d", attrs.Size, decisionlog.MaxBytes)
	}
}

func TestDecisionLogCorruptObjectStartsAfresh(t *testing.T) {
	store := memblob.New()
	if _, err := store.Put(context.Background(), decisionlog.Key, []byte("not json"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := decisionlog.Read(context.Background(), store); err == nil || !strings.Contains(err.Error(), "not a decision log") {
		t.Fatalf("read of garbage: %v", err)
	}
	clk := &fakeClock{now: time.Now()}
	res, err := newLoggingHandler(t, &fakeController{visible: []int{3}}, clk, store).Invoke(context.Background(), []byte(`{}`))
	if err != nil || res.DecisionsErr != "" {
		t.Fatalf("%+v, %v", res, err)
	}
	got, err := decisionlog.Read(context.Background(), store)
	if err != nil || len(got) != 1 || got[0].Start != 3 {
		t.Fatalf("after rewrite: %+v, %v", got, err)
	}
}

func TestDecisionLogWriteErrorIsReportedNotFatal(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	h := newLoggingHandler(t, &fakeController{visible: []int{2}}, clk, failingPut{memblob.New()})
	res, err := h.Invoke(context.Background(), []byte(`{}`))
	if err != nil || res.Started != 2 || !strings.Contains(res.DecisionsErr, "AccessDenied") {
		t.Fatalf("got %+v, %v; want the step done and the write error reported", res, err)
	}
}

// flakyPut refuses writes while down is set (a PutObject that timed out at the
// end of an invocation), then writes to the memblob underneath.
type flakyPut struct {
	*memblob.Store
	down bool
}

func (f *flakyPut) Put(ctx context.Context, key string, data []byte, ct string) (string, error) {
	if f.down {
		return "", context.DeadlineExceeded
	}
	return f.Store.Put(ctx, key, data, ct)
}

// A start whose log write failed is written by the next invocation, before that
// invocation's own decisions; while writes keep failing, at most
// decisionlog.Max decisions wait.
func TestDecisionLogWriteFailureIsCarriedToTheNextInvocation(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	store := &flakyPut{Store: memblob.New(), down: true}
	ctrl := &fakeController{visible: []int{2}} // then 0: no-ops
	h := newLoggingHandler(t, ctrl, clk, store)
	res, err := h.Invoke(context.Background(), []byte(`{}`))
	if err != nil || res.Started != 2 || !strings.Contains(res.DecisionsErr, "1 decisions kept") {
		t.Fatalf("first invocation: %+v, %v; want the start done and its write failure reported", res, err)
	}
	if got, _ := decisionlog.Read(context.Background(), store); len(got) != 0 {
		t.Fatalf("nothing should be written yet: %+v", got)
	}
	store.down = false
	clk.now = clk.now.Add(time.Minute)
	if res, err := h.Invoke(context.Background(), []byte(`{}`)); err != nil || res.DecisionsErr != "" {
		t.Fatalf("second invocation: %+v, %v", res, err)
	}
	got, err := decisionlog.Read(context.Background(), store)
	if err != nil || len(got) != 2 || got[0].Start != 2 || got[1].Start != 0 || !got[0].Observation.Now.Before(got[1].Observation.Now) {
		t.Fatalf("log after the retry = %+v, %v; want the start, then the no-op", got, err)
	}

	store.down = true
	for range decisionlog.Max + 10 {
		_, _ = h.Invoke(context.Background(), []byte(`{}`))
	}
	if n := len(h.unwritten); n != decisionlog.Max {
		t.Fatalf("%d decisions waiting after %d failed writes; want the newest %d", n, decisionlog.Max+10, decisionlog.Max)
	}
}
