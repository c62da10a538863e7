package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/ort"
)

// Model file names inside Options.ModelDir (see models/README.md for the contract).
const (
	DetectorModel    = "tiny_face_detector.onnx"
	LandmarkModel    = "face_landmark_68.onnx"
	RecognitionModel = "face_recognition.onnx"
)

// Defaults for Options.
const (
	// 512 and 0.3 rather than face-api's 416 and 0.5: on face-api's six demo
	// photos and the three group photos (34 faces, counted by eye) 416/0.5 misses
	// 5 faces and adds one false box; 512/0.3 finds all 34 and nothing else.
	DefaultDetectorInputSize = 512
	DefaultSmallInputSize    = 160
	DefaultSmallImageSide    = 256
	DefaultMinScore          = 0.3
	DefaultNMSIoU            = 0.4
	DefaultMaxFaces          = 32
)

// Options configure an Engine. Zero values take the defaults above.
type Options struct {
	ModelDir    string // holds the three .onnx files
	LibraryPath string // ONNX Runtime shared library (absolute or relative path)
	// IntraOpThreads is the number of threads one model run may use. Workers that
	// run in parallel should keep the default of 1 and scale with goroutines.
	IntraOpThreads int

	MaxBytes  int64 // largest encoded image accepted
	MaxPixels int64 // largest width*height accepted (checked from the header)
	MinSide   int   // smallest side accepted
	MaxScans  int   // most scans in a JPEG (DefaultMaxScans; counted before decoding)
	// PureGoJPEG decodes JPEG with image/jpeg even when libturbojpeg.so.0 is
	// installed (by default it is used when present).
	PureGoJPEG bool

	// DetectorInputSize is the tiny detector's square input (a multiple of 32;
	// face-api's default is 416, ours 512).
	DetectorInputSize int
	// Images whose longer side is at most SmallImageSide are detected at
	// SmallInputSize instead: the tiny detector misses faces that fill most of
	// an upscaled small photo (a 64x64 photo with a 30 px face), and finds them
	// at 160. Set SmallImageSide < 0 to always use DetectorInputSize.
	SmallImageSide int
	SmallInputSize int
	MinScore       float64 // detector score threshold (face-api: score > 0.5; ours 0.3)
	NMSIoU         float64 // NMS IoU threshold (face-api: 0.4)
	MaxFaces       int     // at most this many faces (highest scores) get landmarks and descriptors
	// A small square image in which no face box is found even framed is taken
	// whole as a face crop only on a second opinion: the tiny detector at
	// EvidenceInputSize on the framed image scoring at least EvidenceTinyScore,
	// or the SSD MobileNetV1 on it scoring at least EvidenceSSDScore.
	// Without that evidence the answer is NoFace (noise, walls, clothing).
	EvidenceInputSize int
	EvidenceTinyScore float64
	EvidenceSSDScore  float64
	// NoFallback turns off the tight-crop fallbacks (see Analyze) and gives
	// face-api's plain behaviour.
	NoFallback bool
	Logger     *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.IntraOpThreads <= 0 {
		o.IntraOpThreads = 1
	}
	if o.DetectorInputSize <= 0 {
		o.DetectorInputSize = DefaultDetectorInputSize
	}
	if o.SmallImageSide == 0 {
		o.SmallImageSide = DefaultSmallImageSide
	}
	if o.SmallInputSize <= 0 {
		o.SmallInputSize = DefaultSmallInputSize
	}
	if o.MinScore <= 0 {
		o.MinScore = DefaultMinScore
	}
	if o.NMSIoU <= 0 {
		o.NMSIoU = DefaultNMSIoU
	}
	if o.MaxFaces <= 0 {
		o.MaxFaces = DefaultMaxFaces
	}
	if o.EvidenceInputSize <= 0 {
		o.EvidenceInputSize = DefaultEvidenceInputSize
	}
	if o.EvidenceTinyScore <= 0 {
		o.EvidenceTinyScore = DefaultEvidenceTinyScore
	}
	if o.EvidenceSSDScore <= 0 {
		o.EvidenceSSDScore = DefaultEvidenceSSDScore
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// runner is the part of an ORT session the engine uses (a test can replace it).
type runner interface {
	Run(ctx context.Context, input []float32, shape []int64) (map[string]ort.Output, error)
	Close() error
}

// Engine detects faces and computes descriptors. It is safe for concurrent use by
// many goroutines: the three ONNX Runtime sessions are shared (ORT's Run is
// thread-safe) inside the one process-wide ORT environment, and every call keeps
// its own buffers. Run one Engine per process and N worker goroutines over it,
// each model run using IntraOpThreads threads.
type Engine struct {
	opt                 Options
	limits              DecodeLimits
	detector, landmarks runner
	recognizer          runner
	ssd                 runner    // second opinion for the tight-crop fallback; nil with NoFallback
	scratch             sync.Pool // *buffers
	closeOnce           sync.Once
	closeErr            error
}

// modelOutput is every model's output name (models/README.md).
const modelOutput = "output"

// New loads the three models. It fails with an actionable error when the ORT
// library or a model file is missing.
func New(opt Options) (*Engine, error) {
	opt = opt.withDefaults()
	if opt.DetectorInputSize%32 != 0 || opt.SmallInputSize%32 != 0 || opt.EvidenceInputSize%32 != 0 {
		return nil, fmt.Errorf("engine: detector input sizes must be multiples of 32 (got %d, %d and %d)", opt.DetectorInputSize, opt.SmallInputSize, opt.EvidenceInputSize)
	}
	rt, err := ort.Init(opt.LibraryPath)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e := &Engine{
		opt:    opt,
		limits: DecodeLimits{MaxBytes: opt.MaxBytes, MaxPixels: opt.MaxPixels, MinSide: opt.MinSide, MaxScans: opt.MaxScans, PureGo: opt.PureGoJPEG},
	}
	e.scratch.New = func() any { return new(buffers) }
	so := ort.SessionOptions{IntraOpThreads: opt.IntraOpThreads}
	for _, m := range []struct {
		file string
		dst  *runner
	}{{DetectorModel, &e.detector}, {LandmarkModel, &e.landmarks}, {RecognitionModel, &e.recognizer}, {SSDModel, &e.ssd}} {
		if m.dst == &e.ssd && opt.NoFallback {
			continue
		}
		s, err := rt.NewSession(filepath.Join(opt.ModelDir, m.file), so)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("engine: %w", err)
		}
		*m.dst = s
	}
	return e, nil
}

// Close releases the sessions. It is safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, r := range []runner{e.detector, e.landmarks, e.recognizer, e.ssd} {
			if r != nil {
				errs = append(errs, r.Close())
			}
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// buffers are reused between calls through a sync.Pool.
type buffers struct {
	pix          []uint8 // decoded pixels (Analyze)
	det, lm, rec []float32
	rs           resizeScratch
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Analyze decodes an image and returns every face with box, score, 68 landmarks
// and 128-D descriptor, in face-api's order (detector score, descending).
// Subject is left empty (see gallery.Answer). Bad input gives an *ImageError.
//
// Detection follows face-api's TinyFaceDetector exactly. When it finds nothing
// (and Options.NoFallback is unset) two fallbacks run, because the course's
// photos are small, tight face crops that the detector was not trained on:
//  1. the image is framed by a grey border of a third of its longer side and
//     detected again at SmallInputSize (finds faces that fill the whole frame);
//  2. if that fails too and the image looks like a face crop (aspect ratio
//     within 4:5..5:4 and longer side <= 4*SmallInputSize), a second opinion
//     is asked (see cropEvidence); only if it sees a face is the whole image
//     taken as the face box with score 0, and landmarks and descriptor are
//     computed on it as usual. Otherwise the answer is NoFace.
func (e *Engine) Analyze(ctx context.Context, image []byte) (*Result, error) {
	buf := e.scratch.Get().(*buffers)
	defer e.scratch.Put(buf)
	t0 := time.Now()
	img, err := decode(image, e.limits, buf.pix)
	if err != nil {
		return nil, err
	}
	res := &Result{Width: img.W, Height: img.H, Faces: []Face{}}
	res.Timings.Decode = time.Since(t0)
	if err := e.analyzeRGB(ctx, img, res, buf); err != nil {
		return nil, err
	}
	// The pixels are not part of the result: keep them for the next decode
	// (allocating and zeroing megabytes per photo costs as much as a
	// detector stage), unless the image was unusually large.
	if len(img.Pix) <= maxPooledPix {
		buf.pix = img.Pix[:0]
	}
	return res, nil
}

// maxPooledPix bounds the decoded-pixel buffer an idle worker keeps (8 MP).
const maxPooledPix = 8 << 20 * 3

// AnalyzeRGB runs the pipeline on already-decoded pixels (used by the parity
// test to feed face-api and the engine the very same tensor).
func (e *Engine) AnalyzeRGB(ctx context.Context, img *RGB) (*Result, error) {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
		return nil, &ImageError{Kind: KindFormat, Detail: "RGB buffer does not match its size"}
	}
	res := &Result{Width: img.W, Height: img.H, Faces: []Face{}}
	buf := e.scratch.Get().(*buffers)
	defer e.scratch.Put(buf)
	if err := e.analyzeRGB(ctx, img, res, buf); err != nil {
		return nil, err
	}
	return res, nil
}

func (e *Engine) analyzeRGB(ctx context.Context, img *RGB, res *Result, buf *buffers) error {

	t := time.Now()
	size := e.opt.DetectorInputSize
	if max(img.W, img.H) <= e.opt.SmallImageSide {
		size = e.opt.SmallInputSize
	}
	dets, err := e.detect(ctx, img, size, buf, res)
	if err != nil {
		return err
	}
	if len(dets) == 0 && !e.opt.NoFallback {
		dets, err = e.detectFramed(ctx, img, buf, res)
		if err != nil {
			return err
		}
		if len(dets) > 0 {
			e.opt.Logger.DebugContext(ctx, "face found only with a border added (tight crop)", "width", img.W, "height", img.H, "faces", len(dets))
		} else if looksLikeCrop(img.W, img.H, 4*e.opt.SmallInputSize) {
			ev, err := e.cropEvidence(ctx, img, buf)
			if err != nil {
				return err
			}
			res.CropEvidence = ev
			if ev.Accepted {
				dets = []detection{{box: Box{0, 0, float64(img.W), float64(img.H)}, score: 0}}
				e.opt.Logger.DebugContext(ctx, "no face box; taking the whole image as a face crop on a second detector's evidence", "width", img.W, "height", img.H, "tiny", ev.Tiny, "ssd", ev.SSD)
			}
		}
	}
	if len(dets) > e.opt.MaxFaces {
		dets = dets[:e.opt.MaxFaces]
	}
	res.Timings.Detect = time.Since(t)
	if len(dets) == 0 {
		return nil
	}

	t = time.Now()
	faces, err := e.landmarks68(ctx, img, dets, buf)
	if err != nil {
		return err
	}
	res.Timings.Landmarks = time.Since(t)

	t = time.Now()
	n := len(faces)
	buf.rec = grow(buf.rec, n*150*150*3)
	for i := range faces {
		r := alignDlib(faces[i].Landmarks, faces[i].cropW, faces[i].cropH).clip(img.W, img.H)
		if r.w <= 0 || r.h <= 0 {
			// Degenerate landmarks (never seen): describe the detection's own crop.
			r = clipBox(faces[i].Box, img.W, img.H)
		}
		ox, oy := centredOffset(r.w, r.h)
		padResize(img, r, ox, oy, 150, buf.rec[i*150*150*3:(i+1)*150*150*3], &buf.rs)
	}
	res.Timings.Align = time.Since(t)

	t = time.Now()
	out, err := e.recognizer.Run(ctx, buf.rec, []int64{int64(n), 150, 150, 3})
	if err != nil {
		return fmt.Errorf("engine: recognition: %w", err)
	}
	desc, ok := out[modelOutput]
	if !ok || len(desc.Data) != n*128 {
		return fmt.Errorf("engine: recognition model gave %d values, want %d", len(desc.Data), n*128)
	}
	res.Faces = make([]Face, n)
	for i := range faces {
		f := faces[i].Face
		f.Descriptor = desc.Data[i*128 : (i+1)*128 : (i+1)*128]
		res.Faces[i] = f
	}
	res.Timings.Describe = time.Since(t)
	return nil
}

func looksLikeCrop(w, h, maxSide int) bool {
	ar := float64(w) / float64(h)
	return ar >= 0.8 && ar <= 1.25 && max(w, h) <= maxSide
}

type detection struct {
	box   Box
	score float64
}

// detect runs the tiny detector at input size n and decodes its grid as face-api's
// TinyYolov2.extractBoxes + nonMaxSuppression do.
func (e *Engine) detect(ctx context.Context, img *RGB, n int, buf *buffers, res *Result) ([]detection, error) {
	buf.det = grow(buf.det, n*n*3)
	padResize(img, rect{0, 0, img.W, img.H}, 0, 0, n, buf.det, &buf.rs)
	res.DetectorSizes = append(res.DetectorSizes, n)
	out, err := e.detector.Run(ctx, buf.det, []int64{1, int64(n), int64(n), 3})
	if err != nil {
		return nil, fmt.Errorf("engine: detector: %w", err)
	}
	o, ok := out[modelOutput]
	if !ok {
		return nil, fmt.Errorf("engine: detector has no output %q", modelOutput)
	}
	return decodeTiny(o.Data, o.Shape, img.W, img.H, n, e.opt.MinScore, e.opt.NMSIoU)
}

// Bounds of the framed retry. A tight face crop is never a strip, and the
// framed image is resized to SmallInputSize by the detector anyway, so:
//   - images with an aspect ratio beyond maxFramedAspect are not framed at all
//     (a 400000x16 PNG once asked for a 533 GB frame);
//   - the image is shrunk first so the frame's longer side is at most
//     maxFramedSide (4x the detector's 160 input: the shrink costs nothing the
//     detector would have seen). The course's 150x150 crops (frame 250) and the
//     64x64 photos are framed at full size, exactly as before.
//
// The frame therefore never holds more than maxFramedSide^2 pixels (1.2 MB),
// whatever the image's shape or size.
const (
	maxFramedAspect = 4
	maxFramedSide   = 640
)

// detectFramed detects on the image framed by a mid-grey border (the fallback for
// tight crops) and maps the boxes back to the image. It returns nothing for
// images too elongated to be a face crop.
func (e *Engine) detectFramed(ctx context.Context, img *RGB, buf *buffers, res *Result) ([]detection, error) {
	fr, ok := makeFrame(img)
	if !ok {
		return nil, nil
	}
	dets, err := e.detect(ctx, fr.RGB, e.opt.SmallInputSize, buf, res)
	if err != nil {
		return nil, err
	}
	var out []detection
	for _, d := range dets {
		if b, ok := fr.unframe(d.box, img.W, img.H); ok {
			out = append(out, detection{box: b, score: d.score})
		}
	}
	return out, nil
}

// frame is an image (shrunk by sx, sy) inside a mid-grey border.
type frame struct {
	*RGB
	border int
	sx, sy float64 // image pixels per framed pixel
}

// makeFrame frames img (see detectFramed); ok is false for images too
// elongated to be a face crop.
func makeFrame(img *RGB) (frame, bool) {
	long, short := max(img.W, img.H), min(img.W, img.H)
	if short <= 0 || long > maxFramedAspect*short {
		return frame{}, false
	}
	src := img
	if framed := long + 2*(long/3); framed > maxFramedSide {
		k := float64(framed) / maxFramedSide // source pixels per framed pixel
		src = shrinkRGB(img, max(1, int(float64(img.W)/k)), max(1, int(float64(img.H)/k)))
	}
	border := max(src.W, src.H) / 3
	fw, fh := src.W+2*border, src.H+2*border
	framed := &RGB{W: fw, H: fh, Pix: make([]uint8, fw*fh*3)}
	for i := range framed.Pix {
		framed.Pix[i] = 128
	}
	for y := 0; y < src.H; y++ {
		copy(framed.Pix[3*((y+border)*fw+border):], src.Pix[3*y*src.W:3*(y+1)*src.W])
	}
	return frame{RGB: framed, border: border, sx: float64(img.W) / float64(src.W), sy: float64(img.H) / float64(src.H)}, true
}

// unframe maps a box found in the frame back to the w x h image, clipped to
// it; ok is false when nothing of it is left inside.
func (f frame) unframe(d Box, w, h int) (Box, bool) {
	b := Box{X: (d.X - float64(f.border)) * f.sx, Y: (d.Y - float64(f.border)) * f.sy, W: d.W * f.sx, H: d.H * f.sy}
	// Keep the box inside the image: it is the face's frame from now on.
	x0, y0 := math.Max(0, b.X), math.Max(0, b.Y)
	x1, y1 := math.Min(float64(w), b.X+b.W), math.Min(float64(h), b.Y+b.H)
	if x1-x0 < 1 || y1-y0 < 1 {
		return Box{}, false
	}
	return Box{x0, y0, x1 - x0, y1 - y0}, true
}

// shrinkRGB downsizes img to w x h (both no larger than img's) by averaging
// each output pixel's source area (a box filter: no aliasing on big shrinks).
func shrinkRGB(img *RGB, w, h int) *RGB {
	out := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for oy := 0; oy < h; oy++ {
		y0, y1 := oy*img.H/h, max(oy*img.H/h+1, (oy+1)*img.H/h)
		for ox := 0; ox < w; ox++ {
			x0, x1 := ox*img.W/w, max(ox*img.W/w+1, (ox+1)*img.W/w)
			var sum [3]int
			for y := y0; y < y1; y++ {
				row := img.Pix[3*(y*img.W+x0) : 3*(y*img.W+x1)]
				for i := 0; i < len(row); i += 3 {
					sum[0] += int(row[i])
					sum[1] += int(row[i+1])
					sum[2] += int(row[i+2])
				}
			}
			n := (y1 - y0) * (x1 - x0)
			o := out.Pix[3*(oy*w+ox):]
			o[0], o[1], o[2] = uint8((sum[0]+n/2)/n), uint8((sum[1]+n/2)/n), uint8((sum[2]+n/2)/n)
		}
	}
	return out
}

func sigmoid(x float32) float64 { return 1 / (1 + math.Exp(-float64(x))) }

var tinyAnchors = [5][2]float64{
	{1.603231, 2.094468}, {6.041143, 7.080126}, {2.882459, 3.518061}, {4.266906, 5.178857}, {9.041765, 10.66308},
}

// decodeTiny turns the raw [1, g, g, 25] grid into face boxes in image pixels.
func decodeTiny(data []float32, shape []int64, w, h, n int, minScore, iou float64) ([]detection, error) {
	g := n / 32
	if len(shape) != 4 || shape[1] != int64(g) || shape[2] != int64(g) || shape[3] != 25 || len(data) != g*g*25 {
		return nil, fmt.Errorf("engine: detector output shape %v, want [1 %d %d 25]", shape, g, g)
	}
	// face-api maps through the "reshaped" size: the image resized so its longer
	// side is n, rounded; the correction undoes the bottom/right padding.
	scale := float64(n) / float64(max(w, h))
	cx := float64(n) / math.Round(float64(w)*scale)
	cy := float64(n) / math.Round(float64(h)*scale)
	type cand struct {
		x0, y0, x1, y1, score float64
	}
	var cands []cand
	gf := float64(g)
	for row := 0; row < g; row++ {
		for col := 0; col < g; col++ {
			for a := 0; a < 5; a++ {
				v := data[(row*g+col)*25+a*5:]
				score := sigmoid(v[4])
				if !(score > minScore) { // also drops NaN
					continue
				}
				ctX := (float64(col) + sigmoid(v[0])) / gf * cx
				ctY := (float64(row) + sigmoid(v[1])) / gf * cy
				bw := math.Exp(float64(v[2])) * tinyAnchors[a][0] / gf * cx
				bh := math.Exp(float64(v[3])) * tinyAnchors[a][1] / gf * cy
				x, y := ctX-bw/2, ctY-bh/2
				if !finite(x, y, bw, bh) {
					continue
				}
				cands = append(cands, cand{x, y, x + bw, y + bh, score})
			}
		}
	}
	// nonMaxSuppression: repeatedly take the highest score (for equal scores,
	// face-api's stable ascending sort + pop takes the later index first) and
	// drop the rest that overlap it by more than iou.
	alive := make([]bool, len(cands))
	for i := range alive {
		alive[i] = true
	}
	var out []detection
	for {
		best := -1
		for i, c := range cands {
			if alive[i] && (best < 0 || c.score >= cands[best].score) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		alive[best] = false
		b := cands[best]
		for i, c := range cands {
			if alive[i] && boxIoU(b.x0, b.y0, b.x1, b.y1, c.x0, c.y0, c.x1, c.y1) > iou {
				alive[i] = false
			}
		}
		out = append(out, detection{
			box:   Box{X: b.x0 * float64(w), Y: b.y0 * float64(h), W: (b.x1 - b.x0) * float64(w), H: (b.y1 - b.y0) * float64(h)},
			score: b.score,
		})
	}
	return out, nil
}

func boxIoU(ax0, ay0, ax1, ay1, bx0, by0, bx1, by1 float64) float64 {
	iw := math.Max(0, math.Min(ax1, bx1)-math.Max(ax0, bx0))
	ih := math.Max(0, math.Min(ay1, by1)-math.Max(ay0, by0))
	inter := iw * ih
	return inter / ((ax1-ax0)*(ay1-ay0) + (bx1-bx0)*(by1-by0) - inter)
}

func finite(v ...float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// clipBox is face-api's Box.clipAtImageBorders followed by floor(). A box with
// non-finite values (a model gone wrong) clips to nothing rather than to an
// out-of-range crop.
func clipBox(b Box, w, h int) rect {
	if !finite(b.X, b.Y, b.W, b.H) {
		return rect{}
	}
	x := math.Max(b.X, 0)
	y := math.Max(b.Y, 0)
	cw := math.Min(b.X+b.W-x, float64(w)-x)
	ch := math.Min(b.Y+b.H-y, float64(h)-y)
	return rect{int(math.Floor(x)), int(math.Floor(y)), int(math.Floor(cw)), int(math.Floor(ch))}
}

type faceWork struct {
	Face
	cropW, cropH int
}

// landmarks68 runs the landmark net on every detection's crop in one batch and
// post-processes as FaceLandmark68NetBase.postProcess + shiftBy(box.x, box.y).
func (e *Engine) landmarks68(ctx context.Context, img *RGB, dets []detection, buf *buffers) ([]faceWork, error) {
	faces := make([]faceWork, 0, len(dets))
	var crops []rect
	for _, d := range dets {
		r := clipBox(d.box, img.W, img.H)
		if r.w <= 0 || r.h <= 0 {
			continue // face-api drops such boxes too
		}
		crops = append(crops, r)
		faces = append(faces, faceWork{Face: Face{Box: d.box, Score: d.score}, cropW: r.w, cropH: r.h})
	}
	n := len(crops)
	if n == 0 {
		return nil, nil
	}
	const sz = 112
	buf.lm = grow(buf.lm, n*sz*sz*3)
	for i, r := range crops {
		ox, oy := centredOffset(r.w, r.h)
		padResize(img, r, ox, oy, sz, buf.lm[i*sz*sz*3:(i+1)*sz*sz*3], &buf.rs)
	}
	out, err := e.landmarks.Run(ctx, buf.lm, []int64{int64(n), sz, sz, 3})
	if err != nil {
		return nil, fmt.Errorf("engine: landmarks: %w", err)
	}
	o, ok := out[modelOutput]
	if !ok || len(o.Data) != n*136 {
		return nil, fmt.Errorf("engine: landmark model gave %d values, want %d", len(o.Data), n*136)
	}
	for i := range faces {
		f := &faces[i]
		// JS computes the sizes in float64 and tfjs fills float32 tensors with them.
		w, h := float64(f.cropW), float64(f.cropH)
		s := sz / math.Max(w, h)
		sw64, sh64 := w*s, h*s
		var padX, padY float32
		if sw64 < sh64 {
			padX = float32(math.Abs(sw64-sh64) / 2)
		} else if sh64 < sw64 {
			padY = float32(math.Abs(sw64-sh64) / 2)
		}
		sw, sh := float32(sw64), float32(sh64)
		raw := o.Data[i*136 : (i+1)*136]
		f.Landmarks = make([]Point, 68)
		for k := 0; k < 68; k++ {
			rx := (raw[2*k]*sz - padX) / sw
			ry := (raw[2*k+1]*sz - padY) / sh
			f.Landmarks[k] = Point{
				X: float64(rx)*float64(f.cropW) + f.Box.X,
				Y: float64(ry)*float64(f.cropH) + f.Box.Y,
			}
		}
	}
	return faces, nil
}

// alignDlib is face-api's FaceLandmarks.alignDlib, which its
// withFaceDescriptors() uses to choose the crop for the recognition net: a square
// of side floor(mean eye-to-mouth distance / 0.45) placed at relative (0.5, 0.43)
// around the centre of the eyes and mouth. cropW/cropH are the landmark crop's
// size (face-api clamps with them, however odd that is).
func alignDlib(pts []Point, cropW, cropH int) Box {
	centre := func(a, b int) Point {
		var p Point
		for _, q := range pts[a:b] {
			p.X += q.X
			p.Y += q.Y
		}
		return Point{p.X / float64(b-a), p.Y / float64(b-a)}
	}
	le, re, mo := centre(36, 42), centre(42, 48), centre(48, 68)
	dist := func(p Point) float64 { return math.Hypot(mo.X-p.X, mo.Y-p.Y) }
	size := math.Floor((dist(le) + dist(re)) / 2 / 0.45)
	ref := Point{(le.X + re.X + mo.X) / 3, (le.Y + re.Y + mo.Y) / 3}
	x := math.Floor(math.Max(0, ref.X-0.5*size))
	y := math.Floor(math.Max(0, ref.Y-0.43*size))
	return Box{X: x, Y: y, W: math.Min(size, float64(cropW)+x), H: math.Min(size, float64(cropH)+y)}
}

func (b Box) clip(w, h int) rect { return clipBox(b, w, h) }
