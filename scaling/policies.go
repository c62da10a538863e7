package scaling

import (
	"errors"
	"fmt"
	"strings"
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
