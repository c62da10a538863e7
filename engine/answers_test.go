package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/testenv"
	"golang.org/x/image/draw"
)

var updateAnswers = flag.Bool("update-answers", false, "rewrite testdata/answers.json from the current engine")

// answer is what the service would say about one photo: the faces' boxes and
// scores, and the name the two-shot gallery gives the first face.
type answer struct {
	Image string       `json:"image"`
	Name  string       `json:"name"`
	Faces []answerFace `json:"faces"`
}

type answerFace struct {
	X, Y, W, H, Score float64
}

// positives are the photos whose answers must not change: the 25 shared face
// crops (150x150 grey), the 50 64x64 photos TestSmallPhotos makes from them,
// and the three group photos.
func positives(t *testing.T) []sample {
	var out []sample
	for _, s := range faceSet(t) {
		name := filepath.Base(s.file)
		out = append(out, sample{name, s.data})
		src, err := png.Decode(bytes.NewReader(s.data))
		if err != nil {
			t.Fatal(err)
		}
		for _, side := range []int{150, 320} {
			canvas := image.NewRGBA(image.Rect(0, 0, side, side))
			draw.Draw(canvas, canvas.Bounds(), &image.Uniform{color.RGBA{110, 120, 100, 255}}, image.Point{}, draw.Src)
			off := (side - src.Bounds().Dx()) / 2
			draw.Draw(canvas, src.Bounds().Add(image.Pt(off, off)), src, src.Bounds().Min, draw.Src)
			dst := image.NewRGBA(image.Rect(0, 0, 64, 64))
			draw.CatmullRom.Scale(dst, dst.Bounds(), canvas, canvas.Bounds(), draw.Src, nil)
			out = append(out, sample{fmt.Sprintf("%s/64from%d", name, side), encodePNG(t, dst)})
		}
	}
	groups := testenv.Shared(t, "groups")
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("bbt%d.jpg", i)
		out = append(out, sample{name, readFile(t, filepath.Join(groups, name))})
	}
	return out
}

// TestAnswersUnchanged: every shared face crop, every 64x64 photo and every
// group photo gets exactly the faces (boxes within half a pixel, scores within
// 1e-3) and the name recorded in testdata/answers.json, which was written by
// the engine before faces needed a detector's evidence (-update-answers
// rewrites it after an intended change).
func TestAnswersUnchanged(t *testing.T) {
	e := newEngine(t, engine.Options{})
	set := faceSet(t)
	g := gallery.New()
	seen := map[string]int{}
	for i, d := range describeAll(t, e, set) {
		if seen[set[i].name] < 2 {
			g.Add(set[i].name, d)
		}
		seen[set[i].name]++
	}
	var got []answer
	for _, s := range positives(t) {
		res, err := e.Analyze(context.Background(), s.png)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		name, _ := gallery.Answer(res, g, gallery.DefaultThreshold)
		a := answer{Image: s.name, Name: name, Faces: []answerFace{}}
		for _, f := range res.Faces {
			a.Faces = append(a.Faces, answerFace{f.Box.X, f.Box.Y, f.Box.W, f.Box.H, f.Score})
		}
		got = append(got, a)
	}
	path := filepath.Join("testdata", "answers.json")
	if *updateAnswers {
		b, _ := json.MarshalIndent(got, "", " ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var want []answer
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d photos, %s has %d", len(got), path, len(want))
	}
	for i, w := range want {
		a := got[i]
		if a.Image != w.Image || a.Name != w.Name || len(a.Faces) != len(w.Faces) {
			t.Errorf("%s: %q with %d faces, want %s: %q with %d faces", a.Image, a.Name, len(a.Faces), w.Image, w.Name, len(w.Faces))
			continue
		}
		for k, f := range w.Faces {
			h := a.Faces[k]
			if math.Abs(h.X-f.X) > 0.5 || math.Abs(h.Y-f.Y) > 0.5 || math.Abs(h.W-f.W) > 0.5 || math.Abs(h.H-f.H) > 0.5 || math.Abs(h.Score-f.Score) > 1e-3 {
				t.Errorf("%s face %d: %+v, want %+v", a.Image, k, h, f)
			}
		}
	}
}
