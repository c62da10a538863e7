package sim

import (
	"context"
	"time"

	"github.com/facefleet/facefleet/scaling"
)

func (w *world) step(ctx context.Context, trigger string, nudge bool) scaling.Decision {
	d, err := w.ctrl.StepTrigger(ctx, w.clock(), trigger, nudge)
	if err != nil {
		w.stepErrors++
	}
	return d
}

// invoke is one scaler invocation: a step, then (with Loop) re-evaluation every
// Config.Loop until Config.Invocation has passed or everything is idle.
func (w *world) invoke(ctx context.Context, trigger string, nudge bool) {
	w.step(ctx, trigger, nudge)
	if !w.trig.Loop {
		return
	}
	w.loopUntil = max(w.loopUntil, w.now+w.cfg.Invocation)
	if !w.loopOn {
		w.loopOn = true
		w.at(w.now+w.cfg.Loop, func() { w.loopTick(ctx) })
	}
}

func (w *world) loopTick(ctx context.Context) {
	if w.now > w.loopUntil || w.done {
		w.loopOn = false
		return
	}
	d := w.step(ctx, scaling.TriggerTick, false)
	o := d.Observation
	if o.Visible+o.InFlight+o.Pending+o.Running == 0 {
		w.loopOn = false // the invocation returns: nothing to watch
		return
	}
	w.at(w.now+w.cfg.Loop, func() { w.loopTick(ctx) })
}

func (w *world) periodic(first, every time.Duration, fn func()) {
	var tick func()
	tick = func() {
		if w.done {
			return
		}
		fn()
		w.at(w.now+every, tick)
	}
	w.at(first, tick)
}
