package gallery

import (
	"math"
	"math/rand/v2"
	"testing"
)

// quantizeReference is the definition: round half away from zero, clamp.
func quantizeReference(dst []int8, d []float32) float32 {
	var loss float64
	for i, v := range d {
		r := math.Max(-127, math.Min(127, math.Round(float64(v)/quantStep)))
		dst[i] = int8(r)
		e := float64(v) - r*quantStep
		loss += e * e
	}
	return float32(math.Sqrt(loss))
}

func TestQuantizeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := make([]int8, DescriptorLen), make([]int8, DescriptorLen)
	for range 10000 {
		d := make([]float32, DescriptorLen)
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.3)
		}
		d[5] = float32(rng.IntN(300)-150) / 200 // exact steps and halves
		d[6] = float32(rng.IntN(301)-150)/200 + 0.0025
		d[7] = float32(rng.IntN(2)*2-1) * 5 // far out of range
		got, want := quantize(a, d), quantizeReference(b, d)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("value %v: %d, reference %d", d[i], a[i], b[i])
			}
		}
		if math.Abs(float64(got-want)) > 1e-6*max(1, float64(want)) {
			t.Fatalf("loss %v, reference %v", got, want)
		}
	}
}
