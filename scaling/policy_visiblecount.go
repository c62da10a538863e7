package scaling

import (
	"fmt"
)

// VisibleCount is the seed project's rule, flaws included, kept as the baseline: desired is
// the visible count capped at VisibleCountCap; it starts `visible - running` (pending
// instances are not counted, so consecutive ticks over-launch) and stops
// `running - visible` (in-flight work is not counted, so it stops busy workers).
type VisibleCount struct{}

// VisibleCountCap is the seed's hard-coded cap.
const VisibleCountCap = 19

// NewVisibleCount returns the seed's policy.
func NewVisibleCount() *VisibleCount { return &VisibleCount{} }

// Name implements Policy.
func (*VisibleCount) Name() string { return NameVisibleCount }

// Decide implements Policy.
func (*VisibleCount) Decide(o Observation) Decision {
	desired := min(o.Visible, VisibleCountCap)
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
