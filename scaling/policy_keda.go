package scaling

import (
	"fmt"
	"time"
)

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
