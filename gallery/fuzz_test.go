package gallery

import (
	"math/rand/v2"
	"testing"
)

// FuzzUnmarshal: PUT /v1/gallery takes either format from an admin; whatever
// the bytes, Unmarshal returns a gallery or an error, never panics, and a
// gallery it returns encodes and decodes to itself.
func FuzzUnmarshal(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input, which takes long on
	// big ones.
	rng := rand.New(rand.NewPCG(1, 1))
	d := make([]float32, DescriptorLen)
	for i := range d {
		d[i] = float32(rng.NormFloat64() * 0.05)
	}
	g := New()
	g.AddFace("amy", d, nil)
	d[3] = 2 // beyond the 8-bit range
	g.AddFace("boxed", d, &Box{X: 1, Y: 2, W: 3, H: 4})
	bin := g.appendBinary(nil, 7)
	js, _ := g.Marshal()
	f.Add(bin)
	f.Add(js)
	f.Add(bin[:40])
	f.Add([]byte(`{"version":1,"subjects":[{"name":"a","descriptors":[[1]]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Unmarshal(data)
		if err != nil {
			return
		}
		again, _, err := decodeBinary(got.appendBinary(nil, 0), true)
		if err != nil {
			t.Fatalf("a decoded gallery does not re-decode: %v", err)
		}
		if a, b := got.appendBinary(nil, 0), again.appendBinary(nil, 0); string(a) != string(b) {
			t.Fatal("round trip changed the gallery")
		}
	})
}
