package scaling

import (
	"errors"
	"testing"
	"time"
)

// step is one observation fed to a policy and the start/stop it must answer.
type step struct {
	at                         time.Duration
	visible, inFlight          int
	pending, running, stopping int
	nudge, canRetire           bool
	start, stop, retire        int
}

func (s step) obs(max int) Observation {
	return Observation{Now: t0.Add(s.at), Visible: s.visible, InFlight: s.inFlight,
		Pending: s.pending, Running: s.running, Stopping: s.stopping, Max: max, Nudge: s.nudge, CanRetire: s.canRetire}
}

// Table-driven, in the style of KEDA's scaler tests: each case is a policy and a
// sequence of observations with the expected start/stop for each.
func TestPolicies(t *testing.T) {
	cases := []struct {
		name   string
		policy func() Policy
		max    int
		steps  []step
	}{
		{"visible-count starts visible-running ignoring pending", func() Policy { return NewVisibleCount() }, 20, []step{
			{visible: 5, start: 5},
			{at: 60 * time.Second, visible: 5, pending: 5, start: 5}, // over-launch: pending not counted
		}},
		{"visible-count caps at 19", func() Policy { return NewVisibleCount() }, 50, []step{{visible: 100, start: 19}}},
		{"visible-count stops the surplus even when busy", func() Policy { return NewVisibleCount() }, 20, []step{
			{visible: 0, inFlight: 3, running: 3, stop: 3},
		}},
		{"backlog-drain sizes by work and counts pending", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 15, []step{
			{visible: 100, start: 1},              // 6 s of work < 20 s target: one instance
			{visible: 1000, pending: 1, start: 2}, // 60 s of work: 3 in all, one already pending
			{visible: 0, inFlight: 1000, running: 3},
			{visible: 10000, running: 3, start: 12}, // capped at Max
		}},
		{"backlog-drain counts in-flight as work", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 15, []step{
			{visible: 0, inFlight: 700, start: 3},
		}},
		{"backlog-drain believes a nudge, even with a lagging count", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 15, []step{
			{nudge: true, start: 1},
		}},
		{"backlog-drain ignores a one-off +1 from zero", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 15, []step{
			{visible: 1},
			{at: 5 * time.Second},
			{at: 10 * time.Second, visible: 1},
		}},
		{"backlog-drain believes a +1 seen twice", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 15, []step{
			{visible: 1},
			{at: 2 * time.Second, visible: 1},
			{at: 5 * time.Second, visible: 1, start: 1},
		}},
		{"backlog-drain never stops, stopping instances are not capacity", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 15, []step{
			{running: 5},
			{visible: 3, stopping: 2, start: 1},
		}},
		{"backlog-drain retires a steady surplus after a full window, never below one", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 20, []step{
			{visible: 0, inFlight: 10, running: 15, canRetire: true},
			{at: 30 * time.Second, inFlight: 10, running: 15, canRetire: true},
			{at: 60 * time.Second, inFlight: 10, running: 15, canRetire: true, retire: 2}, // ceil(10 x 1.25) = 13
			{at: 90 * time.Second, inFlight: 0, running: 13, canRetire: true},             // once per window
			{at: 120 * time.Second, inFlight: 0, running: 13, canRetire: true, retire: 8}, // (10+0+0)/3 busy: ceil(3.3 x 1.25) = 5
			{at: 200 * time.Second, inFlight: 0, running: 5, canRetire: true, retire: 4},  // down to one, not zero
		}},
		{"backlog-drain does not retire without the capability or while capacity is pending", func() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }, 20, []step{
			{inFlight: 1, running: 15},
			{at: 90 * time.Second, inFlight: 1, running: 15},
			{at: 91 * time.Second, inFlight: 1, running: 15, pending: 1, canRetire: true},
		}},
		{"keda: ceil(backlog/5), polls every 30 s, cools down 300 s", func() Policy { return NewKEDA(KEDAOptions{}) }, 20, []step{
			{visible: 12, inFlight: 0, start: 3},
			{at: 10 * time.Second, visible: 40, running: 3}, // between polls
			{at: 30 * time.Second, visible: 40, running: 3, start: 5},
			{at: 60 * time.Second, visible: 1, running: 8},           // stabilised at 8
			{at: 331 * time.Second, visible: 0, running: 8, stop: 7}, // window passed; keeps 1 until cooldown
			{at: 361 * time.Second, visible: 0, running: 1, stop: 1}, // 300 s after last activity
		}},
		{"target-tracking leaves zero on the first delayed datapoint", func() Policy { return NewTargetTracking(TargetTrackingOptions{}) }, 20, []step{
			{visible: 100},                                 // no datapoint published yet
			{at: 30 * time.Second, visible: 100},           // between evaluations
			{at: 60 * time.Second, visible: 100, start: 1}, // step policy: 0 -> 1
		}},
		{"target-tracking waits for 3 datapoints above target", func() Policy { return NewTargetTracking(TargetTrackingOptions{}) }, 20, []step{
			{visible: 100, running: 2},
			{at: 60 * time.Second, visible: 100, running: 2}, // 1st datapoint: 50/instance
			{at: 120 * time.Second, visible: 100, running: 2},
			{at: 180 * time.Second, visible: 100, running: 2, start: 8},
		}},
		{"target-tracking scales in after 15 low datapoints", func() Policy { return NewTargetTracking(TargetTrackingOptions{}) }, 20, func() []step {
			var s []step
			for i := range 16 {
				s = append(s, step{at: time.Duration(i) * time.Minute, visible: 10, running: 4})
			}
			s[15].stop = 3 // 15 datapoints of 2.5/instance: down to ceil(10/10)
			return s
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy()
			for i, s := range tc.steps {
				d := p.Decide(s.obs(tc.max))
				if d.Start != s.start || d.Stop != s.stop || d.Retire != s.retire {
					t.Fatalf("step %d (%+v): got start %d stop %d retire %d (%s), want %d %d %d",
						i, s, d.Start, d.Stop, d.Retire, d.Reason, s.start, s.stop, s.retire)
				}
				if d.Reason == "" {
					t.Fatalf("step %d: empty reason", i)
				}
			}
		})
	}
}

func TestNewPolicy(t *testing.T) {
	for _, n := range PolicyNames() {
		p, err := NewPolicy(n)
		if err != nil || p.Name() != n {
			t.Fatalf("NewPolicy(%q) = %v, %v", n, p, err)
		}
	}
	if _, err := NewPolicy("nope"); !errors.Is(err, ErrUnknownPolicy) {
		t.Fatalf("err = %v", err)
	}
	if DefaultPolicy().Name() != NameBacklogDrain {
		t.Fatal("default policy must be ours")
	}
}

// The former names still build the renamed policies, and every name is unique.
func TestPolicyRegistry(t *testing.T) {
	for old, now := range map[string]string{"facefleet": NameBacklogDrain, "seed": NameVisibleCount} {
		p, err := NewPolicy(old)
		if err != nil || p.Name() != now {
			t.Errorf("NewPolicy(%q) = %v, %v; want the %s policy", old, p, err, now)
		}
	}
	seen := map[string]bool{}
	for _, n := range AcceptedPolicyNames() {
		if seen[n] {
			t.Errorf("%q registered twice", n)
		}
		seen[n] = true
		if p, err := NewPolicy(n); err != nil || p == nil {
			t.Errorf("NewPolicy(%q): %v", n, err)
		}
	}
	for _, spec := range Policies() {
		if p := spec.New(Env{}); p.Name() != spec.Name {
			t.Errorf("%s builds a policy named %s", spec.Name, p.Name())
		}
	}
	if _, err := NewPolicy("fastest"); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("unknown name: %v", err)
	}
}

// Local instances cost nothing: backlog-drain told so starts one per queued
// request up to the cap, where the cloud's knobs give a backlog one instance
// drains within the target a single instance.
func TestBacklogDrainLocalStartsOnePerQueuedRequest(t *testing.T) {
	for _, tc := range []struct {
		env                  Env
		visible, inFlight    int
		running, max, starts int
	}{
		{Env{Local: true}, 100, 0, 0, 8, 8},
		{Env{Local: true}, 3, 0, 0, 8, 3},
		{Env{Local: true}, 2, 2, 2, 8, 2},
		{Env{Local: true, ServiceTime: 5 * time.Millisecond}, 5, 0, 1, 8, 4},
		{Env{}, 100, 0, 0, 8, 1},
		{Env{ServiceTime: 5 * time.Millisecond}, 100, 0, 0, 8, 1},
	} {
		p, err := NewPolicyIn(NameBacklogDrain, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		d := p.Decide(Observation{Now: t0, Visible: tc.visible, InFlight: tc.inFlight, Running: tc.running, Max: tc.max, Nudge: true})
		if d.Start != tc.starts {
			t.Errorf("%+v, %d visible + %d in flight, %d running: start %d, want %d (%s)", tc.env, tc.visible, tc.inFlight, tc.running, d.Start, tc.starts, d.Reason)
		}
	}
}
