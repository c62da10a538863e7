package convert_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/models"
	"github.com/facefleet/facefleet/models/convert"
)

func faceAPIModels(t testing.TB) string {
	t.Helper()
	nm := testenv.Path(t, "FACEFLEET_NODE_MODULES", "tools/node/node_modules", "run make deps")
	dir := filepath.Join(nm, "@vladmandic", "face-api", "model")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("face-api's weights are missing from %s (%v): run make deps", nm, err)
	}
	return dir
}

// convertAll converts every model into a temporary folder, checking SHA256SUMS.
func convertAll(t testing.TB) string {
	t.Helper()
	out := t.TempDir()
	res, err := convert.Convert(context.Background(), convert.Options{Src: faceAPIModels(t), Out: out, Sums: models.SHA256SUMS()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(convert.Specs()) {
		t.Fatalf("converted %d models, want %d", len(res), len(convert.Specs()))
	}
	return out
}

// TestReproducesSums: a fresh conversion reproduces models/SHA256SUMS exactly,
// file for file, and the sums file lists nothing else.
func TestReproducesSums(t *testing.T) {
	out := convertAll(t)
	want, err := convert.ParseSums(models.SHA256SUMS())
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(convert.Specs()) {
		t.Errorf("SHA256SUMS lists %d files, the converter makes %d", len(want), len(convert.Specs()))
	}
	for _, name := range convert.Names() {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want[name] {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, want[name])
		}
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestSumMismatchFails(t *testing.T) {
	src := faceAPIModels(t)
	out := t.TempDir()
	bad := strings.Repeat("0", 64) + "  tiny_face_detector.onnx\n"
	_, err := convert.Convert(context.Background(), convert.Options{Src: src, Out: out, Models: []string{"tiny_face_detector.onnx"}, Sums: bad})
	if !errors.Is(err, convert.ErrSumMismatch) || !strings.Contains(err.Error(), "-update") {
		t.Fatalf("err = %v, want ErrSumMismatch saying how to update", err)
	}
	if _, err := os.Stat(filepath.Join(out, "tiny_face_detector.onnx")); !os.IsNotExist(err) {
		t.Errorf("mismatching model was written (stat err %v)", err)
	}
	// No entry at all is a mismatch too.
	if _, err := convert.Convert(context.Background(), convert.Options{Src: src, Out: out, Models: []string{"tiny_face_detector.onnx"}}); !errors.Is(err, convert.ErrSumMismatch) {
		t.Fatalf("missing entry: err = %v, want ErrSumMismatch", err)
	}
	// Update skips the check and writes the file.
	res, err := convert.Convert(context.Background(), convert.Options{Src: src, Out: out, Models: []string{"tiny_face_detector.onnx"}, Update: true})
	if err != nil || len(res) != 1 {
		t.Fatalf("update: %v %v", res, err)
	}
	text, err := convert.FormatSums(bad, res)
	if err != nil || !strings.Contains(text, res[0].SHA256+"  tiny_face_detector.onnx") || strings.Count(text, "\n") != 1 {
		t.Fatalf("FormatSums = %q, %v", text, err)
	}
}

func TestBadInputs(t *testing.T) {
	ctx := context.Background()
	if _, err := convert.Convert(ctx, convert.Options{Src: t.TempDir(), Out: t.TempDir(), Update: true}); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Errorf("empty source folder: %v", err)
	}
	if _, err := convert.Convert(ctx, convert.Options{Src: "x", Out: t.TempDir(), Models: []string{"nope.onnx"}}); err == nil || !strings.Contains(err.Error(), "unknown model") {
		t.Errorf("unknown model: %v", err)
	}
	// A truncated .bin is reported as bad weights, not a panic.
	src := faceAPIModels(t)
	dir := t.TempDir()
	m, _ := os.ReadFile(filepath.Join(src, "tiny_face_detector_model-weights_manifest.json"))
	bin, _ := os.ReadFile(filepath.Join(src, "tiny_face_detector_model.bin"))
	os.WriteFile(filepath.Join(dir, "tiny_face_detector_model-weights_manifest.json"), m, 0o644)
	os.WriteFile(filepath.Join(dir, "tiny_face_detector_model.bin"), bin[:len(bin)/2], 0o644)
	_, err := convert.Convert(ctx, convert.Options{Src: dir, Out: t.TempDir(), Models: []string{"tiny_face_detector.onnx"}, Update: true})
	if !errors.Is(err, convert.ErrBadWeights) {
		t.Errorf("truncated weights: %v, want ErrBadWeights", err)
	}
	if _, err := convert.ParseSums("abc  x\n"); err == nil {
		t.Error("ParseSums accepted a short digest")
	}
}
