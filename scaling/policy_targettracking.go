package scaling

import (
	"fmt"
	"sort"
	"time"
)

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
