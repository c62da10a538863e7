package stats

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, c := range []struct {
		vals []float64
		p    float64
		want float64
	}{
		{nil, 50, 0}, {[]float64{7}, 99, 7}, {[]float64{7}, 0, 7},
		{hundred, 50, 50}, {hundred, 95, 95}, {hundred, 99, 99}, {hundred, 100, 100}, {hundred, 0, 1},
		{[]float64{1, 2, 3, 4}, 50, 2}, {[]float64{1, 2, 3, 4}, 51, 3}, {[]float64{1, 2, 3, 4}, 75, 3},
	} {
		if got := Percentile(c.vals, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.vals, c.p, got, c.want)
		}
	}
	ds := []time.Duration{3 * time.Second, time.Second, 2 * time.Second}
	if got := PercentileOf(ds, 50); got != 2*time.Second || ds[0] != 3*time.Second {
		t.Errorf("PercentileOf = %v (input now %v)", got, ds)
	}
}
