package scaling

import (
	"fmt"
	"math"
	"time"
)

// BacklogDrainOptions are our policy's knobs. Zero values take the defaults below.
type BacklogDrainOptions struct {
	// ServiceTime is how long one instance takes per message (engine benchmark
	// on the worker's instance type). Default 60 ms.
	ServiceTime time.Duration
	// DrainTarget is how soon, once capacity is up, the current backlog should be
	// gone. Capacity is sized as ceil(backlog*ServiceTime/DrainTarget): a backlog
	// one instance clears within the target gets one instance, which is also the
	// cheapest, because every start is billed for at least a minute. Default 20 s.
	DrainTarget time.Duration
	// BlipConfirm: from zero capacity, a lone count of 1 with no nudge is believed
	// only when seen again at least this much later. SQS's approximate counts blip;
	// each false start costs a billed minute. Default 4 s.
	BlipConfirm time.Duration
	// Headroom: when the fleet can retire instances, keep busy workers (in-flight
	// messages) times 1+Headroom. Default 0.25.
	Headroom float64
	// ScaleInWindow: retire only the surplus over the average busy workers (plus
	// Headroom) seen during this long, and at most once per window. Default 60 s.
	ScaleInWindow time.Duration
	// Overflow: knobs for overflow workers (scaling/overflow.go), used only
	// where an OverflowInvoker is wired.
	Overflow OverflowOptions
}

// BacklogDrain defaults.
const (
	DefaultServiceTime = 60 * time.Millisecond
	DefaultDrainTarget = 20 * time.Second
	DefaultBlipConfirm = 4 * time.Second
	DefaultHeadroom    = 0.25
	DefaultScaleIn     = time.Minute
)

// BacklogDrain is our policy. It counts in-flight messages as work, counts pending
// instances as capacity already coming (stopping ones do not count), sizes capacity
// by the work in the backlog rather than the message count, believes a nudge, and
// ignores a one-off +1 from zero. It never stops instances: workers stop themselves
// when idle, so no busy worker is ever killed. Where the fleet can retire
// instances (stop after the current job), it also retires a steady surplus that
// idle timeouts cannot release because busy workers share the queue, down to the
// average busy workers of the last ScaleInWindow plus Headroom, and never below
// one instance.
type BacklogDrain struct {
	opt        BacklogDrainOptions
	blipSince  time.Time // when a lone unconfirmed 1 was first seen from zero
	needs      []rec     // in-flight count per observation within ScaleInWindow
	windowFrom time.Time // the scale-in window restarts on every start and retire
	ovSince    time.Time // since when the overflow has worked without EC2 capacity
	ovLast     time.Time // when the overflow was last seen working
}

// NewBacklogDrain returns our policy with o's knobs (zero fields take defaults).
func NewBacklogDrain(o BacklogDrainOptions) *BacklogDrain {
	if o.ServiceTime <= 0 {
		o.ServiceTime = DefaultServiceTime
	}
	if o.DrainTarget <= 0 {
		o.DrainTarget = DefaultDrainTarget
	}
	if o.BlipConfirm <= 0 {
		o.BlipConfirm = DefaultBlipConfirm
	}
	if o.Headroom <= 0 {
		o.Headroom = DefaultHeadroom
	}
	if o.ScaleInWindow <= 0 {
		o.ScaleInWindow = DefaultScaleIn
	}
	o.Overflow = o.Overflow.withDefaults(o.ServiceTime)
	return &BacklogDrain{opt: o}
}

// Options returns the knobs in effect.
func (p *BacklogDrain) Options() BacklogDrainOptions { return p.opt }

// Name implements Policy.
func (*BacklogDrain) Name() string { return NameBacklogDrain }

// Decide implements Policy.
func (p *BacklogDrain) Decide(o Observation) Decision {
	backlog := o.Visible + o.InFlight
	capacity := o.Running + o.Pending
	if o.Nudge && backlog == 0 {
		backlog = 1 // the request is real even if the count lags
	}
	if capacity == 0 && backlog == 1 && !o.Nudge {
		if p.blipSince.IsZero() || o.Now.Before(p.blipSince) {
			p.blipSince = o.Now
		}
		if o.Now.Sub(p.blipSince) < p.opt.BlipConfirm {
			return Decision{Reason: "backlog-drain: lone +1 from zero without a nudge; confirming before paying a billed minute"}
		}
	} else {
		p.blipSince = time.Time{}
	}
	work := time.Duration(backlog) * p.opt.ServiceTime
	desired := int((work + p.opt.DrainTarget - 1) / p.opt.DrainTarget)
	if backlog > 0 {
		desired = max(desired, 1)
	}
	if o.Max > 0 {
		desired = min(desired, o.Max)
	}
	ovStart, deferEC2, ovWhy := p.overflowPlan(o, backlog)
	d := Decision{Desired: desired, Overflow: ovStart}
	if deferEC2 {
		d.Desired = capacity
		d.Reason = fmt.Sprintf("backlog-drain: backlog %d (%d visible + %d in flight)%s", backlog, o.Visible, o.InFlight, ovWhy)
		return d
	}
	if p.windowFrom.IsZero() || o.Now.Before(p.windowFrom) {
		p.windowFrom = o.Now
	}
	if desired > capacity {
		d.Start = desired - capacity
		d.Reason = fmt.Sprintf("backlog-drain: backlog %d (%d visible + %d in flight) needs %d, have %d running + %d pending",
			backlog, o.Visible, o.InFlight, desired, o.Running, o.Pending) + ovWhy
		p.needs, p.windowFrom = p.needs[:0], o.Now
		return d
	}
	d.Reason = fmt.Sprintf("backlog-drain: backlog %d needs %d, have %d; surplus workers stop themselves when idle",
		backlog, desired, capacity) + ovWhy
	if !o.CanRetire {
		return d
	}
	p.needs = append(p.needs, rec{o.Now, o.InFlight})
	keep := p.needs[:0]
	for _, x := range p.needs {
		if o.Now.Sub(x.at) <= p.opt.ScaleInWindow {
			keep = append(keep, x)
		}
	}
	p.needs = keep
	if o.Pending > 0 || o.Now.Sub(p.windowFrom) < p.opt.ScaleInWindow {
		return d
	}
	// Busy workers averaged over the window, plus headroom, plus what the backlog
	// needs now; never below one: the last worker goes by its idle timeout, so
	// scale to zero stays there.
	sum := 0
	for _, x := range p.needs {
		sum += x.n
	}
	busy := float64(sum) / float64(len(p.needs))
	floor := max(desired, int(math.Ceil(busy*(1+p.opt.Headroom))), 1)
	if o.Running > floor {
		d.Desired = floor
		d.Retire = o.Running - floor
		d.Reason = fmt.Sprintf("backlog-drain: %.1f busy on average over the last %v needs %d, have %d running: retire %d after their current job",
			busy, p.opt.ScaleInWindow, floor, o.Running, d.Retire)
		p.windowFrom = o.Now
	}
	return d
}
