package scaling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
)

// fakeQueue returns fixed counts or an error.
type fakeQueue struct {
	c   queue.Counts
	err error
}

func (q *fakeQueue) Counts(context.Context) (queue.Counts, error) { return q.c, q.err }

// fakeFleet records calls; launches fail with launchErr after capLeft instances.
type fakeFleet struct {
	insts     []fleet.Instance
	started   []string
	stopped   []string
	launched  int
	capLeft   int // -1: unlimited
	startErr  error
	listErr   error
	nextID    int
	startedAt time.Time
}

func (f *fakeFleet) List(context.Context) ([]fleet.Instance, error) {
	return append([]fleet.Instance(nil), f.insts...), f.listErr
}

func (f *fakeFleet) Start(_ context.Context, ids ...string) error {
	if f.startErr != nil {
		return f.startErr
	}
	for _, id := range ids {
		for i := range f.insts {
			if f.insts[i].ID == id {
				if f.insts[i].State != fleet.Stopped {
					return fmt.Errorf("start %s: %w", id, fleet.ErrIncorrectState)
				}
				f.insts[i].State = fleet.Pending
			}
		}
		f.started = append(f.started, id)
	}
	return nil
}

func (f *fakeFleet) Stop(_ context.Context, ids ...string) error {
	for _, id := range ids {
		for i := range f.insts {
			if f.insts[i].ID == id {
				f.insts[i].State = fleet.Stopping
			}
		}
	}
	f.stopped = append(f.stopped, ids...)
	return nil
}

func (f *fakeFleet) Launch(_ context.Context, n int) ([]fleet.Instance, error) {
	var out []fleet.Instance
	for range n {
		if f.capLeft == 0 {
			return out, fmt.Errorf("launch: %w", fleet.ErrCapacity)
		}
		if f.capLeft > 0 {
			f.capLeft--
		}
		f.nextID++
		in := fleet.Instance{ID: fmt.Sprintf("new-%d", f.nextID), State: fleet.Pending}
		f.insts = append(f.insts, in)
		out = append(out, in)
		f.launched++
	}
	return out, nil
}

// fixedPolicy returns a fixed decision and records what it saw.
type fixedPolicy struct {
	d    Decision
	seen []Observation
}

func (p *fixedPolicy) Name() string { return "fixed" }
func (p *fixedPolicy) Decide(o Observation) Decision {
	p.seen = append(p.seen, o)
	return p.d
}

func inst(id string, s fleet.State, since int) fleet.Instance {
	return fleet.Instance{ID: id, State: s, Since: time.Unix(int64(since), 0)}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestControllerStartsStoppedFirstThenLaunchesUnderMax(t *testing.T) {
	ff := &fakeFleet{capLeft: -1, insts: []fleet.Instance{
		inst("r1", fleet.Running, 1), inst("p1", fleet.Pending, 2),
		inst("s2", fleet.Stopped, 20), inst("s1", fleet.Stopped, 10), inst("x1", fleet.Stopping, 5),
	}}
	pol := &fixedPolicy{d: Decision{Start: 10}}
	c := NewController(ControllerOptions{Queue: &fakeQueue{c: queue.Counts{Visible: 7, InFlight: 3}}, Fleet: ff, Policy: pol, Max: 6})
	d, err := c.Step(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	o := pol.seen[0]
	if o.Visible != 7 || o.InFlight != 3 || o.Running != 1 || o.Pending != 1 || o.Stopped != 2 || o.Stopping != 1 || o.Max != 6 || !o.Now.Equal(t0) || o.Trigger != TriggerTick {
		t.Fatalf("observation = %+v", o)
	}
	// Max 6 with 2 up: 4 more; the two stopped ones (longest-stopped first) then 2 launches.
	if d.Start != 4 || d.Started != 2 || d.Launched != 2 {
		t.Fatalf("decision = %+v", d)
	}
	if strings.Join(ff.started, ",") != "s1,s2" || ff.launched != 2 {
		t.Fatalf("started %v launched %d", ff.started, ff.launched)
	}
}

func TestControllerCapacityErrorIsSafeAndLogged(t *testing.T) {
	var logs bytes.Buffer
	ff := &fakeFleet{capLeft: 1}
	c := NewController(ControllerOptions{
		Queue: &fakeQueue{c: queue.Counts{Visible: 50}}, Fleet: ff,
		Policy: &fixedPolicy{d: Decision{Start: 3}}, Max: 10,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	d, err := c.Step(context.Background(), t0)
	if !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("err = %v, want ErrCapacity", err)
	}
	if d.Start != 1 || d.Launched != 1 || d.Error == "" {
		t.Fatalf("decision = %+v, want 1 launched and the error recorded", d)
	}
	if !strings.Contains(logs.String(), "msg=\"scaling decision\"") || !strings.Contains(logs.String(), "visible=50") ||
		!strings.Contains(logs.String(), "fleet action failed") || !strings.Contains(logs.String(), "insufficient capacity") {
		t.Fatalf("log lacks the failure: %s", logs.String())
	}
	if got := c.Recent(); len(got) != 1 || got[0].Start != 1 {
		t.Fatalf("recent = %+v", got)
	}
}

func TestControllerStartErrorFallsBackToLaunch(t *testing.T) {
	ff := &fakeFleet{capLeft: -1, startErr: errors.New("throttled"), insts: []fleet.Instance{inst("s1", fleet.Stopped, 1)}}
	c := NewController(ControllerOptions{Queue: &fakeQueue{}, Fleet: ff, Policy: &fixedPolicy{d: Decision{Start: 1}}, Max: 5})
	d, err := c.Step(context.Background(), t0)
	if err == nil || !strings.Contains(err.Error(), "throttled") {
		t.Fatalf("err = %v", err)
	}
	if d.Started != 0 || d.Launched != 1 || d.Start != 1 {
		t.Fatalf("decision = %+v", d)
	}
}

func TestControllerObservationErrorDoesNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		q *fakeQueue
		f *fakeFleet
	}{
		"queue": {&fakeQueue{err: errors.New("sqs down")}, &fakeFleet{}},
		"fleet": {&fakeQueue{}, &fakeFleet{listErr: errors.New("ec2 throttled")}},
	} {
		t.Run(name, func(t *testing.T) {
			c := NewController(ControllerOptions{Queue: tc.q, Fleet: tc.f, Policy: &fixedPolicy{d: Decision{Start: 3}}})
			d, err := c.Step(context.Background(), t0)
			if err == nil || d.Start != 0 || d.Stop != 0 || tc.f.launched != 0 {
				t.Fatalf("d=%+v err=%v launched=%d", d, err, tc.f.launched)
			}
		})
	}
	if _, err := NewController(ControllerOptions{}).Step(context.Background(), t0); err == nil {
		t.Fatal("a controller without queue and fleet must error, not panic")
	}
}

// EC2 cannot stop an instance that never reached running, so pending ones are left.
func TestControllerStopsNewestRunningNeverPending(t *testing.T) {
	ff := &fakeFleet{insts: []fleet.Instance{
		inst("old", fleet.Running, 1), inst("new", fleet.Running, 9), inst("p", fleet.Pending, 5), inst("s", fleet.Stopped, 1),
	}}
	c := NewController(ControllerOptions{Queue: &fakeQueue{}, Fleet: ff, Policy: &fixedPolicy{d: Decision{Stop: 5}}})
	d, err := c.Step(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stop != 2 || strings.Join(ff.stopped, ",") != "new,old" {
		t.Fatalf("d=%+v stopped=%v", d, ff.stopped)
	}
}

func TestControllerHistoryIsBoundedNewestLast(t *testing.T) {
	ff := &fakeFleet{capLeft: -1}
	c := NewController(ControllerOptions{Queue: &fakeQueue{}, Fleet: ff, Policy: &fixedPolicy{}, History: 3})
	for i := range 5 {
		if _, err := c.Step(context.Background(), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	r := c.Recent()
	if len(r) != 3 || !r[0].Observation.Now.Equal(t0.Add(2*time.Second)) || !r[2].Observation.Now.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("recent = %+v", r)
	}
	r[0].Reason = "mutated"
	if c.Recent()[0].Reason == "mutated" {
		t.Fatal("Recent must return a copy")
	}
}

func TestControllerNudgeReachesPolicy(t *testing.T) {
	pol := &fixedPolicy{}
	c := NewController(ControllerOptions{Queue: &fakeQueue{}, Fleet: &fakeFleet{}, Policy: pol})
	if _, err := c.Nudge(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	if !pol.seen[0].Nudge || pol.seen[0].Trigger != TriggerNudge {
		t.Fatalf("observation = %+v", pol.seen[0])
	}
}

// With our policy end to end: a nudge from zero launches one instance, a second
// step while it is pending launches nothing more, and nothing is ever stopped.
func TestControllerWithDefaultPolicy(t *testing.T) {
	ff := &fakeFleet{capLeft: -1}
	q := &fakeQueue{}
	c := NewController(ControllerOptions{Queue: q, Fleet: ff, Max: 15})
	if d, _ := c.Nudge(context.Background(), t0); d.Start != 1 {
		t.Fatalf("nudge decision = %+v", d)
	}
	q.c = queue.Counts{Visible: 100}
	if d, _ := c.Step(context.Background(), t0.Add(5*time.Second)); d.Start != 0 {
		t.Fatalf("pending capacity must count: %+v", d)
	}
	q.c = queue.Counts{Visible: 0, InFlight: 0}
	ff.insts[0].State = fleet.Running
	if d, _ := c.Step(context.Background(), t0.Add(60*time.Second)); d.Stop != 0 {
		t.Fatalf("ours never stops: %+v", d)
	}
}

// retiringFleet adds the optional Retirer capability.
type retiringFleet struct {
	fakeFleet
	retired []string
}

func (f *retiringFleet) Retire(_ context.Context, ids ...string) error {
	f.retired = append(f.retired, ids...)
	return nil
}

func TestControllerRetiresOldestPaidUpRunningOnly(t *testing.T) {
	now := time.Unix(1000, 0)
	ff := &retiringFleet{fakeFleet: fakeFleet{insts: []fleet.Instance{
		inst("young", fleet.Running, 990), // within its first minute: not retired
		inst("old", fleet.Running, 100), inst("mid", fleet.Running, 500), inst("p", fleet.Pending, 1),
	}}}
	pol := &fixedPolicy{d: Decision{Retire: 5}}
	c := NewController(ControllerOptions{Queue: &fakeQueue{}, Fleet: ff, Policy: pol})
	d, err := c.Step(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !pol.seen[0].CanRetire || d.Retire != 2 || strings.Join(ff.retired, ",") != "old,mid" || len(ff.stopped) != 0 {
		t.Fatalf("d=%+v retired=%v stopped=%v", d, ff.retired, ff.stopped)
	}
	// Without the capability the policy is told so and nothing is retired.
	plain := &fakeFleet{insts: ff.insts}
	pol2 := &fixedPolicy{d: Decision{Retire: 5}}
	d, _ = NewController(ControllerOptions{Queue: &fakeQueue{}, Fleet: plain, Policy: pol2}).Step(context.Background(), now)
	if pol2.seen[0].CanRetire || d.Retire != 0 || len(plain.stopped) != 0 {
		t.Fatalf("without Retirer: d=%+v", d)
	}
}

// hangingLaunch is a fleet whose launches get no answer before the caller's
// deadline (EC2 may still have run them).
type hangingLaunch struct{ *fakeFleet }

func (hangingLaunch) Launch(ctx context.Context, _ int) ([]fleet.Instance, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("ec2: RunInstances: %w", ctx.Err())
}

// A launch cut off by the step's deadline is recorded as unknown, not as a
// refusal: the instance may boot, and the decision log must not read as if
// nothing was tried.
func TestControllerLaunchWithoutAnswerSaysItMayStillStart(t *testing.T) {
	c := NewController(ControllerOptions{Queue: &fakeQueue{c: queue.Counts{Visible: 5}}, Fleet: hangingLaunch{&fakeFleet{capLeft: -1}},
		Policy: &fixedPolicy{d: Decision{Start: 2}}, Max: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	d, err := c.Step(ctx, t0)
	if !errors.Is(err, context.DeadlineExceeded) || d.Start != 0 || !strings.Contains(d.Error, "launching 2 instances: no answer before the step's deadline, so they may still start") {
		t.Fatalf("decision %+v, err %v", d, err)
	}
}
