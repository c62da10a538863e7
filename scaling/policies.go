package scaling

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy names, as the CLI, the settings and the simulator spell them. Each
// says what the policy does.
const (
	// NameBacklogDrain sizes the fleet so the backlog's work (visible and in
	// flight) drains within a target time; the default (formerly "facefleet").
	NameBacklogDrain = "backlog-drain"
	// NameVisibleCount is the course project's baseline: one instance per
	// visible message, capped at 19 (formerly "seed").
	NameVisibleCount = "visible-count"
	// NameTargetTracking models EC2 Auto Scaling target tracking on backlog per
	// instance.
	NameTargetTracking = "target-tracking"
	// NameKEDA models KEDA's aws-sqs-queue scaler with the HPA behind it.
	NameKEDA = "keda"
)

// ErrUnknownPolicy is returned by NewPolicy for a name it does not know.
var ErrUnknownPolicy = errors.New("scaling: unknown policy")

// Cadence is when a policy is evaluated where it is deployed; the simulator
// gives each policy exactly these triggers.
type Cadence struct {
	Schedule time.Duration // an EventBridge-like period (0: none)
	Poll     time.Duration // a continuously running poller's period (0: none)
	Loop     bool          // re-evaluate every few seconds inside an invocation
	Nudge    bool          // the web tier nudges when a request finds no worker
	Alarm    bool          // the backlog alarm invokes on ALARM and OK (sim/deployed.go)
}

// Env is what a policy is told about where it runs; zero fields take the
// policy's defaults.
type Env struct {
	ServiceTime time.Duration // per message, per instance
	MetricDelay time.Duration // CloudWatch publication lag
	// Local: instances are goroutines on this machine (`facefleet up`). A start
	// bills nothing and takes milliseconds, and an idle instance costs no money,
	// so backlog-drain sizes the fleet to drain as soon as possible (one instance
	// per queued message, up to Max) instead of within its DrainTarget, which
	// trades speed for billed EC2 minutes. The other policies model other
	// systems and ignore it.
	Local bool
}

// PolicySpec is one registered policy.
type PolicySpec struct {
	Name string
	// Aliases are former names, still accepted for one release.
	Aliases []string
	Cadence Cadence
	New     func(Env) Policy
}

// Policies is the one policy registry, in table order: the CLI, the settings and
// the simulator all read it. The simulator adds only its clairvoyant oracle,
// which needs the future.
func Policies() []PolicySpec {
	return []PolicySpec{
		{Name: NameVisibleCount, Aliases: []string{"seed"},
			// The course project's scaler ran once a minute from EventBridge.
			Cadence: Cadence{Schedule: time.Minute},
			New:     func(Env) Policy { return NewVisibleCount() }},
		{Name: NameTargetTracking,
			// Application Auto Scaling evaluates once a minute on lagging metrics.
			Cadence: Cadence{Schedule: time.Minute},
			New: func(e Env) Policy {
				return NewTargetTracking(TargetTrackingOptions{MetricDelay: e.MetricDelay})
			}},
		{Name: NameKEDA,
			Cadence: Cadence{Poll: 30 * time.Second},
			New:     func(Env) Policy { return NewKEDA(KEDAOptions{}) }},
		{Name: NameBacklogDrain, Aliases: []string{"facefleet"},
			// The scaler Lambda: once a minute, looping within the invocation,
			// woken by the alarm and by the web tier's nudge.
			Cadence: Cadence{Schedule: time.Minute, Loop: true, Nudge: true, Alarm: true},
			New: func(e Env) Policy {
				p := NewBacklogDrain(BacklogDrainOptions{ServiceTime: e.ServiceTime})
				if e.Local {
					// ceil(backlog*ServiceTime/DrainTarget) = backlog.
					p.opt.DrainTarget = p.opt.ServiceTime
				}
				return p
			}},
	}
}

// LookupPolicy finds a policy by name or former name.
func LookupPolicy(name string) (PolicySpec, error) {
	for _, p := range Policies() {
		if p.Name == name || slices.Contains(p.Aliases, name) {
			return p, nil
		}
	}
	return PolicySpec{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownPolicy, name, strings.Join(PolicyNames(), ", "))
}

// NewPolicy returns a fresh policy (with its default knobs) by name or former name.
func NewPolicy(name string) (Policy, error) { return NewPolicyIn(name, Env{}) }

// NewPolicyIn is NewPolicy told where the policy runs.
func NewPolicyIn(name string, e Env) (Policy, error) {
	p, err := LookupPolicy(name)
	if err != nil {
		return nil, err
	}
	return p.New(e), nil
}

// PolicyNames lists the registered policies' names.
func PolicyNames() []string {
	var out []string
	for _, p := range Policies() {
		out = append(out, p.Name)
	}
	return out
}

// AcceptedPolicyNames lists every name NewPolicy accepts: the names, then the
// former ones.
func AcceptedPolicyNames() []string {
	out := PolicyNames()
	for _, p := range Policies() {
		out = append(out, p.Aliases...)
	}
	return out
}

// DefaultPolicy is backlog-drain with its documented defaults.
func DefaultPolicy() Policy { return NewBacklogDrain(BacklogDrainOptions{}) }

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
