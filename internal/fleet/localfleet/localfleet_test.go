package localfleet_test

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/fleettest"
	"github.com/facefleet/facefleet/internal/fleet/localfleet"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/scaling"
)

func newFleet(t *testing.T, o localfleet.Options) *localfleet.Fleet {
	t.Helper()
	f, err := localfleet.New(o)
	if err != nil {
		t.Fatalf("localfleet.New: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestConformance(t *testing.T) {
	const delay = 500 * time.Millisecond
	fleettest.Run(t, fleettest.Harness{
		New: func(t *testing.T, max int) fleet.Fleet {
			return newFleet(t, localfleet.Options{BootDelay: delay, StopDelay: delay, Max: max})
		},
		MinDelay: delay,
	})
}

func TestNewValidates(t *testing.T) {
	for _, o := range []localfleet.Options{{}, {Max: -1}, {Max: 1, BootDelay: -time.Second}, {Max: 1, StopDelay: -time.Second}} {
		if _, err := localfleet.New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// waitState polls List; the suite does this properly, here a short helper will do.
func waitState(t *testing.T, f *localfleet.Fleet, id string, want fleet.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l, err := f.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range l {
			if in.ID == id && in.State == want {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("instance %s never reached %s", id, want)
}

func launch(t *testing.T, f *localfleet.Fleet) string {
	t.Helper()
	got, err := f.Launch(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return got[0].ID
}

// An idle worker stops its own instance by returning from Run.
func TestRunReturningStopsInstance(t *testing.T) {
	f := newFleet(t, localfleet.Options{Max: 1, Run: func(ctx context.Context, in fleet.Instance) error {
		if in.State != fleet.Running {
			return errors.New("Run saw state " + string(in.State))
		}
		return nil
	}})
	id := launch(t, f)
	waitState(t, f, id, fleet.Stopped)
	if err := f.LastError(id); err != nil {
		t.Fatalf("Run failed: %v", err)
	}
}

// Stop waits for a busy worker: the instance stays stopping until Run returns.
func TestStopWaitsForBusyRun(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int32
	f := newFleet(t, localfleet.Options{Max: 1, Run: func(ctx context.Context, in fleet.Instance) error {
		runs.Add(1)
		<-ctx.Done()
		<-release // finishing the current image
		return nil
	}})
	id := launch(t, f)
	waitState(t, f, id, fleet.Running)
	if err := f.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	l, _ := f.List(context.Background())
	if l[0].State != fleet.Stopping {
		t.Fatalf("busy instance is %s, want stopping until Run returns", l[0].State)
	}
	close(release)
	waitState(t, f, id, fleet.Stopped)
	// Start gives the instance a new Run.
	if err := f.Start(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	waitState(t, f, id, fleet.Running)
	if n := runs.Load(); n != 2 {
		t.Fatalf("Run called %d times, want 2 (one per boot)", n)
	}
}

func TestRunErrorAndPanicStopInstance(t *testing.T) {
	boom := errors.New("model failed to load")
	var calls atomic.Int32
	f := newFleet(t, localfleet.Options{Max: 2, Run: func(ctx context.Context, in fleet.Instance) error {
		if calls.Add(1) == 1 {
			return boom
		}
		panic("worker bug")
	}})
	a := launch(t, f)
	waitState(t, f, a, fleet.Stopped)
	if err := f.LastError(a); !errors.Is(err, boom) {
		t.Fatalf("LastError = %v, want %v", err, boom)
	}
	b := launch(t, f)
	waitState(t, f, b, fleet.Stopped)
	if err := f.LastError(b); err == nil {
		t.Fatal("a panicking Run left no error")
	}
	if err := f.LastError("i-nope"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("LastError(unknown) = %v", err)
	}
}

func TestCallsDoNotBlock(t *testing.T) {
	f := newFleet(t, localfleet.Options{Max: 5, BootDelay: time.Hour, StopDelay: time.Hour})
	start := time.Now()
	got, err := f.Launch(context.Background(), 5)
	if err != nil || len(got) != 5 {
		t.Fatal(err, got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Launch with an hour's boot delay took %v", d)
	}
}

func TestCloseStopsEverythingAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	var active atomic.Int32
	f, err := localfleet.New(localfleet.Options{Max: 4, BootDelay: 10 * time.Millisecond, StopDelay: time.Hour, Run: func(ctx context.Context, in fleet.Instance) error {
		active.Add(1)
		defer active.Add(-1)
		<-ctx.Done()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{launch(t, f), launch(t, f)}
	for _, id := range ids {
		waitState(t, f, id, fleet.Running)
	}
	if _, err := f.Launch(context.Background(), 1); err != nil { // still pending at Close
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v (it must skip the stop delay)", d)
	}
	if n := active.Load(); n != 0 {
		t.Fatalf("%d Runs still active after Close", n)
	}
	if _, err := f.List(context.Background()); !errors.Is(err, localfleet.ErrClosed) {
		t.Fatalf("List after Close = %v", err)
	}
	if _, err := f.Launch(context.Background(), 1); !errors.Is(err, localfleet.ErrClosed) {
		t.Fatalf("Launch after Close = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	testenv.NoGoroutineLeak(t, before)
}

func TestIDsSortInLaunchOrder(t *testing.T) {
	f := newFleet(t, localfleet.Options{Max: 20, BootDelay: time.Hour})
	var ids []string
	for range 20 {
		ids = append(ids, launch(t, f))
	}
	l, err := f.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range l {
		if in.ID != ids[i] {
			t.Fatalf("List[%d] = %s, want %s (launch order)", i, in.ID, ids[i])
		}
	}
}

// Retire (the controller's scale-in through scaling.Retirer) lets a busy worker
// finish: the instance stays stopping until its job is done, then stops.
func TestRetireLetsTheCurrentJobFinish(t *testing.T) {
	started, finish := make(chan struct{}), make(chan struct{})
	var cancelledWhileBusy atomic.Bool
	f := newFleet(t, localfleet.Options{Max: 1, Run: func(ctx context.Context, _ fleet.Instance) error {
		close(started)
		<-ctx.Done() // asked to stop while busy ...
		cancelledWhileBusy.Store(true)
		<-finish // ... but the job in hand is finished first
		return nil
	}})
	var r scaling.Retirer = f
	ctx := context.Background()
	insts, err := f.Launch(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if err := r.Retire(ctx, insts[0].ID); err != nil {
		t.Fatal(err)
	}
	state := func() fleet.State {
		list, err := f.List(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("List: %v %v", list, err)
		}
		return list[0].State
	}
	deadline := time.Now().Add(5 * time.Second)
	for !cancelledWhileBusy.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := state(); got != fleet.Stopping {
		t.Fatalf("retired busy instance is %s, want stopping until its job ends", got)
	}
	close(finish)
	for state() != fleet.Stopped {
		if time.Now().After(deadline) {
			t.Fatalf("instance still %s after its job ended", state())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
