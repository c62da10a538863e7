// Package convert turns face-api's TFJS weights (npm @vladmandic/face-api@1.7.15,
// folder model/) into deterministic ONNX graphs for ONNX Runtime. See
// models/README.md for the graph contract (inputs, outputs, layouts).
package convert

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrSumMismatch means a converted model's SHA-256 differs from SHA256SUMS.
var ErrSumMismatch = errors.New("converted model does not match models/SHA256SUMS")

// Spec names one model the converter can produce.
type Spec struct {
	File     string // output file name, e.g. face_recognition.onnx
	Manifest string // TFJS model name, <Manifest>-weights_manifest.json
	build    func(*Weights) ([]byte, error)
}

// Specs lists every model, in the order the converter writes them.
func Specs() []Spec {
	return []Spec{
		{File: "face_recognition.onnx", Manifest: "face_recognition_model", build: recognitionNet},
		{File: "tiny_face_detector.onnx", Manifest: "tiny_face_detector_model", build: tinyFaceDetector},
		{File: "face_landmark_68.onnx", Manifest: "face_landmark_68_model", build: landmarkNet},
		{File: "ssd_mobilenetv1.onnx", Manifest: "ssd_mobilenetv1_model", build: ssdMobilenetV1},
	}
}

// Options configures Convert.
type Options struct {
	Src    string   // face-api's model/ folder
	Out    string   // where the .onnx files go (created if missing)
	Models []string // file names to produce; empty means all of Specs()
	// Sums is the expected SHA256SUMS text (sha256sum format). Each produced model
	// must be listed with the same digest, unless Update is set.
	Sums string
	// Update skips the check; the caller rewrites SHA256SUMS from the results.
	Update bool
	// Progress, if set, is called once per written model.
	Progress func(Result)
}

// Result describes one converted model.
type Result struct {
	File   string
	Path   string
	SHA256 string
	Bytes  int
}

// Convert builds every requested model, checks it against opts.Sums and writes
// it atomically into opts.Out. A model whose digest does not match is not
// written and Convert returns an error wrapping ErrSumMismatch.
func Convert(ctx context.Context, opts Options) ([]Result, error) {
	if opts.Src == "" || opts.Out == "" {
		return nil, errors.New("convert: Src (face-api's model/ folder) and Out are required")
	}
	want, err := ParseSums(opts.Sums)
	if err != nil {
		return nil, err
	}
	specs := Specs()
	if len(opts.Models) > 0 {
		var sel []Spec
		for _, name := range opts.Models {
			i := slices.IndexFunc(specs, func(s Spec) bool { return s.File == name })
			if i < 0 {
				return nil, fmt.Errorf("convert: unknown model %q (known: %s)", name, strings.Join(Names(), ", "))
			}
			sel = append(sel, specs[i])
		}
		specs = sel
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("convert: create output folder: %w", err)
	}
	var results []Result
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		w, err := LoadWeights(opts.Src, s.Manifest)
		if err != nil {
			return results, fmt.Errorf("convert %s: %w", s.File, err)
		}
		data, err := s.build(w)
		if err != nil {
			return results, fmt.Errorf("convert %s: %w", s.File, err)
		}
		sum := sha256.Sum256(data)
		r := Result{File: s.File, Path: filepath.Join(opts.Out, s.File), SHA256: hex.EncodeToString(sum[:]), Bytes: len(data)}
		if !opts.Update {
			exp, ok := want[s.File]
			if !ok {
				return results, fmt.Errorf("convert %s: %w: no entry for it; if the model is new, run `go run ./models/cmd/convert -update` and commit models/SHA256SUMS", s.File, ErrSumMismatch)
			}
			if exp != r.SHA256 {
				return results, fmt.Errorf("convert %s: %w: got %s, want %s; the weights (face-api version) or the converter changed: if intended, run `go run ./models/cmd/convert -update` and commit models/SHA256SUMS", s.File, ErrSumMismatch, r.SHA256, exp)
			}
		}
		if err := writeAtomic(r.Path, data); err != nil {
			return results, fmt.Errorf("convert %s: %w", s.File, err)
		}
		results = append(results, r)
		if opts.Progress != nil {
			opts.Progress(r)
		}
	}
	return results, nil
}

// Names lists the model file names Convert knows.
func Names() []string {
	var n []string
	for _, s := range Specs() {
		n = append(n, s.File)
	}
	return n
}

// ParseSums reads sha256sum-format text ("<hex>  <file>" per line).
func ParseSums(text string) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || len(f[0]) != 64 {
			return nil, fmt.Errorf("SHA256SUMS line %d: want \"<sha256>  <file>\", got %q", ln, line)
		}
		m[strings.TrimPrefix(f[1], "*")] = strings.ToLower(f[0])
	}
	return m, sc.Err()
}

// FormatSums merges results into the existing sums text and returns the new
// SHA256SUMS contents, sorted by file name.
func FormatSums(old string, results []Result) (string, error) {
	m, err := ParseSums(old)
	if err != nil {
		return "", err
	}
	for _, r := range results {
		m[r.File] = r.SHA256
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&buf, "%s  %s\n", m[n], n)
	}
	return buf.String(), nil
}

// writeAtomic writes data to a temporary file beside path and renames it into
// place, so readers never see a half-written model.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
