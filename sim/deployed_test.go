package sim

import (
	"container/heap"
	"context"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/scaling"
)

// recPolicy records what it is asked and never acts.
type recPolicy struct{ obs []scaling.Observation }

func (p *recPolicy) Name() string { return "rec" }
func (p *recPolicy) Decide(o scaling.Observation) scaling.Decision {
	p.obs = append(p.obs, o)
	return scaling.Decision{Reason: "rec"}
}

// deployedWorld is a world with the deployed triggers, no instances and one
// message that stays queued (nothing ever starts), driven by hand.
func deployedWorld(p scaling.Policy) *world {
	cfg := handConfig().withDefaults()
	w := &world{cfg: cfg, trig: deployed(scaling.Cadence{Loop: true, Nudge: true, Alarm: true}), base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		delays: rand.New(rand.NewPCG(1, 2)), blips: rand.New(rand.NewPCG(1, 3)), msgs: make([]message, 1)}
	w.ctrl = scaling.NewController(scaling.ControllerOptions{Queue: simQueue{w: w}, Fleet: simFleet{w: w},
		Policy: p, Max: 1, History: 1, Logger: slog.New(slog.DiscardHandler)})
	w.countsChanged()
	w.arrive(0)
	w.now = 2 * time.Second // the count (1 s lag) shows the message
	return w
}

func (w *world) runUntil(end time.Duration) {
	for w.evq.Len() > 0 && w.evq[0].at <= end {
		e := heap.Pop(&w.evq).(*event)
		w.now = e.at
		e.fn()
	}
}

type stepAt struct {
	at      float64
	trigger string
	nudge   bool
}

func steps(p *recPolicy, base time.Time) []stepAt {
	var out []stepAt
	for _, o := range p.obs {
		out = append(out, stepAt{o.Now.Sub(base).Seconds(), o.Trigger, o.Nudge})
	}
	return out
}

// TestDeployedInvocation: a looping invocation started at 2 s steps every
// Interval while the step starts by Timeout - Margin (2..57 s: 12 steps, as the
// handler); an invoke that arrives meanwhile is throttled (reserved concurrency
// 1) and retried 1, 2, 4, 8... s later by Lambda's queue: a nudge at 52 s runs at
// 59 s as a nudge; one at 10 s is still waiting at 73 s, older than
// MaxEventAge, and dropped.
func TestDeployedInvocation(t *testing.T) {
	d := scalerfn.Deployed
	if d.Interval != 5*time.Second || d.Timeout != time.Minute || d.Margin != 3*time.Second ||
		d.ReservedConcurrency != 1 || d.RetryFirst != time.Second || d.MaxEventAge != time.Minute {
		t.Skipf("worked out for the deployed values of today; scalerfn.Deployed is now %+v", d)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		nudgeAt float64
		want    []stepAt
	}{
		{52, []stepAt{{59, scaling.TriggerNudge, true}, {64, scaling.TriggerTick, false}}},
		{10, nil},
	} {
		p := &recPolicy{}
		w := deployedWorld(p)
		w.invoke(ctx, scaling.TriggerSchedule, false)
		w.at(sec(tc.nudgeAt), func() { w.invoke(ctx, scaling.TriggerNudge, true) })
		w.runUntil(sec(64))
		want := []stepAt{{2, scaling.TriggerSchedule, false}}
		for k := 7; k <= 57; k += 5 {
			want = append(want, stepAt{float64(k), scaling.TriggerTick, false})
		}
		want = append(want, tc.want...)
		if got := steps(p, w.base); !reflect.DeepEqual(got, want) {
			t.Errorf("nudge at %v s: steps\n got %v\nwant %v", tc.nudgeAt, got, want)
		}
		w.runUntil(sec(200))
		if tc.want == nil && (w.fn.dropped != 1 || w.fn.throttled != 6) {
			t.Errorf("nudge at 10 s: throttled %d dropped %d, want 6 throttles (11, 13, 17, 25, 41, 73 s) and the drop", w.fn.throttled, w.fn.dropped)
		}
	}
}

// TestDeployedInvocationEndsIdle: with nothing queued or up, the invocation
// returns after its first step, as the handler does (scalerfn.Idle).
func TestDeployedInvocationEndsIdle(t *testing.T) {
	p := &recPolicy{}
	w := deployedWorld(p)
	w.msgs[0].state = msgDone
	w.nVis, w.visible = 0, nil
	w.countsChanged()
	w.now = sec(5) // past the count lag
	w.invoke(context.Background(), scaling.TriggerSchedule, false)
	w.runUntil(sec(120))
	if len(p.obs) != 1 || w.fn.running != 0 {
		t.Errorf("%d steps, %d running; want one step and the invocation over", len(p.obs), w.fn.running)
	}
}

// TestNudgeRateLimit: the web tier checks at most once per NudgeMinGap, and
// invokes only when nothing is pending or running.
func TestNudgeRateLimit(t *testing.T) {
	p := &recPolicy{}
	w := deployedWorld(p)
	gap := scalerfn.Deployed.NudgeMinGap
	t0 := w.now
	for _, at := range []time.Duration{0, gap / 2, gap - 1, gap, gap + 1} {
		w.now = t0 + at
		w.nudgeOnArrival(context.Background())
	}
	w.runUntil(t0 + gap + time.Second)
	var nudges int
	for _, o := range p.obs {
		if o.Nudge {
			nudges++
		}
	}
	// Checks at 0 and gap; the second is throttled by the first's invocation.
	if nudges != 1 || w.fn.throttled != 1 || w.fn.lastNudge != t0+gap {
		t.Errorf("nudges %d, throttled %d, last check %v; want 1, 1, %v", nudges, w.fn.throttled, w.fn.lastNudge, t0+gap)
	}
	w.insts = append(w.insts, &instance{id: "i-1", state: "running", busy: -1})
	w.now = t0 + 3*gap
	before := len(w.evq)
	w.nudgeOnArrival(context.Background())
	if len(w.evq) != before || w.fn.lastNudge != t0+3*gap {
		t.Error("a nudge check with a running instance scheduled an invoke")
	}
}

// TestRegistryCadenceIsDeployed: a policy registered to run in the scaler Lambda
// (Cadence.Loop) names the deployed schedule, nudge and alarm.
func TestRegistryCadenceIsDeployed(t *testing.T) {
	var n int
	for _, name := range scaling.PolicyNames() {
		spec, err := scaling.LookupPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		if !spec.Cadence.Loop {
			continue
		}
		n++
		want := scaling.Cadence{Schedule: scalerfn.Deployed.Schedule, Loop: true, Nudge: true, Alarm: true}
		if spec.Cadence != want {
			t.Errorf("%s: registered cadence %+v, want the deployed %+v", name, spec.Cadence, want)
		}
		if _, trig, _ := setup(name, DefaultConfig(), Workload{}, nil); trig.Cadence != want {
			t.Errorf("%s: simulated with %+v, want %+v", name, trig.Cadence, want)
		}
	}
	if n == 0 {
		t.Error("no registered policy runs in the Lambda")
	}
}
