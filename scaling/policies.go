package scaling

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Policy names, as the CLI and the simulator spell them.
const (
	NameSeed           = "seed"
	NameTargetTracking = "target-tracking"
	NameKEDA           = "keda"
	NameFacefleet      = "facefleet"
)

// ErrUnknownPolicy is returned by NewPolicy for a name it does not know.
var ErrUnknownPolicy = errors.New("scaling: unknown policy")

// NewPolicy returns a fresh policy (with its default knobs) by name. The oracle
// lives in the simulator because it needs the future.
func NewPolicy(name string) (Policy, error) {
	switch name {
	case NameSeed:
		return NewSeed(), nil
	case NameTargetTracking:
		return NewTargetTracking(TargetTrackingOptions{}), nil
	case NameKEDA:
		return NewKEDA(KEDAOptions{}), nil
	case NameFacefleet:
		return NewFacefleet(FacefleetOptions{}), nil
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownPolicy, name, strings.Join(PolicyNames(), ", "))
}

// PolicyNames lists the names NewPolicy accepts.
func PolicyNames() []string {
	return []string{NameSeed, NameTargetTracking, NameKEDA, NameFacefleet}
}

// DefaultPolicy is ours: NewFacefleet with its documented defaults.
func DefaultPolicy() Policy { return NewFacefleet(FacefleetOptions{}) }

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

func act(o Observation, desired int, capacity int, reason string) Decision {
	d := Decision{Desired: desired, Reason: reason}
	if desired > capacity {
		d.Start = desired - capacity
	} else if desired < capacity {
		d.Stop = capacity - desired
	}
	return d
}

// ---------------------------------------------------------------------------
// seed

// Seed is the seed project's rule, flaws included, kept as the baseline: desired is
// the visible count capped at SeedCap; it starts `visible - running` (pending
// instances are not counted, so consecutive ticks over-launch) and stops
// `running - visible` (in-flight work is not counted, so it stops busy workers).
type Seed struct{}

// SeedCap is the seed's hard-coded cap.
const SeedCap = 19

// NewSeed returns the seed's policy.
func NewSeed() *Seed { return &Seed{} }

// Name implements Policy.
func (*Seed) Name() string { return NameSeed }

// Decide implements Policy.
func (*Seed) Decide(o Observation) Decision {
	desired := min(o.Visible, SeedCap)
	d := Decision{Desired: desired}
	switch {
	case desired > o.Running:
		d.Start = desired - o.Running
		d.Reason = fmt.Sprintf("seed: %d visible > %d running", o.Visible, o.Running)
	case o.Running > o.Visible:
		d.Stop = o.Running - o.Visible
		d.Reason = fmt.Sprintf("seed: %d running > %d visible: stop the surplus", o.Running, o.Visible)
	default:
		d.Reason = "seed: balanced"
	}
	return d
}

// ---------------------------------------------------------------------------
// facefleet (ours)

// FacefleetOptions are our policy's knobs. Zero values take the defaults below.
type FacefleetOptions struct {
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
}

// Facefleet defaults.
const (
	DefaultServiceTime = 60 * time.Millisecond
	DefaultDrainTarget = 20 * time.Second
	DefaultBlipConfirm = 4 * time.Second
	DefaultHeadroom    = 0.25
	DefaultScaleIn     = time.Minute
)

// Facefleet is our policy. It counts in-flight messages as work, counts pending
// instances as capacity already coming (stopping ones do not count), sizes capacity
// by the work in the backlog rather than the message count, believes a nudge, and
// ignores a one-off +1 from zero. It never stops instances: workers stop themselves
// when idle, so no busy worker is ever killed. Where the fleet can retire
// instances (stop after the current job), it also retires a steady surplus that
// idle timeouts cannot release because busy workers share the queue, down to the
// average busy workers of the last ScaleInWindow plus Headroom, and never below
// one instance.
type Facefleet struct {
	opt        FacefleetOptions
	blipSince  time.Time // when a lone unconfirmed 1 was first seen from zero
	needs      []rec     // in-flight count per observation within ScaleInWindow
	windowFrom time.Time // the scale-in window restarts on every start and retire
}

// NewFacefleet returns our policy with o's knobs (zero fields take defaults).
func NewFacefleet(o FacefleetOptions) *Facefleet {
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
	return &Facefleet{opt: o}
}

// Options returns the knobs in effect.
func (p *Facefleet) Options() FacefleetOptions { return p.opt }

// Name implements Policy.
func (*Facefleet) Name() string { return NameFacefleet }

// Decide implements Policy.
func (p *Facefleet) Decide(o Observation) Decision {
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
			return Decision{Reason: "facefleet: lone +1 from zero without a nudge; confirming before paying a billed minute"}
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
	d := Decision{Desired: desired}
	if p.windowFrom.IsZero() || o.Now.Before(p.windowFrom) {
		p.windowFrom = o.Now
	}
	if desired > capacity {
		d.Start = desired - capacity
		d.Reason = fmt.Sprintf("facefleet: backlog %d (%d visible + %d in flight) needs %d, have %d running + %d pending",
			backlog, o.Visible, o.InFlight, desired, o.Running, o.Pending)
		p.needs, p.windowFrom = p.needs[:0], o.Now
		return d
	}
	d.Reason = fmt.Sprintf("facefleet: backlog %d needs %d, have %d; surplus workers stop themselves when idle",
		backlog, desired, capacity)
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
		d.Reason = fmt.Sprintf("facefleet: %.1f busy on average over the last %v needs %d, have %d running: retire %d after their current job",
			busy, p.opt.ScaleInWindow, floor, o.Running, d.Retire)
		p.windowFrom = o.Now
	}
	return d
}

// ---------------------------------------------------------------------------
// KEDA

// KEDAOptions model KEDA's aws-sqs-queue scaler with the HPA behind it.
type KEDAOptions struct {
	QueueLength     int           // target messages per replica; default 5 (KEDA's default)
	PollingInterval time.Duration // default 30 s
	CooldownPeriod  time.Duration // to zero only after this long without activity; default 300 s
	Stabilization   time.Duration // HPA scale-down stabilisation window; default 300 s
	// IgnoreInFlight turns off KEDA's scaleOnInFlight (on by default).
	IgnoreInFlight bool
}

// KEDA is ceil(backlog/QueueLength) evaluated every PollingInterval, scale-up at
// once, scale-down to the highest recommendation of the stabilisation window, and
// to zero after CooldownPeriod without activity. Scale-down removes replicas
// without knowing which are busy.
type KEDA struct {
	opt        KEDAOptions
	lastPoll   time.Time
	lastActive time.Time
	recs       []rec
}

type rec struct {
	at time.Time
	n  int
}

// NewKEDA returns a KEDA-like policy.
func NewKEDA(o KEDAOptions) *KEDA {
	if o.QueueLength <= 0 {
		o.QueueLength = 5
	}
	if o.PollingInterval <= 0 {
		o.PollingInterval = 30 * time.Second
	}
	if o.CooldownPeriod <= 0 {
		o.CooldownPeriod = 300 * time.Second
	}
	if o.Stabilization <= 0 {
		o.Stabilization = 300 * time.Second
	}
	return &KEDA{opt: o}
}

// Name implements Policy.
func (*KEDA) Name() string { return NameKEDA }

// Decide implements Policy.
func (p *KEDA) Decide(o Observation) Decision {
	if !p.lastPoll.IsZero() && o.Now.Sub(p.lastPoll) < p.opt.PollingInterval {
		return Decision{Desired: o.Running + o.Pending, Reason: "keda: between polls"}
	}
	p.lastPoll = o.Now
	backlog := o.Visible
	if !p.opt.IgnoreInFlight {
		backlog += o.InFlight
	}
	capacity := o.Running + o.Pending
	if backlog > 0 {
		p.lastActive = o.Now
	}
	r := ceilDiv(backlog, p.opt.QueueLength)
	if o.Max > 0 {
		r = min(r, o.Max)
	}
	p.recs = append(p.recs, rec{o.Now, r})
	keep := p.recs[:0]
	for _, x := range p.recs {
		if o.Now.Sub(x.at) <= p.opt.Stabilization {
			keep = append(keep, x)
		}
	}
	p.recs = keep
	desired := r
	if desired < capacity { // scale down only to the window's highest recommendation
		for _, x := range p.recs {
			desired = max(desired, x.n)
		}
		desired = min(desired, capacity)
	}
	if desired == 0 && capacity > 0 && (p.lastActive.IsZero() || o.Now.Sub(p.lastActive) < p.opt.CooldownPeriod) {
		desired = 1 // KEDA keeps one replica until the cooldown has passed
	}
	return act(o, desired, capacity, fmt.Sprintf("keda: backlog %d / %d per replica -> %d (stabilised %d)", backlog, p.opt.QueueLength, r, desired))
}

// ---------------------------------------------------------------------------
// target tracking

// TargetTrackingOptions model an EC2 Auto Scaling target-tracking policy on a
// custom "backlog per instance" metric.
type TargetTrackingOptions struct {
	Target          float64       // backlog per instance; default 10
	Period          time.Duration // metric period and evaluation cadence; default 60 s
	MetricDelay     time.Duration // CloudWatch publication lag; default 60 s
	ScaleOutPeriods int           // datapoints above target before scaling out; default 3
	ScaleInPeriods  int           // datapoints below 90% of target before scaling in; default 15
}

// TargetTracking is AWS target tracking: every Period it reads a datapoint that is
// MetricDelay old (visible / instances, with a floor of one instance so it can
// leave zero), scales out to ceil(visible/Target) after ScaleOutPeriods datapoints
// above Target and scales in after ScaleInPeriods datapoints below 90% of it. From
// zero instances, a companion step policy starts one instance on the first delayed
// datapoint with visible > 0 (target tracking alone cannot leave zero).
type TargetTracking struct {
	opt     TargetTrackingOptions
	samples []ttSample // observations not yet older than the metric delay + one
	last    time.Time
	high    int
	low     int
}

type ttSample struct {
	at       time.Time
	visible  int
	capacity int
}

// NewTargetTracking returns a target-tracking policy.
func NewTargetTracking(o TargetTrackingOptions) *TargetTracking {
	if o.Target <= 0 {
		o.Target = 10
	}
	if o.Period <= 0 {
		o.Period = time.Minute
	}
	if o.MetricDelay <= 0 {
		o.MetricDelay = time.Minute
	}
	if o.ScaleOutPeriods <= 0 {
		o.ScaleOutPeriods = 3
	}
	if o.ScaleInPeriods <= 0 {
		o.ScaleInPeriods = 15
	}
	return &TargetTracking{opt: o}
}

// Name implements Policy.
func (*TargetTracking) Name() string { return NameTargetTracking }

// Decide implements Policy.
func (p *TargetTracking) Decide(o Observation) Decision {
	capacity := o.Running + o.Pending
	p.samples = append(p.samples, ttSample{o.Now, o.Visible, capacity})
	if !p.last.IsZero() && o.Now.Sub(p.last) < p.opt.Period {
		return Decision{Desired: capacity, Reason: "target-tracking: between evaluations"}
	}
	p.last = o.Now
	// The datapoint CloudWatch has now is the newest sample at least MetricDelay old.
	cut := o.Now.Add(-p.opt.MetricDelay)
	i := sort.Search(len(p.samples), func(i int) bool { return p.samples[i].at.After(cut) })
	if i == 0 {
		return Decision{Desired: capacity, Reason: "target-tracking: no datapoint published yet"}
	}
	dp := p.samples[i-1]
	p.samples = append(p.samples[:0], p.samples[i-1:]...)
	metric := float64(dp.visible) / float64(max(dp.capacity, 1))
	if metric > p.opt.Target {
		p.high++
	} else {
		p.high = 0
	}
	if metric < 0.9*p.opt.Target {
		p.low++
	} else {
		p.low = 0
	}
	desired := int(float64(dp.visible)/p.opt.Target + 0.999999)
	if o.Max > 0 {
		desired = min(desired, o.Max)
	}
	reason := fmt.Sprintf("target-tracking: datapoint %.1f/instance (target %.0f), high %d/%d, low %d/%d",
		metric, p.opt.Target, p.high, p.opt.ScaleOutPeriods, p.low, p.opt.ScaleInPeriods)
	switch {
	case capacity == 0 && dp.visible > 0:
		// Target tracking cannot leave zero (the metric has no instances to divide
		// by); AWS setups pair it with a step policy on visible > 0, modelled here.
		return act(o, 1, capacity, reason+": scale from zero to one (step policy)")
	case p.high >= p.opt.ScaleOutPeriods && desired > capacity:
		return act(o, desired, capacity, reason+": scale out")
	case p.low >= p.opt.ScaleInPeriods && desired < capacity:
		return act(o, desired, capacity, reason+": scale in")
	}
	return Decision{Desired: capacity, Reason: reason}
}
