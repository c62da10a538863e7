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
