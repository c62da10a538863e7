package sim

import (
	"context"
	"time"

	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/scaling"
)

// Our policy on AWS runs with the triggers template.yaml deploys, taken from
// scalerfn.Deployed (test/template checks the template against it):
//
//   - EventBridge every Deployed.Schedule, first at Config.Phase;
//   - the backlog alarm: every Deployed.AlarmPeriod (from Config.Phase) it reads
//     the visible count Config.MetricDelay old, is in ALARM after
//     Deployed.AlarmEvaluationPeriods periods at or above Deployed.AlarmThreshold,
//     and invokes the function on every change of state (ALARM and OK actions);
//   - the web tier's nudge (internal/scalernudge): on an arrival, at most once per
//     Deployed.NudgeMinGap, it checks the fleet and, with nothing pending or
//     running, invokes the function Config.NudgeDelay later with the nudge flag;
//   - every invoke is asynchronous and meets the function's reserved concurrency
//     (Deployed.ReservedConcurrency): an invoke that finds it taken is throttled
//     and retried by Lambda's queue Deployed.RetryFirst later, then at doubling
//     intervals, and dropped once older than Deployed.MaxEventAge;
//   - an invocation steps, then re-steps every Config.Loop while the step starts
//     no later than Config.Invocation - Deployed.Margin, and returns after a step
//     that finds nothing to watch (scalerfn.Idle), as the handler does.
//
// Not modelled: step durations (API latency) inside an invocation, cold starts
// beyond Config.NudgeDelay, and the jitter of Lambda's retry intervals.
//
// c is the policy's registered cadence (scaling.PolicySpec); its schedule must
// be the deployed one (TestRegistryCadenceIsDeployed).
func deployed(c scaling.Cadence) Triggers {
	c.Schedule = scalerfn.Deployed.Schedule
	return Triggers{Cadence: c}
}

// lambdaState is the deployed scaler's state in the simulated world.
type lambdaState struct {
	running    int           // invocations in progress
	nudged     bool          // the web tier has checked at least once
	lastNudge  time.Duration // when it last checked
	alarmOn    bool
	breaching  int // consecutive alarm periods at or above the threshold
	throttled  int // invokes that found the concurrency taken (each retry counts)
	dropped    int // invokes older than MaxEventAge, never run
	invocation int // invocations run
}

// invoke is one asynchronous invoke of the scaler. Policies without the
// in-invocation loop (the seed's and target tracking's once-a-minute
// evaluations) take one step.
func (w *world) invoke(ctx context.Context, trigger string, nudge bool) {
	if !w.trig.Loop {
		w.step(ctx, trigger, nudge)
		return
	}
	w.deliver(ctx, trigger, nudge, w.now, 0)
}

// deliver runs the invoke sent at sent, or throttles it (attempt counts the
// throttles so far).
func (w *world) deliver(ctx context.Context, trigger string, nudge bool, sent time.Duration, attempt int) {
	d := scalerfn.Deployed
	if w.done {
		return
	}
	if d.ReservedConcurrency > 0 && w.fn.running >= d.ReservedConcurrency {
		w.fn.throttled++
		next := w.now + d.RetryFirst<<attempt
		if next-sent > d.MaxEventAge {
			w.fn.dropped++
			return
		}
		w.at(next, func() { w.deliver(ctx, trigger, nudge, sent, attempt+1) })
		return
	}
	w.fn.running++
	w.fn.invocation++
	stopAt := w.now + w.cfg.Invocation - d.Margin
	var tick func(trigger string, nudge bool)
	tick = func(trigger string, nudge bool) {
		dec, err := w.ctrl.StepTrigger(ctx, w.clock(), trigger, nudge)
		if err != nil {
			w.stepErrors++
		}
		if w.done || (err == nil && scalerfn.Idle(dec)) || w.now+w.cfg.Loop > stopAt {
			w.fn.running--
			return
		}
		w.at(w.now+w.cfg.Loop, func() { tick(scaling.TriggerTick, false) })
	}
	tick(trigger, nudge)
}

// nudgeOnArrival is the web tier's nudger (internal/scalernudge) on an arrival.
func (w *world) nudgeOnArrival(ctx context.Context) {
	if w.fn.nudged && w.now-w.fn.lastNudge < scalerfn.Deployed.NudgeMinGap {
		return
	}
	w.fn.nudged, w.fn.lastNudge = true, w.now
	if p, r := w.capacity(); p+r > 0 {
		return // a worker is up or coming: no invoke
	}
	w.at(w.now+w.cfg.NudgeDelay, func() { w.invoke(ctx, scaling.TriggerNudge, true) })
}

// startAlarm evaluates the backlog alarm as deployed.
func (w *world) startAlarm(ctx context.Context) {
	d := scalerfn.Deployed
	w.periodic(w.cfg.Phase, d.AlarmPeriod, func() {
		v, _ := w.countsAt(w.now - w.cfg.MetricDelay)
		if v >= d.AlarmThreshold {
			w.fn.breaching++
		} else {
			w.fn.breaching = 0
		}
		on := w.fn.breaching >= d.AlarmEvaluationPeriods
		if on != w.fn.alarmOn && (on || d.AlarmInvokesOnOK) {
			w.invoke(ctx, scaling.TriggerAlarm, false)
		}
		w.fn.alarmOn = on
	})
}
