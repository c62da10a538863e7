package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
	"github.com/facefleet/facefleet/webtier"
)

// Detect and verify through the whole service with the real engine: every
// inference on a worker, reached over the queue.
func TestDetectAndVerifyRealEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("real engine: skipped with -short")
	}
	models, lib := testenv.Models(t), testenv.ORTLib(t)
	people := e2ekit.LoadFaces(t, 2)
	group, err := os.ReadFile(filepath.Join(testenv.Shared(t, "groups"), "bbt1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{ModelDir: models, LibraryPath: lib, IntraOpThreads: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	svc, err := service.New(service.Config{DataDir: t.TempDir(), Analyzer: eng, MaxInstances: 2, ScaleEvery: 100 * time.Millisecond,
		WorkerWait: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := e2ekit.Serve(t, svc)

	code, body, err := e2ekit.Upload(http.DefaultClient, "POST", url+"/v1/detect", "image", "bbt1.jpg", group)
	var d webtier.DetectResult
	if err != nil || code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("detect: %d %s %v", code, body, err)
	}
	if len(d.Faces) != 4 { // the README's count for bbt1
		t.Fatalf("detect found %d faces in bbt1.jpg, want 4", len(d.Faces))
	}
	for _, f := range d.Faces {
		if len(f.Landmarks) != 68 || f.Score < 0.3 || f.Box.W <= 0 {
			t.Fatalf("detected face %+v", f)
		}
		for _, p := range f.Landmarks { // landmarks lie around their box
			if p.X < f.Box.X-f.Box.W/2 || p.X > f.Box.X+1.5*f.Box.W || p.Y < f.Box.Y-f.Box.H/2 || p.Y > f.Box.Y+1.5*f.Box.H {
				t.Fatalf("landmark %+v far from box %+v", p, f.Box)
			}
		}
	}

	verify := func(a, b []byte) webtier.VerifyResult {
		t.Helper()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fa, _ := mw.CreateFormFile("image_a", "a.png")
		fa.Write(a)
		fb, _ := mw.CreateFormFile("image_b", "b.png")
		fb.Write(b)
		mw.Close()
		res, err := http.Post(url+"/v1/verify", mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var v webtier.VerifyResult
		if res.StatusCode != 200 || json.Unmarshal(raw, &v) != nil {
			t.Fatalf("verify: %d %s", res.StatusCode, raw)
		}
		return v
	}
	same := verify(people[0].Photos[0], people[0].Photos[1])
	other := verify(people[0].Photos[0], people[1].Photos[0])
	if !same.Match || other.Match || same.Distance >= other.Distance || same.Threshold != 0.6 {
		t.Fatalf("verify: same person %+v, different people %+v", same, other)
	}
}
