package scalerfn

import (
	"maps"
	"testing"
	"time"
)

// TestEveryMetricCarriesTheDimensions: two stacks publishing into one namespace
// must not mix their numbers.
func TestEveryMetricCarriesTheDimensions(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	m := &fakeMetrics{}
	dims := map[string]string{DimensionStack: "stack-a"}
	h, err := New(Options{Controller: &fakeController{visible: []int{4, 0}}, Metrics: m, Clock: clk, Dimensions: dims})
	if err != nil {
		t.Fatal(err)
	}
	dims[DimensionStack] = "changed-after-New"
	if _, err := h.Invoke(withDeadline(t, clk, 20*time.Second), readEvent(t, "scheduled.json")); err != nil {
		t.Fatal(err)
	}
	if len(m.calls) != 1 || len(m.calls[0]) == 0 {
		t.Fatalf("metrics calls = %v", m.calls)
	}
	for _, d := range m.calls[0] {
		if !maps.Equal(d.Dimensions, map[string]string{DimensionStack: "stack-a"}) {
			t.Errorf("%s has dimensions %v, want Stack=stack-a", d.Name, d.Dimensions)
		}
	}
}
