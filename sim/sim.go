// Package sim is a discrete-event simulator of the app tier's autoscaling. A virtual
// clock drives the real scaling.Controller and policies through a simulated EC2
// fleet (fleet.Fleet) and a simulated SQS queue (approximate, lagging counts), with
// workers that long-poll, process, and stop themselves when idle, EC2 start, stop
// and launch delays, per-second billing with a minimum per start, and the trigger
// cadences the policies really get (EventBridge schedule, CloudWatch alarm,
// in-invocation loop, web-tier nudge, KEDA polling), plus Lambda overflow workers
// with cold starts, a concurrency limit and GB-second billing (overflow.go).
// Runs are deterministic for a
// seed: every random draw comes from seeded PCG streams and ties in the event
// queue break by insertion order.
package sim

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/scaling"
)

// Run simulates one policy over one workload.
func Run(ctx context.Context, cfg Config, wl Workload, policy string) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	if len(wl.Arrivals) == 0 {
		return Result{}, fmt.Errorf("sim: workload %q has no requests", wl.Name)
	}
	svcRand := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0002))
	svc := make([]time.Duration, len(wl.Arrivals))
	for i := range svc {
		svc[i] = max(cfg.Service.Sample(svcRand), time.Microsecond)
	}
	pol, trig, err := setup(policy, cfg, wl, svc)
	if err != nil {
		return Result{}, err
	}
	w := &world{
		cfg:    cfg,
		trig:   trig,
		base:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		delays: rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0003)),
		blips:  rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0004)),
		msgs:   make([]message, len(wl.Arrivals)),
	}
	if o, ok := pol.(*oracle); ok {
		o.w = w
		w.oracle = o
	}
	for range cfg.Pool {
		w.newInstance()
	}
	var fl fleet.Fleet = simFleet{w: w}
	if cfg.Retire {
		fl = retirer{simFleet{w: w}}
	}
	var ov scaling.OverflowInvoker
	if cfg.Overflow.Concurrency > 0 {
		w.ov = &overflowState{}
		ov = simOverflow{w: w}
	}
	w.ctrl = scaling.NewController(scaling.ControllerOptions{
		Queue: simQueue{w: w, exact: trig.ExactCounts}, Fleet: fl,
		Policy: pol, Max: cfg.Max, History: 1, Logger: slog.New(slog.DiscardHandler),
		Overflow: ov,
	})
	w.countsChanged()
	w.lastArrival = wl.Arrivals[len(wl.Arrivals)-1]

	for i, a := range wl.Arrivals {
		w.msgs[i] = message{arrival: a, svc: svc[i]}
		w.at(a, func() {
			w.arrive(i)
			if trig.Nudge {
				w.nudgeOnArrival(ctx)
			}
			if trig.OnArrival && (i+1 == len(wl.Arrivals) || wl.Arrivals[i+1] != a) {
				w.step(ctx, scaling.TriggerTick, false)
			}
		})
	}
	if trig.Schedule > 0 {
		w.periodic(cfg.Phase, trig.Schedule, func() { w.invoke(ctx, scaling.TriggerSchedule, false) })
	}
	if trig.Poll > 0 {
		w.periodic(cfg.Phase%trig.Poll, trig.Poll, func() { w.step(ctx, scaling.TriggerTick, false) })
	}
	if trig.Alarm {
		w.startAlarm(ctx)
	}

	end := w.lastArrival + cfg.Horizon
	for w.evq.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("sim: %s/%s interrupted: %w", wl.Name, policy, err)
		}
		e := heap.Pop(&w.evq).(*event)
		if e.at > end {
			break
		}
		w.now = e.at
		e.fn()
		if w.answered == len(w.msgs) {
			if p, r := w.capacity(); p+r == 0 && w.now >= w.lastCapChg+cfg.Settle && w.now >= w.lastAnswer+cfg.Settle {
				w.done = true
				break
			}
		}
	}
	// Instances still up at the hard stop are billed until then.
	for _, in := range w.insts {
		if in.state == fleet.Running {
			w.billed += max(w.now-in.runningSince, cfg.BillingMinimum)
		}
	}
	if w.ov != nil {
		for _, b := range w.ov.boxes {
			if b.active {
				w.overflowReturn(b)
			}
		}
	}
	return w.result(wl, policy), nil
}
