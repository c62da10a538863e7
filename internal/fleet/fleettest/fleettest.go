// Package fleettest is the conformance suite of the fleet port. Every adapter
// (localfleet in process, ec2fleet against the fake EC2 endpoint) runs it:
//
//	fleettest.Run(t, fleettest.Harness{New: func(t *testing.T, max int) fleet.Fleet { ... }})
//
// Transitions are asynchronous, so the suite polls List with a deadline and never
// assumes timings beyond the Harness contract. The rules it checks are EC2's:
// Stop of a pending and Start of a stopping instance fail with
// fleet.ErrIncorrectState; Stop of a stopped and Start of a running instance are
// accepted no-ops; calls check every id before changing any.
package fleettest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
)

// Harness adapts an implementation to the suite.
type Harness struct {
	// New returns a fresh, empty fleet capped at max instances. Its boots
	// (pending) and stops (stopping) must each take between MinDelay and a few
	// seconds, so the suite can act while an instance is in a transient state.
	// It is called concurrently from parallel subtests; clean up with t.Cleanup.
	New func(t *testing.T, max int) fleet.Fleet
	// MinDelay is the shortest pending and stopping phase New guarantees
	// (0: 500 ms). The wrong-state tests act within it.
	MinDelay time.Duration
	// Timeout bounds each wait for a transition (0: 10 s).
	Timeout time.Duration
	// Skip names subtests this backend cannot run, each with the reason (an
	// emulator's documented deviation from AWS, see docs/emulators.md); they
	// are reported as skipped, never silently dropped.
	Skip map[string]string
}

// unknownID is well-formed for EC2 but belongs to no instance.
const unknownID = "i-0fedcba9876543210"

// skew tolerates second-resolution timestamps (EC2's transition reasons).
const skew = 2 * time.Second

// Run runs every conformance test against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("fleettest: Harness.New is nil")
	}
	if h.MinDelay == 0 {
		h.MinDelay = 500 * time.Millisecond
	}
	if h.Timeout == 0 {
		h.Timeout = 10 * time.Second
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"EmptyList", testEmptyList},
		{"LaunchToRunning", testLaunchToRunning},
		{"StopToStopped", testStopToStopped},
		{"StartStopped", testStartStopped},
		{"IdempotentCalls", testIdempotent},
		{"UnknownIDs", testUnknownIDs},
		{"StopPendingIsWrongState", testStopPending},
		{"StartStoppingIsWrongState", testStartStopping},
		{"Capacity", testCapacity},
		{"BadArguments", testBadArguments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.Skip[tc.name]; ok {
				t.Skip("backend deviation: " + why)
			}
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newFleet(t *testing.T, h Harness, max int) fleet.Fleet {
	t.Helper()
	f := h.New(t, max)
	if f == nil {
		t.Fatal("Harness.New returned nil")
	}
	return f
}

func list(t *testing.T, f fleet.Fleet) []fleet.Instance {
	t.Helper()
	l, err := f.List(ctxT(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for i := 1; i < len(l); i++ {
		if l[i-1].ID >= l[i].ID {
			t.Fatalf("List is not sorted by unique ID: %q before %q", l[i-1].ID, l[i].ID)
		}
	}
	return l
}

func find(l []fleet.Instance, id string) (fleet.Instance, bool) {
	for _, in := range l {
		if in.ID == id {
			return in, true
		}
	}
	return fleet.Instance{}, false
}

// stateOf is id's state in a fresh List; it fails the test when id is missing.
func stateOf(t *testing.T, f fleet.Fleet, id string) fleet.State {
	t.Helper()
	in, ok := find(list(t, f), id)
	if !ok {
		t.Fatalf("instance %s is missing from List", id)
	}
	return in.State
}

// order ranks the states of one boot-and-stop cycle.
var order = map[fleet.State]int{fleet.Pending: 0, fleet.Running: 1, fleet.Stopping: 2, fleet.Stopped: 3}

// await polls List until instance id is in state want, failing on a timeout or on
// a state that cannot lead to want without another call (e.g. stopped while
// waiting for running). It returns the instance as last seen.
func await(t *testing.T, h Harness, f fleet.Fleet, id string, want fleet.State) fleet.Instance {
	t.Helper()
	deadline := time.Now().Add(h.Timeout)
	var last fleet.Instance
	for {
		in, ok := find(list(t, f), id)
		if !ok {
			t.Fatalf("instance %s vanished from List while waiting for %s", id, want)
		}
		if in.State == want {
			return in
		}
		if last.State != "" && order[in.State] < order[last.State] {
			t.Fatalf("instance %s went back from %s to %s while waiting for %s", id, last.State, in.State, want)
		}
		if order[in.State] > order[want] {
			t.Fatalf("instance %s is %s, past %s", id, in.State, want)
		}
		last = in
		if time.Now().After(deadline) {
			t.Fatalf("instance %s still %s after %v, want %s", id, in.State, h.Timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkSince(t *testing.T, in fleet.Instance, before time.Time) {
	t.Helper()
	if in.Since.Before(before.Add(-skew)) || in.Since.After(time.Now().Add(skew)) {
		t.Fatalf("instance %s (%s) has Since %v, want between %v and now", in.ID, in.State, in.Since, before)
	}
}

func launchOne(t *testing.T, f fleet.Fleet) fleet.Instance {
	t.Helper()
	got, err := f.Launch(ctxT(t), 1)
	if err != nil {
		t.Fatalf("Launch(1): %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("Launch(1) returned %d instances", len(got))
	}
	return got[0]
}

func running(t *testing.T, h Harness, f fleet.Fleet) fleet.Instance {
	t.Helper()
	return await(t, h, f, launchOne(t, f).ID, fleet.Running)
}

func stopped(t *testing.T, h Harness, f fleet.Fleet) fleet.Instance {
	t.Helper()
	in := running(t, h, f)
	if err := f.Stop(ctxT(t), in.ID); err != nil {
		t.Fatalf("Stop(%s): %v", in.ID, err)
	}
	return await(t, h, f, in.ID, fleet.Stopped)
}

func testEmptyList(t *testing.T, h Harness) {
	f := newFleet(t, h, 2)
	if l := list(t, f); len(l) != 0 {
		t.Fatalf("new fleet lists %+v", l)
	}
}

func testLaunchToRunning(t *testing.T, h Harness) {
	f := newFleet(t, h, 3)
	before := time.Now()
	got, err := f.Launch(ctxT(t), 2)
	if err != nil {
		t.Fatalf("Launch(2): %v", err)
	}
	if len(got) != 2 || got[0].ID == "" || got[0].ID == got[1].ID {
		t.Fatalf("Launch(2) returned %+v, want two instances with distinct IDs", got)
	}
	l := list(t, f)
	if len(l) != 2 {
		t.Fatalf("List after Launch(2) has %d instances: %+v", len(l), l)
	}
	for _, in := range got {
		if in.State != fleet.Pending {
			t.Fatalf("launched instance %s is %s, want pending", in.ID, in.State)
		}
		checkSince(t, in, before)
		if li, ok := find(l, in.ID); !ok || (li.State != fleet.Pending && li.State != fleet.Running) {
			t.Fatalf("List shows launched %s as %+v, want pending or running", in.ID, li)
		}
	}
	for _, in := range got {
		r := await(t, h, f, in.ID, fleet.Running)
		checkSince(t, r, before)
	}
	c := fleet.CountByState(list(t, f))
	if c[fleet.Running] != 2 || len(c) != 1 {
		t.Fatalf("counts by state %v, want 2 running", c)
	}
}

func testStopToStopped(t *testing.T, h Harness) {
	f := newFleet(t, h, 2)
	in := running(t, h, f)
	other := running(t, h, f)
	before := time.Now()
	if err := f.Stop(ctxT(t), in.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	l := list(t, f)
	if s, _ := find(l, in.ID); s.State != fleet.Stopping && s.State != fleet.Stopped {
		t.Fatalf("right after Stop the instance is %s, want stopping", s.State)
	}
	if o, _ := find(l, other.ID); o.State != fleet.Running {
		t.Fatalf("Stop of %s changed %s to %s", in.ID, other.ID, o.State)
	}
	s := await(t, h, f, in.ID, fleet.Stopped)
	checkSince(t, s, before)
	if st := stateOf(t, f, other.ID); st != fleet.Running {
		t.Fatalf("the instance not stopped is %s", st)
	}
}

func testStartStopped(t *testing.T, h Harness) {
	f := newFleet(t, h, 1)
	in := stopped(t, h, f)
	before := time.Now()
	if err := f.Start(ctxT(t), in.ID); err != nil {
		t.Fatalf("Start of a stopped instance: %v", err)
	}
	if st := stateOf(t, f, in.ID); st != fleet.Pending && st != fleet.Running {
		t.Fatalf("right after Start the instance is %s, want pending", st)
	}
	r := await(t, h, f, in.ID, fleet.Running)
	checkSince(t, r, before)
	// It can be stopped and started again.
	if err := f.Stop(ctxT(t), in.ID); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	await(t, h, f, in.ID, fleet.Stopped)
	if l := list(t, f); len(l) != 1 {
		t.Fatalf("restarting changed the instance count: %+v", l)
	}
}

func testIdempotent(t *testing.T, h Harness) {
	f := newFleet(t, h, 2)
	r := running(t, h, f)
	if err := f.Start(ctxT(t), r.ID); err != nil {
		t.Fatalf("Start of a running instance = %v, want nil (a no-op in EC2)", err)
	}
	p := launchOne(t, f)
	if err := f.Start(ctxT(t), p.ID); err != nil {
		t.Fatalf("Start of a pending instance = %v, want nil", err)
	}
	if err := f.Stop(ctxT(t), r.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	await(t, h, f, r.ID, fleet.Stopped)
	if err := f.Stop(ctxT(t), r.ID); err != nil {
		t.Fatalf("Stop of a stopped instance = %v, want nil", err)
	}
	if st := stateOf(t, f, r.ID); st != fleet.Stopped {
		t.Fatalf("second Stop changed the state to %s", st)
	}
	await(t, h, f, p.ID, fleet.Running)
}

func testUnknownIDs(t *testing.T, h Harness) {
	f := newFleet(t, h, 1)
	ctx := ctxT(t)
	if err := f.Start(ctx, unknownID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("Start(unknown) = %v, want ErrNotFound", err)
	}
	if err := f.Stop(ctx, unknownID); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("Stop(unknown) = %v, want ErrNotFound", err)
	}
	in := running(t, h, f)
	// All or nothing: a known instance among unknown ones is left alone.
	if err := f.Stop(ctx, in.ID, unknownID); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Stop(known, unknown) = %v, want ErrNotFound", err)
	}
	if st := stateOf(t, f, in.ID); st != fleet.Running {
		t.Fatalf("a failed Stop changed the known instance to %s", st)
	}
}

func testStopPending(t *testing.T, h Harness) {
	f := newFleet(t, h, 2)
	start := time.Now()
	in := launchOne(t, f)
	err := f.Stop(ctxT(t), in.ID)
	if !errors.Is(err, fleet.ErrIncorrectState) {
		if d := time.Since(start); d >= h.MinDelay {
			t.Skipf("Launch and Stop took %v, longer than the pending phase (%v), so the instance may have been running; cannot judge Stop = %v", d, h.MinDelay, err)
		}
		t.Fatalf("Stop of a pending instance = %v, want ErrIncorrectState (as EC2)", err)
	}
	// The failed Stop leaves the boot alone, and also fails all-or-nothing next to a running one.
	r := await(t, h, f, in.ID, fleet.Running)
	p := launchOne(t, f)
	if err := f.Stop(ctxT(t), r.ID, p.ID); !errors.Is(err, fleet.ErrIncorrectState) {
		t.Fatalf("Stop(running, pending) = %v, want ErrIncorrectState", err)
	}
	if st := stateOf(t, f, r.ID); st != fleet.Running {
		t.Fatalf("a failed Stop changed the running instance to %s", st)
	}
	await(t, h, f, p.ID, fleet.Running)
}

func testStartStopping(t *testing.T, h Harness) {
	f := newFleet(t, h, 1)
	in := running(t, h, f)
	start := time.Now()
	if err := f.Stop(ctxT(t), in.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	err := f.Start(ctxT(t), in.ID)
	if !errors.Is(err, fleet.ErrIncorrectState) {
		if d := time.Since(start); d >= h.MinDelay {
			t.Skipf("Stop and Start took %v, longer than the stopping phase (%v), so the instance may have stopped; cannot judge Start = %v", d, h.MinDelay, err)
		}
		t.Fatalf("Start of a stopping instance = %v, want ErrIncorrectState (as EC2)", err)
	}
	await(t, h, f, in.ID, fleet.Stopped)
}

func testCapacity(t *testing.T, h Harness) {
	f := newFleet(t, h, 3)
	ctx := ctxT(t)
	first, err := f.Launch(ctx, 2)
	if err != nil {
		t.Fatalf("Launch(2) of 3: %v", err)
	}
	if _, err := f.Launch(ctx, 2); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch(2) with 1 left = %v, want ErrCapacity", err)
	}
	if l := list(t, f); len(l) != 2 {
		t.Fatalf("a refused Launch left %d instances, want 2 (all or none)", len(l))
	}
	if _, err := f.Launch(ctx, 1); err != nil {
		t.Fatalf("Launch(1) with 1 left: %v", err)
	}
	if _, err := f.Launch(ctx, 1); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch(1) at the cap = %v, want ErrCapacity", err)
	}
	// Stopped instances still count towards the cap.
	await(t, h, f, first[0].ID, fleet.Running)
	if err := f.Stop(ctx, first[0].ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	await(t, h, f, first[0].ID, fleet.Stopped)
	if _, err := f.Launch(ctx, 1); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch(1) at the cap with one stopped = %v, want ErrCapacity", err)
	}
	l := list(t, f)
	ids := make([]string, len(l))
	for i, in := range l {
		ids[i] = in.ID
	}
	if len(ids) != 3 || !slices.Contains(ids, first[0].ID) || !slices.Contains(ids, first[1].ID) {
		t.Fatalf("List = %v, want the 3 launched instances", ids)
	}
}

func testBadArguments(t *testing.T, h Harness) {
	f := newFleet(t, h, 1)
	ctx := ctxT(t)
	for _, n := range []int{0, -1} {
		if got, err := f.Launch(ctx, n); err == nil {
			t.Errorf("Launch(%d) = %+v, want an error", n, got)
		}
	}
	if err := f.Start(ctx); err == nil {
		t.Error("Start() without ids succeeded")
	}
	if err := f.Stop(ctx); err == nil {
		t.Error("Stop() without ids succeeded")
	}
	if l := list(t, f); len(l) != 0 {
		t.Fatalf("bad calls launched %+v", l)
	}
}
