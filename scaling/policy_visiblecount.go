package scaling

import (
	"fmt"
)

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
func (*Seed) Name() string { return NameVisibleCount }

// Decide implements Policy.
func (*Seed) Decide(o Observation) Decision {
	desired := min(o.Visible, SeedCap)
	d := Decision{Desired: desired}
	switch {
	case desired > o.Running:
		d.Start = desired - o.Running
		d.Reason = fmt.Sprintf("visible-count: %d visible > %d running", o.Visible, o.Running)
	case o.Running > o.Visible:
		d.Stop = o.Running - o.Visible
		d.Reason = fmt.Sprintf("visible-count: %d running > %d visible: stop the surplus", o.Running, o.Visible)
	default:
		d.Reason = "visible-count: balanced"
	}
	return d
}
