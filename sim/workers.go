package sim

import (
	"fmt"

	"github.com/facefleet/facefleet/internal/fleet"
)

func (w *world) arrive(i int) {
	w.msgs[i].state = msgVisible
	w.visible = append(w.visible, i)
	w.nVis++
	w.countsChanged()
	w.dispatch()
}

// dispatch hands visible messages to ready idle workers, the longest-waiting
// poller first (SQS long polls spread work over all pollers, so a surplus worker
// rarely sits idle long enough to time out), and arms idle timers on workers left
// idle.
func (w *world) dispatch() {
	for w.nVis > 0 {
		var pick *instance
		for _, in := range w.insts {
			if in.state == fleet.Running && in.ready && in.busy < 0 && !in.retiring &&
				(pick == nil || in.idleSince < pick.idleSince) {
				pick = in
			}
		}
		if pick == nil {
			break
		}
		if w.receive(pick); pick.busy < 0 {
			break // nothing receivable after all; never spin
		}
	}
	for _, in := range w.insts {
		if in.state == fleet.Running && in.ready && in.busy < 0 && !in.retiring && !in.idleArmed {
			w.armIdle(in)
		}
	}
	w.dispatchOverflow()
}

func (w *world) receive(in *instance) {
	i, ok := w.popVisible()
	if !ok {
		return
	}
	in.busy = i
	in.idleArmed = false
	epoch := in.epoch
	w.at(w.now+w.msgs[i].svc, func() { w.finish(in, epoch, i) })
}

// popVisible receives the next visible message (FIFO), marking it in flight.
func (w *world) popVisible() (int, bool) {
	if w.vhead > 4096 && w.vhead*2 > len(w.visible) { // compact the FIFO
		w.visible = append(w.visible[:0:0], w.visible[w.vhead:]...)
		w.vhead = 0
	}
	for w.vhead < len(w.visible) {
		i := w.visible[w.vhead]
		w.vhead++
		m := &w.msgs[i]
		if m.state != msgVisible {
			continue
		}
		m.state = msgInFlight
		m.receipt++
		m.receivedN++
		m.recvAt = w.now
		w.nVis--
		w.nFlight++
		w.countsChanged()
		return i, true
	}
	return 0, false
}

func (w *world) finish(in *instance, epoch, i int) {
	if in.epoch != epoch || in.busy != i {
		return // stopped mid-job: the message comes back after its visibility timeout
	}
	in.busy = -1
	in.idleSince = w.now
	w.answer(i)
	if in.retiring {
		w.stop(in, false) // retired: stop after the current job, never during it
	}
	w.dispatch()
}

// answer stores message i's result, answers it and deletes it from the queue.
func (w *world) answer(i int) {
	m := &w.msgs[i]
	m.state = msgDone
	m.answerAt = w.now
	w.nFlight--
	if w.answered == 0 {
		w.firstAnswer = w.now
	}
	w.answered++
	w.lastAnswer = w.now
	w.traceAdd("answer", fmt.Sprint(i))
	w.countsChanged()
}

func (w *world) armIdle(in *instance) {
	in.idleArmed = true
	in.idleEpoch++
	ie, epoch := in.idleEpoch, in.epoch
	stopAt := w.now + w.cfg.IdleTimeout
	if w.trig.IdleAtOnce {
		stopAt = w.now
	}
	if !w.cfg.IdleIgnoresBilling {
		stopAt = max(stopAt, in.runningSince+w.cfg.BillingMinimum)
	}
	w.at(stopAt, func() {
		if in.epoch != epoch || in.idleEpoch != ie || in.busy >= 0 || !in.idleArmed {
			return
		}
		if w.oracle != nil && w.oracle.keepIdle(in) {
			// Clairvoyant: the plan keeps this worker for the next arrival.
			in.idleArmed = false
			w.at(w.oracle.nextArrival(), func() {
				if in.epoch == epoch && in.busy < 0 && !in.idleArmed {
					w.armIdle(in)
				}
			})
			return
		}
		w.stop(in, false)
	})
}
