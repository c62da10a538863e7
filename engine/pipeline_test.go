package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/testenv"
	"golang.org/x/image/draw"
)

// The face counts below were checked by eye on the photos with the engine's boxes
// drawn in (every face found, no box on anything else).
var wantFaces = map[string]int{
	"sample1.jpg": 3, "sample2.jpg": 3, "sample3.jpg": 3, "sample4.jpg": 4, "sample5.jpg": 5, "sample6.jpg": 4,
	"bbt1.jpg": 4, "bbt2.jpg": 3, "bbt3.jpg": 5,
}

func TestDetectionCounts(t *testing.T) {
	e := newEngine(t, engine.Options{})
	demo := filepath.Join(faceAPIDemo(t), "@vladmandic/face-api/demo")
	files := []string{}
	for i := 1; i <= 6; i++ {
		files = append(files, filepath.Join(demo, fmt.Sprintf("sample%d.jpg", i)))
	}
	groups := testenv.Shared(t, "groups")
	for i := 1; i <= 3; i++ {
		files = append(files, filepath.Join(groups, fmt.Sprintf("bbt%d.jpg", i)))
	}
	for _, f := range files {
		res, err := e.Analyze(context.Background(), readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		if len(res.Faces) != wantFaces[name] {
			t.Errorf("%s: found %d faces, want %d", name, len(res.Faces), wantFaces[name])
		}
		for i, fc := range res.Faces {
			if len(fc.Landmarks) != 68 || len(fc.Descriptor) != 128 || fc.Score <= 0.3 || fc.Box.W < 20 {
				t.Errorf("%s face %d incomplete: %d landmarks, %d values, score %v, box %+v", name, i, len(fc.Landmarks), len(fc.Descriptor), fc.Score, fc.Box)
			}
			if i > 0 && fc.Score > res.Faces[i-1].Score {
				t.Errorf("%s: faces not in score order", name)
			}
			// Landmarks lie inside (or near) the face box.
			for _, p := range fc.Landmarks {
				if p.X < fc.Box.X-0.25*fc.Box.W || p.X > fc.Box.X+1.25*fc.Box.W || p.Y < fc.Box.Y-0.25*fc.Box.H || p.Y > fc.Box.Y+1.25*fc.Box.H {
					t.Errorf("%s face %d: landmark %+v far outside box %+v", name, i, p, fc.Box)
					break
				}
			}
		}
	}
}

type labelled struct {
	name, file string
	data       []byte
}

func faceSet(t *testing.T) []labelled {
	dir := testenv.Shared(t, "faces")
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.png"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no faces under %s: %v", dir, err)
	}
	sort.Strings(files)
	var out []labelled
	for _, f := range files {
		out = append(out, labelled{filepath.Base(filepath.Dir(f)), f, readFile(t, f)})
	}
	return out
}

func describeAll(t *testing.T, e *engine.Engine, set []labelled) [][]float32 {
	descs := make([][]float32, len(set))
	for i, s := range set {
		res, err := e.Analyze(context.Background(), s.data)
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		_, face := gallery.Answer(res, nil, 0)
		if face == nil {
			t.Fatalf("%s: no face found (the crop fallback should always give one)", s.file)
		}
		descs[i] = face.Descriptor
	}
	return descs
}

// Enrol the first two photos of each person, probe the other three: all 15 right.
func TestAccuracyTwoShot(t *testing.T) {
	e := newEngine(t, engine.Options{})
	set := faceSet(t)
	descs := describeAll(t, e, set)
	g := gallery.New()
	seen := map[string]int{}
	var probes []int
	for i, s := range set {
		if seen[s.name] < 2 {
			if err := g.Add(s.name, descs[i]); err != nil {
				t.Fatal(err)
			}
		} else {
			probes = append(probes, i)
		}
		seen[s.name]++
	}
	if len(probes) != 15 || g.Len() != 5 {
		t.Fatalf("dataset shape: %d probes, %d people", len(probes), g.Len())
	}
	for _, i := range probes {
		name, dist := g.Match(descs[i], gallery.DefaultThreshold)
		if name != set[i].name {
			t.Errorf("%s: got %s (distance %.3f)", filepath.Base(set[i].file), name, dist)
		}
	}
}

// Leave-one-out accuracy and the distance distributions (run with -v for the
// numbers in the README). It asserts only that same-person pairs are nearer on
// average, so it fails if descriptors are garbage.
func TestDistanceStats(t *testing.T) {
	e := newEngine(t, engine.Options{})
	set := faceSet(t)
	descs := describeAll(t, e, set)
	var same, diff []float64
	correct := 0
	for i := range set {
		g := gallery.New()
		for j := range set {
			if j != i {
				g.Add(set[j].name, descs[j])
			}
			if j > i {
				d := gallery.Distance(descs[i], descs[j])
				if set[i].name == set[j].name {
					same = append(same, d)
				} else {
					diff = append(diff, d)
				}
			}
		}
		if name, _ := g.Match(descs[i], gallery.DefaultThreshold); name == set[i].name {
			correct++
		}
	}
	q := func(v []float64) string {
		slices.Sort(v)
		over := 0
		for _, x := range v {
			if x > gallery.DefaultThreshold {
				over++
			}
		}
		return fmt.Sprintf("n=%d min=%.3f p25=%.3f median=%.3f p75=%.3f max=%.3f over0.6=%d", len(v), v[0], v[len(v)/4], v[len(v)/2], v[3*len(v)/4], v[len(v)-1], over)
	}
	t.Logf("leave-one-out accuracy: %d/%d", correct, len(set))
	t.Logf("same person:      %s", q(same))
	t.Logf("different people: %s", q(diff))
	if mean(same) >= mean(diff) {
		t.Fatalf("same-person distances (%.3f) not below different-person ones (%.3f)", mean(same), mean(diff))
	}
	if correct < len(set)*4/5 {
		t.Fatalf("leave-one-out accuracy %d/%d", correct, len(set))
	}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// The course workload is 64x64 photos with faces of ~30 px. Two shapes, made from
// the crops: the whole crop shrunk to 64x64 (a face filling the frame), and the
// crop centred on a 320x320 background, shrunk to 64x64 (a 30 px face). Every
// photo must get a face and nearly all the right name.
func TestSmallPhotos(t *testing.T) {
	e := newEngine(t, engine.Options{})
	set := faceSet(t)
	descs := describeAll(t, e, set)
	g := gallery.New()
	for i, s := range set {
		g.Add(s.name, descs[i])
	}
	for _, side := range []int{150, 320} {
		right := 0
		for _, s := range set {
			src, err := png.Decode(bytes.NewReader(s.data))
			if err != nil {
				t.Fatal(err)
			}
			canvas := image.NewRGBA(image.Rect(0, 0, side, side))
			draw.Draw(canvas, canvas.Bounds(), &image.Uniform{color.RGBA{110, 120, 100, 255}}, image.Point{}, draw.Src)
			off := (side - src.Bounds().Dx()) / 2
			draw.Draw(canvas, src.Bounds().Add(image.Pt(off, off)), src, src.Bounds().Min, draw.Src)
			dst := image.NewRGBA(image.Rect(0, 0, 64, 64))
			draw.CatmullRom.Scale(dst, dst.Bounds(), canvas, canvas.Bounds(), draw.Src, nil)
			var b bytes.Buffer
			png.Encode(&b, dst)
			res, err := e.Analyze(context.Background(), b.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			name, face := gallery.Answer(res, g, 0)
			if face == nil {
				t.Errorf("%s as 64x64 (face ~%d px): no face", filepath.Base(s.file), 150*64/side)
				continue
			}
			if name == s.name {
				right++
			}
		}
		t.Logf("64x64, face ~%d px: %d/%d named right", 150*64/side, right, len(set))
		if right < len(set)-2 {
			t.Errorf("64x64, face ~%d px: only %d/%d right", 150*64/side, right, len(set))
		}
	}
}

func TestConcurrentAnalyzeIsDeterministic(t *testing.T) {
	e := newEngine(t, engine.Options{})
	data := readFile(t, filepath.Join(testenv.Shared(t, "groups"), "bbt3.jpg"))
	want, err := e.Analyze(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 2; k++ {
				got, err := e.Analyze(context.Background(), data)
				if err != nil {
					errs <- err
					return
				}
				if len(got.Faces) != len(want.Faces) {
					errs <- fmt.Errorf("got %d faces, want %d", len(got.Faces), len(want.Faces))
					return
				}
				for i := range got.Faces {
					if d := gallery.Distance(got.Faces[i].Descriptor, want.Faces[i].Descriptor); d > 1e-5 {
						errs <- fmt.Errorf("face %d differs by %g", i, d)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAnalyzeBadInputAndCancel(t *testing.T) {
	e := newEngine(t, engine.Options{})
	_, err := e.Analyze(context.Background(), []byte("not an image"))
	if !engine.IsImageError(err) {
		t.Fatalf("want an ImageError, got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := readFile(t, filepath.Join(testenv.Shared(t, "groups"), "bbt3.jpg"))
	if _, err := e.Analyze(ctx, data); err == nil || engine.IsImageError(err) || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("cancelled context: got %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Analyze(context.Background(), data); err == nil {
		t.Fatal("Analyze after Close succeeded")
	}
}

// The tight-crop fallbacks: at input size 416 the detector misses most tight
// crops (face-api's behaviour, kept with NoFallback); the framed retry and the
// whole-image fallback must still give every crop a face with the right name.
func TestCropFallbacks(t *testing.T) {
	set := faceSet(t)
	plain := newEngine(t, engine.Options{SmallInputSize: 416, NoFallback: true})
	withFB := newEngine(t, engine.Options{SmallInputSize: 416})
	ref := newEngine(t, engine.Options{})
	g := gallery.New()
	for i, d := range describeAll(t, ref, set) {
		g.Add(set[i].name, d)
	}
	missed, right, framed, whole := 0, 0, 0, 0
	for _, s := range set {
		res, err := plain.Analyze(context.Background(), s.data)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Faces) == 0 {
			missed++
		}
		res, err = withFB.Analyze(context.Background(), s.data)
		if err != nil {
			t.Fatal(err)
		}
		name, face := gallery.Answer(res, g, 0)
		if face == nil {
			t.Fatalf("%s: no face even with the fallbacks", s.file)
		}
		if face.Score == 0 {
			whole++
		} else if len(res.DetectorSizes) > 1 {
			framed++
		}
		if name == s.name {
			right++
		}
	}
	t.Logf("at 416: plain detector missed %d/%d; with fallbacks: %d framed, %d whole-image, %d/%d named right", missed, len(set), framed, whole, right, len(set))
	if missed == 0 || framed+whole == 0 {
		t.Fatalf("the fallbacks were not exercised (missed %d)", missed)
	}
	if right < len(set)-2 {
		t.Fatalf("with fallbacks only %d/%d right", right, len(set))
	}

	// A featureless square is no longer taken whole: it is crop-shaped, but
	// no detector sees a face in it (the second opinion is asked and says no);
	// a wide strip is not asked; without fallbacks neither gives a face.
	grey := func(w, h int) []byte {
		img := image.NewGray(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = 128
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		return b.Bytes()
	}
	for _, c := range []struct {
		e     *engine.Engine
		data  []byte
		faces int
		asked bool
	}{{withFB, grey(100, 100), 0, true}, {withFB, grey(300, 100), 0, false}, {plain, grey(100, 100), 0, false}} {
		res, err := c.e.Analyze(context.Background(), c.data)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Faces) != c.faces || (res.CropEvidence != nil) != c.asked {
			t.Errorf("%dx%d grey: %d faces, evidence %+v; want %d faces, second opinion asked: %v", res.Width, res.Height, len(res.Faces), res.CropEvidence, c.faces, c.asked)
		}
	}
}
