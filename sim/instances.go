package sim

import (
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
)

func (w *world) setState(in *instance, s fleet.State) {
	in.state = s
	in.since = w.now
	in.epoch++
	w.lastCapChg = w.now
	w.traceAdd(string(s), in.id)
	w.sample()
}

func (w *world) bringUp(in *instance, extra time.Duration) {
	in.retiring = false
	w.setState(in, fleet.Pending)
	w.starts++
	// A flap: capacity stopped less than a minute ago while the backlog never
	// emptied is being started again.
	for k := len(w.stopTimes) - 1; k >= 0; k-- {
		t := w.stopTimes[k]
		if w.now-t <= time.Minute && w.lastZero < t && w.nVis+w.nFlight > 0 {
			w.flaps++
			w.stopTimes = append(w.stopTimes[:k], w.stopTimes[k+1:]...)
			break
		}
	}
	epoch := in.epoch
	load := w.cfg.Load.Sample(w.delays)
	pend := max(w.cfg.Boot.Sample(w.delays)-w.cfg.Load.Mean, 0) + extra
	w.at(w.now+pend, func() {
		if in.epoch != epoch {
			return
		}
		w.setState(in, fleet.Running)
		in.runningSince = w.now
		e2 := in.epoch
		w.at(w.now+load, func() {
			if in.epoch != e2 {
				return
			}
			in.ready = true
			in.idleSince = w.now
			w.traceAdd("ready", in.id)
			w.dispatch()
		})
	})
}

func (w *world) stop(in *instance, byController bool) {
	if in.state == fleet.Running {
		w.billed += max(w.now-in.runningSince, w.cfg.BillingMinimum)
		if in.busy >= 0 {
			if byController {
				w.busyStops++
			}
			i := in.busy
			receipt := w.msgs[i].receipt
			w.at(w.msgs[i].recvAt+w.cfg.Visibility, func() {
				m := &w.msgs[i]
				if m.state == msgInFlight && m.receipt == receipt {
					m.state = msgVisible
					w.nFlight--
					w.nVis++
					w.visible = append(w.visible, i)
					w.countsChanged()
					w.dispatch()
				}
			})
		}
	}
	in.busy = -1
	in.ready = false
	in.idleArmed = false
	w.setState(in, fleet.Stopping)
	w.stops++
	if w.nVis+w.nFlight > 0 { // only a stop while work waits can start a flap
		keep := w.stopTimes[:0]
		for _, t := range w.stopTimes {
			if w.now-t <= time.Minute {
				keep = append(keep, t)
			}
		}
		w.stopTimes = append(keep, w.now)
	}
	epoch := in.epoch
	w.at(w.now+w.cfg.StopDelay.Sample(w.delays), func() {
		if in.epoch == epoch {
			w.setState(in, fleet.Stopped)
		}
	})
	if p, r := w.capacity(); p+r == 0 {
		w.zeroAt = w.now
	}
}
