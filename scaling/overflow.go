package scaling

import (
	"context"
	"fmt"
	"time"
)

// OverflowInvoker is an optional port: short-lived serverless workers (Lambda
// "overflow" invocations) that take requests from the same queue while EC2
// capacity boots. Active reports how many invocations are running and the most
// that may run at once (the function's reserved concurrency); Invoke starts n
// asynchronous invocations. Each invocation takes requests until EC2 capacity is
// running, the queue stays empty, or its deadline nears, then returns; a request
// in its hands when it must stop goes back by the queue's visibility timeout.
//
// Implementations: the simulator's sandboxes (sim) and the scaler Lambda's
// scalerfn.OverflowInvoker, which invokes functions/overflow when
// FACEFLEET_OVERFLOW_FUNCTION is set. Local mode runs without one:
// Observation.OverflowMax stays 0 and the policy never asks for overflow there.
type OverflowInvoker interface {
	Active(ctx context.Context) (active, limit int, err error)
	Invoke(ctx context.Context, n int) error
}

// OverflowOptions are backlog-drain's knobs for overflow workers. They matter
// only where an OverflowInvoker is wired (Observation.OverflowMax > 0). Zero
// fields take the defaults below.
type OverflowOptions struct {
	// ServiceTime is one overflow invocation's time per image (Lambda's vCPU
	// share at its memory size). Default: the policy's ServiceTime (one full
	// vCPU at 1769 MB, assumed as fast as the EC2 worker's).
	ServiceTime time.Duration
	// DrainTarget sizes overflow: ceil(backlog*ServiceTime/DrainTarget)
	// invocations, within the concurrency limit. Default 5 s.
	DrainTarget time.Duration
	// Alone: from zero EC2 capacity, a backlog whose work the overflow at its
	// concurrency limit clears within Alone is left to the overflow alone, and no
	// EC2 instance (billed a minute at least) is started for it. Default 10 s.
	Alone time.Duration
	// Sustain: once the overflow has been working (or the queue non-empty) this
	// long without EC2 capacity, with no pause longer than Quiet, the traffic is
	// not a burst: EC2 starts as without overflow, and the overflow bridges its
	// boot. Default 20 s.
	Sustain time.Duration
	// Quiet: a pause without work this long ends a stretch of overflow work.
	// Default 5 s.
	Quiet time.Duration
}

// Overflow defaults.
const (
	DefaultOverflowDrainTarget = 5 * time.Second
	DefaultOverflowAlone       = 10 * time.Second
	DefaultOverflowSustain     = 20 * time.Second
	DefaultOverflowQuiet       = 5 * time.Second
)

func (o OverflowOptions) withDefaults(svc time.Duration) OverflowOptions {
	if o.ServiceTime <= 0 {
		o.ServiceTime = svc
	}
	if o.DrainTarget <= 0 {
		o.DrainTarget = DefaultOverflowDrainTarget
	}
	if o.Alone <= 0 {
		o.Alone = DefaultOverflowAlone
	}
	if o.Sustain <= 0 {
		o.Sustain = DefaultOverflowSustain
	}
	if o.Quiet <= 0 {
		o.Quiet = DefaultOverflowQuiet
	}
	return o
}

// overflowPlan is backlog-drain's overflow half. It returns how many overflow
// invocations to start and whether EC2 starts are deferred to the overflow.
// Overflow runs only while no EC2 instance is running: invocations stop
// themselves once one is, so they bridge the boot and never compete with
// capacity that is already paid for.
func (p *BacklogDrain) overflowPlan(o Observation, backlog int) (start int, deferEC2 bool, why string) {
	if o.OverflowMax <= 0 { // no overflow function where this runs
		p.ovSince = time.Time{}
		return 0, false, ""
	}
	opt := p.opt.Overflow
	working := backlog > 0 || o.Overflow > 0
	switch {
	case o.Running+o.Pending > 0 || (!working && o.Now.Sub(p.ovLast) > opt.Quiet):
		p.ovSince = time.Time{}
	case working:
		if p.ovSince.IsZero() || o.Now.Before(p.ovSince) {
			p.ovSince = o.Now
		}
		p.ovLast = o.Now
	}
	if backlog == 0 || o.Running > 0 {
		return 0, false, ""
	}
	work := time.Duration(backlog) * opt.ServiceTime
	want := clamp(int((work+opt.DrainTarget-1)/opt.DrainTarget), 1, o.OverflowMax)
	start = max(want-o.Overflow, 0)
	if o.Pending == 0 && !p.ovSince.IsZero() && o.Now.Sub(p.ovSince) < opt.Sustain &&
		work/time.Duration(o.OverflowMax) <= opt.Alone {
		return start, true, fmt.Sprintf("; overflow alone: %v of work on %d invocations (%d active), no EC2 minute for a burst", work, want, o.Overflow)
	}
	return start, false, fmt.Sprintf("; overflow bridges the EC2 boot: %d invocations (%d active)", want, o.Overflow)
}
