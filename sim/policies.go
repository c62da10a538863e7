package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/scaling"
)

// Triggers are the cadences a policy is evaluated at; they model where it runs.
type Triggers struct {
	Schedule    time.Duration // EventBridge-like period (0: none), first at Config.Phase
	Poll        time.Duration // a continuously running poller (KEDA, the oracle)
	Loop        bool          // re-evaluate every Config.Loop inside an invocation
	Nudge       bool          // the web tier nudges when a request finds no worker
	Alarm       bool          // a CloudWatch alarm on visible > 0 invokes on OK->ALARM
	OnArrival   bool          // evaluate at every arrival instant (the oracle)
	ExactCounts bool          // read true counts, no lag, no blips (the oracle)
	// IdleAtOnce makes workers stop the moment they are idle with their billed
	// minute used, instead of after Config.IdleTimeout (the oracle).
	IdleAtOnce bool
}

// PolicyNames are the policies the simulator knows, in table order.
func PolicyNames() []string {
	return []string{scaling.NameSeed, scaling.NameTargetTracking, scaling.NameKEDA, scaling.NameFacefleet, NameOracle}
}

// ErrUnknownPolicy is returned for a policy name the simulator does not know.
var ErrUnknownPolicy = errors.New("sim: unknown policy")

// setup returns a fresh policy and its triggers.
func setup(name string, cfg Config, w Workload, svc []time.Duration) (scaling.Policy, Triggers, error) {
	switch name {
	case scaling.NameSeed:
		// The seed's scaler ran once a minute from EventBridge.
		return scaling.NewSeed(), Triggers{Schedule: time.Minute}, nil
	case scaling.NameTargetTracking:
		// Application Auto Scaling evaluates once a minute on lagging metrics.
		return scaling.NewTargetTracking(scaling.TargetTrackingOptions{MetricDelay: cfg.MetricDelay}), Triggers{Schedule: time.Minute}, nil
	case scaling.NameKEDA:
		return scaling.NewKEDA(scaling.KEDAOptions{}), Triggers{Poll: 30 * time.Second}, nil
	case scaling.NameFacefleet:
		opt := cfg.Facefleet
		if opt.ServiceTime == 0 {
			opt.ServiceTime = cfg.Service.Mean
		}
		return scaling.NewFacefleet(opt), Triggers{Schedule: time.Minute, Loop: true, Nudge: true, Alarm: true}, nil
	case NameOracle:
		return newOracle(cfg, w, svc), Triggers{OnArrival: true, Poll: time.Second, ExactCounts: true, IdleAtOnce: true}, nil
	}
	return nil, Triggers{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownPolicy, name, PolicyNames())
}
