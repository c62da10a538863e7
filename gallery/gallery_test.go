package gallery

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/engine"
)

// vec is a descriptor with value v at index i and 0 elsewhere, so distances are easy
// to compute by hand.
func vec(i int, v float32) []float32 {
	d := make([]float32, DescriptorLen)
	d[i] = v
	return d
}

func TestMatchNearestAndThreshold(t *testing.T) {
	g := New()
	if err := g.Add("amy", vec(0, 1), vec(1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := g.Add("bob", vec(2, 1)); err != nil {
		t.Fatal(err)
	}
	if n, d := g.Match(vec(0, 1), 0); n != "amy" || d != 0 {
		t.Fatalf("exact match: got %q %v", n, d)
	}
	q := vec(1, 0.8) // 0.2 from amy's second, sqrt(0.64+1) from bob
	if n, d := g.Match(q, 0); n != "amy" || math.Abs(d-0.2) > 1e-6 {
		t.Fatalf("got %q %v, want amy 0.2", n, d)
	}
	far := vec(5, 1) // sqrt(2) from everyone
	if n, d := g.Match(far, 0); n != engine.Unknown || math.Abs(d-math.Sqrt2) > 1e-6 {
		t.Fatalf("got %q %v, want Unknown", n, d)
	}
	if n, _ := g.Match(far, 1.5); n == engine.Unknown {
		t.Fatal("a looser threshold should name someone")
	}
	if n, _ := New().Match(q, 0); n != engine.Unknown {
		t.Fatalf("empty gallery: got %q", n)
	}
	if !g.Remove("amy") || g.Remove("amy") {
		t.Fatal("Remove should report presence once")
	}
	if n, _ := g.Match(q, 0); n != engine.Unknown {
		t.Fatalf("after removal got %q", n)
	}
}

func TestAddRejectsBadInput(t *testing.T) {
	g := New()
	for _, c := range []struct {
		name string
		d    []float32
	}{
		{"", vec(0, 1)},
		{engine.Unknown, vec(0, 1)},
		{"x", make([]float32, 5)},
		{"x", vec(3, float32(math.NaN()))},
	} {
		if err := g.Add(c.name, c.d); err == nil {
			t.Errorf("Add(%q, len %d) accepted", c.name, len(c.d))
		}
	}
	if g.Len() != 0 {
		t.Fatal("rejected adds changed the gallery")
	}
}

func TestMarshalRoundTripAndVersions(t *testing.T) {
	g := New()
	d := vec(7, 0.123456789)
	d[8] = -1.5e-7
	if err := g.Add("penny", d); err != nil {
		t.Fatal(err)
	}
	if err := g.Add("amy", vec(1, 1), vec(2, 1)); err != nil {
		t.Fatal(err)
	}
	data, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	subs := g2.Subjects()
	if len(subs) != 2 || subs[0].Name != "amy" || len(subs[0].Descriptors) != 2 || subs[1].Name != "penny" {
		t.Fatalf("round trip: %+v", subs)
	}
	for i := range d {
		if subs[1].Descriptors[0][i] != d[i] {
			t.Fatalf("value %d: %v != %v (float32 must survive exactly)", i, subs[1].Descriptors[0][i], d[i])
		}
	}

	path := filepath.Join(t.TempDir(), "g.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	if g3, err := Load(path); err != nil || g3.Len() != 2 {
		t.Fatalf("load: %v", err)
	}

	for _, c := range []struct{ data, want string }{
		{`{"version": 2, "subjects": []}`, "unsupported format version 2"},
		{`{"subjects": []}`, "no version"},
		{`not json`, "invalid JSON"},
		{`{"version": 1, "subjects": [{"name": "x", "descriptors": [[1,2]]}]}`, "has 2 values"},
	} {
		_, err := Unmarshal([]byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Unmarshal(%s): got %v, want an error containing %q", c.data, err, c.want)
		}
	}
}

func TestAnswerUsesLargestFace(t *testing.T) {
	g := New()
	g.Add("amy", vec(0, 1))
	g.Add("bob", vec(1, 1))
	res := &engine.Result{Faces: []engine.Face{
		{Box: engine.Box{W: 10, H: 10}, Descriptor: vec(1, 1)},   // bob, small
		{Box: engine.Box{W: 40, H: 50}, Descriptor: vec(0, 0.9)}, // amy, largest
		{Box: engine.Box{W: 30, H: 30}, Descriptor: vec(1, 1)},
	}}
	name, face := Answer(res, g, 0)
	if name != "amy" || face == nil || face.Subject != "amy" || face.Box.W != 40 || math.Abs(face.Distance-0.1) > 1e-6 {
		t.Fatalf("got %q %+v", name, face)
	}
	if res.Faces[1].Subject != "" {
		t.Fatal("Answer must not modify the result")
	}
	res.Faces[1].Descriptor = vec(9, 1)
	if name, _ := Answer(res, g, 0); name != engine.Unknown {
		t.Fatalf("largest face unmatched: got %q", name)
	}
	if name, face := Answer(&engine.Result{}, g, 0); name != engine.NoFace || face != nil {
		t.Fatalf("no face: got %q", name)
	}
}

// The largest face is the largest with a descriptor: a bigger box that could not
// be described is not the one answered or enrolled.
func TestLargest(t *testing.T) {
	faces := []engine.Face{
		{Box: engine.Box{W: 10, H: 10}, Descriptor: []float32{1}},
		{Box: engine.Box{W: 50, H: 50}},
		{Box: engine.Box{W: 20, H: 20}, Descriptor: []float32{2}},
	}
	if f := Largest(faces); f == nil || f.Descriptor[0] != 2 {
		t.Fatalf("Largest = %+v; want the 20x20 face", f)
	}
	if f := Largest(faces[1:2]); f != nil {
		t.Fatalf("Largest of a face without descriptor = %+v; want nil", f)
	}
}

// The one subject-name rule, as the web tier, the CLI and loaded files apply it.
func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"amy": true, "Zoë Lee": true, strings.Repeat("a", MaxNameLen): true,
		"": false, strings.Repeat("a", MaxNameLen+1): false, "Unknown": false, "NoFace": false,
		"a/b": false, `a\b`: false, "a:b": false, "tab\there": false, "del\x7f": false, "\xff": false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v; want ok=%v", name, err, ok)
		}
	}
	if err := New().Add("a:b", make([]float32, DescriptorLen)); err == nil {
		t.Error("Add accepted a name the web tier refuses")
	}
}

func TestRenameMergesAndDescriptors(t *testing.T) {
	d := func(v float32) []float32 { x := make([]float32, DescriptorLen); x[0] = v; return x }
	g := New()
	g.Add("amy", d(1), d(2))
	g.Add("penny", d(3))
	if merged, ok, err := g.Rename("amy", "amelia"); err != nil || !ok || merged {
		t.Fatalf("rename: merged %v ok %v err %v", merged, ok, err)
	}
	if merged, ok, err := g.Rename("amelia", "penny"); err != nil || !ok || !merged {
		t.Fatalf("merge: merged %v ok %v err %v", merged, ok, err)
	}
	if ds := g.Descriptors("penny"); len(ds) != 3 || ds[0][0] != 3 || ds[2][0] != 2 || g.Len() != 1 {
		t.Fatalf("after merge: %d subjects, penny %v", g.Len(), ds)
	}
	if _, ok, _ := g.Rename("nobody", "x"); ok {
		t.Fatal("renamed a subject that is not enrolled")
	}
	if _, _, err := g.Rename("penny", "Unknown"); err == nil || g.Len() != 1 {
		t.Fatal("renamed to a reserved name")
	}
	ds := g.Descriptors("penny")
	ds[0][0] = 99
	if g.Descriptors("penny")[0][0] != 3 {
		t.Fatal("Descriptors returned the gallery's own slices")
	}
}

func TestFaceIDs(t *testing.T) {
	d := func(v float32) []float32 { x := make([]float32, DescriptorLen); x[0] = v; return x }
	g := New()
	id1, err := g.AddFace("amy", d(1), &Box{X: 1, Y: 2, W: 30, H: 40})
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := g.AddFace("amy", d(2), nil)
	if id1 == id2 || !validFaceID(id1) {
		t.Fatalf("ids %q %q", id1, id2)
	}
	data, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	fs, ok := g2.Faces("amy")
	if !ok || len(fs) != 2 || fs[0].ID != id1 || fs[0].Box == nil || fs[0].Box.W != 30 || fs[1].ID != id2 || fs[1].Box != nil || fs[0].Created.IsZero() {
		t.Fatalf("after a round trip: %+v", fs)
	}
	if g2.RemoveFace("amy", "nope") || !g2.RemoveFace("amy", id1) {
		t.Fatal("RemoveFace")
	}
	if ds := g2.Descriptors("amy"); len(ds) != 1 || ds[0][0] != 2 {
		t.Fatalf("the wrong face went: %v", ds)
	}
	if !g2.RemoveFace("amy", id2) || g2.Len() != 0 {
		t.Fatal("the subject did not go with its last face")
	}
	if _, ok := g2.Faces("amy"); ok {
		t.Fatal("Faces of a removed subject")
	}
}

func TestLegacyFilesGetStableFaceIDs(t *testing.T) {
	d := make([]float32, DescriptorLen)
	d[5] = 0.25
	raw, _ := json.Marshal(map[string]any{"version": 1, "subjects": []any{map[string]any{"name": "amy", "descriptors": [][]float32{d, d}}}})
	a, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Unmarshal(raw)
	fa, _ := a.Faces("amy")
	fb, _ := b.Faces("amy")
	if len(fa) != 2 || fa[0].ID != fb[0].ID || fa[1].ID != fb[1].ID || fa[0].ID == fa[1].ID {
		t.Fatalf("legacy ids: %+v vs %+v", fa, fb)
	}
	for name, bad := range map[string]any{
		"faces count":  map[string]any{"name": "x", "descriptors": [][]float32{d}, "faces": []any{}},
		"repeated id":  map[string]any{"name": "x", "descriptors": [][]float32{d, d}, "faces": []any{map[string]any{"id": "a"}, map[string]any{"id": "a"}}},
		"malformed id": map[string]any{"name": "x", "descriptors": [][]float32{d}, "faces": []any{map[string]any{"id": "a/b"}}},
	} {
		raw, _ := json.Marshal(map[string]any{"version": 1, "subjects": []any{bad}})
		if _, err := Unmarshal(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The flat matrix answers exactly what a scan of every descriptor does, also
// after every kind of edit (each of which must drop the stale matrix).
func TestNearestMatchesBruteForceAcrossEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	rvec := func() []float32 {
		d := make([]float32, DescriptorLen)
		for i := range d {
			d[i] = float32(rng.NormFloat64() * 0.05)
		}
		return d
	}
	g := New()
	for s := range 60 {
		for range 1 + s%4 {
			if _, err := g.AddFace(fmt.Sprintf("s%02d", s), rvec(), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	dup := rvec() // the same descriptor under two names: the tie goes to the smaller name
	g.Add("zz", dup)
	g.Add("aa", dup)
	check := func(stage string) {
		t.Helper()
		subs := g.Subjects()
		for q := range 150 {
			d := rvec()
			if q == 0 {
				d = dup
			}
			wantName, want := "", math.Inf(1)
			for _, s := range subs {
				for _, e := range s.Descriptors {
					if dist := Distance(d, e); dist < want || dist == want && s.Name < wantName {
						wantName, want = s.Name, dist
					}
				}
			}
			name, dist := g.Nearest(d)
			if name != wantName || dist != want {
				t.Fatalf("%s: query %d: Nearest = %s %v, brute force %s %v", stage, q, name, dist, wantName, want)
			}
			if k := g.NearestK(d, 3); len(k) == 0 || k[0].Subject != wantName || k[0].Distance != want {
				t.Fatalf("%s: NearestK = %+v, want %s first", stage, k, wantName)
			}
		}
	}
	check("built")
	g.Remove("s03")
	check("remove")
	g.Rename("s04", "s05")
	check("rename")
	fs, _ := g.Faces("s05")
	g.RemoveFace("s05", fs[0].ID)
	check("remove face")
	g.AddFace("new", rvec(), nil)
	check("add face")
	g.PutSubject(Subject{Name: "s10", Descriptors: [][]float32{rvec()}})
	check("put subject")
	// Descriptors handed out are copies, though the gallery shares its own.
	s := g.Subjects()[0]
	before, _ := g.Nearest(s.Descriptors[0])
	s.Descriptors[0][0] += 100
	if after, _ := g.Nearest(g.Subjects()[0].Descriptors[0]); after != before {
		t.Fatal("writing a returned descriptor changed the gallery")
	}
}
