package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/loadgen"
)

// The declared defaults are the ones the libraries fall back to.
func TestDeclaredDefaultsMatchLibraries(t *testing.T) {
	for name, lib := range map[string]string{
		settings.MaxPixels:    strconv.Itoa(engine.DefaultMaxPixels),
		settings.MaxJPEGScans: strconv.Itoa(engine.DefaultMaxScans),
		settings.Threshold:    strconv.FormatFloat(gallery.DefaultThreshold, 'g', -1, 64),
		settings.MaxBody:      strconv.Itoa(settings.DefaultMaxBody),
		settings.MaxPending:   strconv.Itoa(settings.DefaultMaxPending),
	} {
		if s, _ := settings.Lookup(name); s.Default != lib {
			t.Errorf("-%s: declared default %q, library default %s", name, s.Default, lib)
		}
	}
}

// syncBuffer is a goroutine-safe writer for the command's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUpServesAndShutsDown runs the real command (real engine) on a free port,
// classifies one photo with an empty gallery and stops it with a cancel, as
// SIGTERM does.
func TestUpServesAndShutsDown(t *testing.T) {
	models, lib := testenv.Models(t), testenv.ORTLib(t)
	photo := filepath.Join(testenv.Shared(t, "faces"), "amy", "amy1.png")
	img, err := os.ReadFile(photo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runUp(ctx, []string{"-port", "0", "-data", t.TempDir(), "-models", models, "-ort-lib", lib,
			"-max-instances", "1", "-idle-timeout", "500ms", "-min-lifetime", "0s", "-log-level", "warn"}, &stdout, &stderr)
	}()
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; {
		if m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("up did not start: %s %s", stdout.String(), stderr.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	body, contentType, err := loadgen.MultipartBody("inputFile", "amy1.png", img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(url+"/", contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "amy1:Unknown" {
		t.Fatalf("POST / = %d %q; want amy1:Unknown with an empty gallery", res.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up returned %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up did not shut down")
	}
}
