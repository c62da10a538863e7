package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/scaling"
)

// Triggers are the cadences a policy is evaluated at; they model where it runs:
// the registry's Cadence, plus what only the oracle gets.
type Triggers struct {
	scaling.Cadence
	OnArrival   bool // evaluate at every arrival instant (the oracle)
	ExactCounts bool // read true counts, no lag, no blips (the oracle)
	// IdleAtOnce makes workers stop the moment they are idle with their billed
	// minute used, instead of after Config.IdleTimeout (the oracle).
	IdleAtOnce bool
}

// PolicyNames are the policies the simulator knows, in table order: the scaling
// package's registry, then the oracle.
func PolicyNames() []string { return append(scaling.PolicyNames(), NameOracle) }

// ErrUnknownPolicy is returned for a policy name the simulator does not know.
var ErrUnknownPolicy = errors.New("sim: unknown policy")

// setup returns a fresh policy and its triggers.
func setup(name string, cfg Config, w Workload, svc []time.Duration) (scaling.Policy, Triggers, error) {
	if name == NameOracle {
		return newOracle(cfg, w, svc), Triggers{Cadence: scaling.Cadence{Poll: time.Second}, OnArrival: true, ExactCounts: true, IdleAtOnce: true}, nil
	}
	spec, err := scaling.LookupPolicy(name)
	if err != nil {
		return nil, Triggers{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownPolicy, name, PolicyNames())
	}
	p := spec.New(scaling.Env{ServiceTime: cfg.Service.Mean, MetricDelay: cfg.MetricDelay})
	if spec.Name == scaling.NameBacklogDrain && cfg.BacklogDrain != (scaling.BacklogDrainOptions{}) {
		opt := cfg.BacklogDrain // the simulator's knobs for this policy (simulate -drain-target, ...)
		if opt.ServiceTime == 0 {
			opt.ServiceTime = cfg.Service.Mean
		}
		p = scaling.NewBacklogDrain(opt)
	}
	if spec.Cadence.Loop {
		// It runs in the scaler Lambda: with the triggers the stack deploys.
		return p, deployed(spec.Cadence), nil
	}
	return p, Triggers{Cadence: spec.Cadence}, nil
}
