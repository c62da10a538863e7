package scaling

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
)

// fakeOverflow is a test double for the overflow port: it counts invocations
// and enforces its limit; it models no cold start, no deadline and no work.
type fakeOverflow struct {
	active, limit int
	invoked       []int
	err           error
}

func (f *fakeOverflow) Active(context.Context) (int, int, error) { return f.active, f.limit, nil }
func (f *fakeOverflow) Invoke(_ context.Context, n int) error {
	if f.err != nil {
		return f.err
	}
	if f.active+n > f.limit {
		return errors.New("over the limit")
	}
	f.invoked = append(f.invoked, n)
	f.active += n
	return nil
}

// Without an overflow function (local mode, the scaler Lambda today) nothing
// changes: the policy never asks for overflow and starts EC2 as before.
func TestOverflowAbsentChangesNothing(t *testing.T) {
	ff := &fakeFleet{capLeft: -1}
	c := NewController(ControllerOptions{Queue: &fakeQueue{c: queue.Counts{Visible: 100}}, Fleet: ff, Max: 15})
	d, err := c.Step(context.Background(), t0)
	if err != nil || d.Overflow != 0 || d.Observation.OverflowMax != 0 || d.Start != 1 {
		t.Fatalf("decision %+v, err %v; want 1 EC2 start and no overflow", d, err)
	}
}

// A burst the overflow clears alone gets overflow and no EC2 minute; a backlog
// too big for it gets EC2 too (the overflow bridges the boot); work that goes
// on past Sustain is not a burst, and EC2 starts; once EC2 runs, no overflow.
func TestOverflowPlan(t *testing.T) {
	ctx := context.Background()
	ff := &fakeFleet{capLeft: -1}
	q := &fakeQueue{c: queue.Counts{Visible: 100}}
	ov := &fakeOverflow{limit: 10}
	c := NewController(ControllerOptions{Queue: q, Fleet: ff, Max: 15, Overflow: ov})
	// 100 x 60 ms = 6 s of work: ceil(6/5) = 2 invocations, alone.
	d, err := c.Step(ctx, t0)
	if err != nil || d.Overflow != 2 || d.Start != 0 || len(ov.invoked) != 1 || ov.invoked[0] != 2 {
		t.Fatalf("burst: decision %+v err %v invoked %v; want 2 overflow, no EC2", d, err, ov.invoked)
	}
	// Still working 10 s later: 2 active suffice for what is left.
	q.c = queue.Counts{Visible: 20, InFlight: 2}
	if d, _ = c.Step(ctx, t0.Add(10*time.Second)); d.Overflow != 0 || d.Start != 0 {
		t.Fatalf("draining: %+v", d)
	}
	// Past Sustain (20 s) with work still coming: EC2 starts, overflow bridges.
	if d, _ = c.Step(ctx, t0.Add(21*time.Second)); d.Start != 1 || d.Overflow != 0 {
		t.Fatalf("sustained: %+v; want one EC2 start", d)
	}
	// EC2 running: no more overflow whatever the backlog.
	ff.insts[0].State = fleet.Running
	q.c = queue.Counts{Visible: 500}
	ov.active = 0
	if d, _ = c.Step(ctx, t0.Add(40*time.Second)); d.Overflow != 0 {
		t.Fatalf("EC2 running: %+v; want no overflow", d)
	}

	// From zero, a backlog too big for the overflow alone (10 000 x 60 ms /
	// 10 invocations = 60 s > Alone): EC2 and the overflow at its limit.
	ff2 := &fakeFleet{capLeft: -1}
	ov2 := &fakeOverflow{limit: 10, active: 3}
	c2 := NewController(ControllerOptions{Queue: &fakeQueue{c: queue.Counts{Visible: 10000}}, Fleet: ff2, Max: 15, Overflow: ov2})
	if d, _ = c2.Step(ctx, t0); d.Start != 15 || d.Overflow != 7 {
		t.Fatalf("big burst: %+v; want 15 EC2 starts and 7 more overflow (limit 10, 3 active)", d)
	}
}

// Sparse work with pauses longer than Quiet (5 s) is never "sustained": each
// stretch starts the Sustain clock again, and no EC2 minute is paid for it.
func TestOverflowQuietRestartsSustain(t *testing.T) {
	ctx := context.Background()
	ff := &fakeFleet{capLeft: -1}
	q := &fakeQueue{}
	ov := &fakeOverflow{limit: 10}
	c := NewController(ControllerOptions{Queue: q, Fleet: ff, Max: 15, Overflow: ov})
	for i := range 10 { // a request every 8 s for 80 s, each done within 2 s
		at := t0.Add(time.Duration(i) * 8 * time.Second)
		q.c, ov.active = queue.Counts{Visible: 1}, 0
		if d, _ := c.Nudge(ctx, at); d.Start != 0 || d.Overflow != 1 {
			t.Fatalf("request %d: %+v; want one overflow invocation and no EC2", i, d)
		}
		q.c, ov.active = queue.Counts{}, 0
		if d, _ := c.Step(ctx, at.Add(6*time.Second)); d.Start != 0 {
			t.Fatalf("after request %d: %+v", i, d)
		}
	}
	// The same requests every 4 s (pauses under Quiet) are sustained work.
	started := false
	for i := range 10 {
		at := t0.Add(time.Hour + time.Duration(i)*4*time.Second)
		q.c, ov.active = queue.Counts{Visible: 1}, 0
		if d, _ := c.Nudge(ctx, at); d.Start > 0 {
			started = true
			break
		}
	}
	if !started {
		t.Fatal("a request every 4 s for 40 s never started EC2")
	}
}

// A failed Invoke is recorded, returned and counted as nothing started.
func TestOverflowInvokeError(t *testing.T) {
	ov := &fakeOverflow{limit: 10, err: errors.New("throttled")}
	c := NewController(ControllerOptions{Queue: &fakeQueue{c: queue.Counts{Visible: 100}}, Fleet: &fakeFleet{capLeft: -1}, Max: 15, Overflow: ov})
	d, err := c.Step(context.Background(), t0)
	if err == nil || d.Overflow != 0 || d.Error == "" {
		t.Fatalf("decision %+v err %v; want the error recorded and 0 invoked", d, err)
	}
}
