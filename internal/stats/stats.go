// Package stats holds the one percentile definition the load generator, the
// benchmarks, the simulator and the end-to-end tests report with.
package stats

import (
	"cmp"
	"math"
	"slices"
)

// Percentile is the nearest-rank percentile (p in 0..100) of sorted values: the
// smallest value with at least p% of the values at or below it. The zero value
// for none.
func Percentile[T cmp.Ordered](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// PercentileOf sorts a copy of values and returns its Percentile.
func PercentileOf[T cmp.Ordered](values []T, p float64) T {
	s := slices.Clone(values)
	slices.Sort(s)
	return Percentile(s, p)
}
