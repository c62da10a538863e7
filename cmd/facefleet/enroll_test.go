package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/testenv"
)

// enroll two photos per person from the shared faces, then recognize the rest.
func TestEnrollRecognize(t *testing.T) {
	models, lib := testenv.Models(t), testenv.ORTLib(t)
	faces := testenv.Shared(t, "faces")
	dir := t.TempDir()
	var probes []string
	want := map[string]string{}
	people, _ := filepath.Glob(filepath.Join(faces, "*"))
	for _, p := range people {
		name := filepath.Base(p)
		files, _ := filepath.Glob(filepath.Join(p, "*.png"))
		if len(files) < 3 {
			t.Fatalf("%s: want at least 3 photos", p)
		}
		os.MkdirAll(filepath.Join(dir, "people", name), 0o755)
		for i, f := range files {
			if i < 2 {
				data, _ := os.ReadFile(f)
				os.WriteFile(filepath.Join(dir, "people", name, filepath.Base(f)), data, 0o644)
				continue
			}
			probes = append(probes, f)
			want[strings.TrimSuffix(filepath.Base(f), ".png")] = name
		}
	}
	os.WriteFile(filepath.Join(dir, "people", people0(people), "notes.txt"), []byte("not a photo"), 0o644)
	gfile := filepath.Join(dir, "g.json")
	common := []string{"-gallery", gfile, "-models", models, "-ort-lib", lib}
	var out, errb bytes.Buffer
	if err := runEnroll(context.Background(), append(common, filepath.Join(dir, "people")), &out, &errb); err != nil {
		t.Fatalf("enroll: %v\n%s", err, errb.String())
	}
	g, err := gallery.Load(gfile)
	if err != nil || g.Len() != len(people) {
		t.Fatalf("gallery: %v (%d people)", err, g.Len())
	}
	if !strings.Contains(out.String(), "enrolled "+people0(people)+": 2 photo(s)") {
		t.Fatalf("enroll output: %s", out.String())
	}

	out.Reset()
	if err := runRecognize(context.Background(), append(common, probes...), &out, &errb); err != nil {
		t.Fatalf("recognize: %v\n%s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(probes) {
		t.Fatalf("got %d lines for %d images:\n%s", len(lines), len(probes), out.String())
	}
	for _, l := range lines {
		stem, name, ok := strings.Cut(l, ":")
		if !ok || want[stem] != name {
			t.Errorf("%q: want %s:%s", l, stem, want[stem])
		}
	}

	// -json prints what POST /v1/recognize answers: faces[].box.x, not Go names.
	out.Reset()
	if err := runRecognize(context.Background(), append(common, "-json", probes[0]), &out, &errb); err != nil {
		t.Fatalf("recognize -json: %v\n%s", err, errb.String())
	}
	var api struct {
		Name  string `json:"name"`
		Width int    `json:"width"`
		Faces []struct {
			Box     map[string]float64 `json:"box"`
			Subject string             `json:"subject"`
		} `json:"faces"`
		Timings map[string]float64 `json:"timings"`
	}
	if err := json.Unmarshal(out.Bytes(), &api); err != nil || len(api.Faces) == 0 || api.Width == 0 {
		t.Fatalf("recognize -json: %v\n%s", err, out.String())
	}
	if _, ok := api.Faces[0].Box["x"]; !ok || api.Name != want[strings.TrimSuffix(filepath.Base(probes[0]), ".png")] ||
		api.Timings["inference_ms"] <= 0 || strings.Contains(out.String(), `"Box"`) {
		t.Fatalf("recognize -json is not the API's shape:\n%s", out.String())
	}

	// A bad file is reported and makes the command fail; -json describes it.
	bad := filepath.Join(dir, "bad.jpg")
	os.WriteFile(bad, []byte("nope"), 0o644)
	out.Reset()
	errb.Reset()
	err = runRecognize(context.Background(), append(common, "-json", bad, probes[0]), &out, &errb)
	if err == nil || !strings.Contains(out.String(), `{"error":{"code":"bad_image","message":"bad image (format)`) || !strings.Contains(out.String(), `"name":"`+want[strings.TrimSuffix(filepath.Base(probes[0]), ".png")]+`"`) {
		t.Fatalf("bad file: err %v, output %s", err, out.String())
	}
}

func people0(p []string) string { return filepath.Base(p[0]) }
