package gallery

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
)

// bruteK is the reference: every face measured, per-subject minimum, sorted by
// distance then name.
func bruteK(subs []Subject, d []float32, k int) []Neighbour {
	best := map[string]float64{}
	for _, s := range subs {
		for _, e := range s.Descriptors {
			if v, ok := best[s.Name]; !ok || Distance(d, e) < v {
				best[s.Name] = Distance(d, e)
			}
		}
	}
	var out []Neighbour
	for n, v := range best {
		out = append(out, Neighbour{n, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Distance != out[j].Distance {
			return out[i].Distance < out[j].Distance
		}
		return out[i].Subject < out[j].Subject
	})
	return out[:min(k, len(out))]
}

// clustered builds a gallery shaped like the benchmark's (faces of one subject
// about 0.45 apart, subjects about 0.83) plus rows outside the 8-bit range and
// exact duplicates under two names, so every branch of the search is taken.
func clustered(t *testing.T, rng *rand.Rand, subjects, faces int) (*Gallery, [][]float32) {
	t.Helper()
	sf := 0.45 / math.Sqrt(2*DescriptorLen)
	ss := math.Sqrt(0.83*0.83/(2*DescriptorLen) - sf*sf)
	g := New()
	var centres [][]float32
	for s := range subjects {
		c := make([]float32, DescriptorLen)
		for i := range c {
			c[i] = float32(rng.NormFloat64() * ss)
		}
		centres = append(centres, c)
		for range faces {
			d := slices.Clone(c)
			for i := range d {
				d[i] += float32(rng.NormFloat64() * sf)
			}
			if s%97 == 5 {
				d[3] = 0.9 // beyond ±0.635: a wide row
			}
			if _, err := g.AddFace(fmt.Sprintf("s%05d", s), d, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	dup := g.Descriptors("s00007")[0]
	if _, err := g.AddFace("a-twin", dup, nil); err != nil {
		t.Fatal(err)
	}
	return g, centres
}

func TestNearestKIsBruteForceExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	g, centres := clustered(t, rng, 800, 3)
	probe := func(q int, subs []Subject) []float32 {
		switch q % 4 {
		case 0: // a stored face itself (ties with the twin on s00007)
			return subs[q%len(subs)].Descriptors[0]
		case 1: // a new face of an enrolled subject
			d := slices.Clone(centres[q%800])
			for i := range d {
				d[i] += float32(rng.NormFloat64() * 0.028)
			}
			return d
		case 2: // a stranger
			d := make([]float32, DescriptorLen)
			for i := range d {
				d[i] = float32(rng.NormFloat64() * 0.05)
			}
			return d
		default: // a probe outside the 8-bit range
			d := slices.Clone(centres[q%800])
			d[q%DescriptorLen] = -2
			return d
		}
	}
	check := func(stage string) {
		t.Helper()
		subs := g.Subjects()
		for q := range 80 {
			d := probe(q, subs)
			if q == 4 {
				d = g.Descriptors("a-twin")[0]
			}
			for _, k := range []int{1, 3, 10} {
				got, want := g.NearestK(d, k), bruteK(subs, d, k)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: probe %d, k=%d:\n got %v\nwant %v", stage, q, k, got, want)
				}
				if n, dist := g.NearestExhaustive(d); k == 1 && (n != want[0].Subject || dist != want[0].Distance) {
					t.Fatalf("%s: probe %d: NearestExhaustive %s %v, want %v", stage, q, n, dist, want[0])
				}
			}
		}
	}
	check("built")
	for s := 0; s < 800; s += 7 {
		g.Remove(fmt.Sprintf("s%05d", s))
	}
	check("after removing subjects")
	for s := 1; s < 800; s += 5 {
		name := fmt.Sprintf("s%05d", s)
		if fs, ok := g.Faces(name); ok {
			g.RemoveFace(name, fs[0].ID)
		}
	}
	g.Rename("s00002", "s00003")
	g.Rename("s00009", "zed")
	check("after removing faces and renaming")
}

func TestScanPathsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 257
	data := make([]int8, n*DescriptorLen)
	for i := range data {
		data[i] = int8(rng.IntN(255) - 127)
	}
	for i := range DescriptorLen { // the extremes
		data[i], data[DescriptorLen+i] = 127, -127
	}
	var q [DescriptorLen]int8
	for i := range q {
		q[i] = int8(rng.IntN(255) - 127)
	}
	q[0] = -127
	got, want := make([]int32, n), make([]int32, n)
	scan(&q, data, got)
	scanScalar(&q, data, want)
	if !slices.Equal(got, want) {
		t.Fatalf("scan (%s) differs from the scalar pass", ScanPath)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	g, _ := clustered(t, rng, 40, 2)
	id, err := g.AddFace("boxed", g.Descriptors("s00001")[0], &Box{X: 1.5, Y: 2, W: 30.25, H: 40})
	if err != nil {
		t.Fatal(err)
	}
	data := g.appendBinary(nil, 42)
	back, seq, err := unmarshalBinary(data)
	if err != nil || seq != 42 {
		t.Fatalf("unmarshalBinary: seq %d, %v", seq, err)
	}
	if a, b := g.Subjects(), back.Subjects(); !reflect.DeepEqual(a, b) {
		t.Fatal("binary round trip changed the gallery")
	}
	if fs, _ := back.Faces("boxed"); len(fs) != 1 || fs[0].ID != id || *fs[0].Box != (Box{1.5, 2, 30.25, 40}) || fs[0].Created.IsZero() {
		t.Fatalf("face info lost: %+v", fs)
	}
	if via, err := Unmarshal(data); err != nil || via.FaceTotal() != g.FaceTotal() {
		t.Fatalf("Unmarshal does not sniff the binary format: %v", err)
	}
	// JSON and binary describe the same gallery.
	js, _ := g.Marshal()
	fromJSON, err := Unmarshal(js)
	if err != nil || !slices.Equal(fromJSON.appendBinary(nil, 42), data) {
		t.Fatalf("JSON and binary disagree: %v", err)
	}

	bad := func(name string, mutate func([]byte) []byte, want string) {
		t.Helper()
		b := mutate(slices.Clone(data))
		if _, err := Unmarshal(b); err == nil || !contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, want)
		}
	}
	bad("flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, "checksum")
	bad("truncated", func(b []byte) []byte { return b[:len(b)-9] }, "checksum")
	bad("version", func(b []byte) []byte { b[8] = 9; return b }, "version 9")
	bad("tiny", func(b []byte) []byte { return b[:10] }, "truncated")
	// Counts larger than the file: refused before allocating, checksum fixed up.
	bad("huge count", func(b []byte) []byte {
		b = b[:len(b)-4]
		b[28], b[29], b[30] = 0xff, 0xff, 0x7f // faces
		return binaryAppendCRC(b)
	}, "faces")
	bad("NaN", func(b []byte) []byte {
		b = b[:len(b)-4]
		copy(b[len(b)-4:], []byte{0, 0, 0xc0, 0x7f})
		return binaryAppendCRC(b)
	}, "NaN")
}

func binaryAppendCRC(b []byte) []byte {
	var s [4]byte
	c := crc32Sum(b)
	s[0], s[1], s[2], s[3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
	return append(b, s[:]...)
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func BenchmarkNearest(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	g, centres := clustered(&testing.T{}, rng, 20000, 5)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		d := slices.Clone(centres[i%len(centres)])
		g.Nearest(d)
	}
	b.ReportMetric(float64(g.FaceTotal()), "faces")
}
