package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/testenv"
)

func TestApplyEnvFlagWins(t *testing.T) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.Int("port", 8000, "")
	idle := fs.Duration("idle-timeout", 30*time.Second, "")
	max := fs.Int("max-instances", 20, "")
	t.Setenv("FACEFLEET_PORT", "9000")
	t.Setenv("FACEFLEET_IDLE_TIMEOUT", "5s")
	t.Setenv("FACEFLEET_MAX_INSTANCES", "")
	if err := fs.Parse([]string{"-port", "8080"}); err != nil {
		t.Fatal(err)
	}
	binds := []envFlag{{"port", "FACEFLEET_PORT"}, {"idle-timeout", "FACEFLEET_IDLE_TIMEOUT"}, {"max-instances", "FACEFLEET_MAX_INSTANCES"}}
	if err := applyEnv(fs, binds); err != nil {
		t.Fatal(err)
	}
	if *port != 8080 || *idle != 5*time.Second || *max != 20 {
		t.Fatalf("port %d idle %s max %d; want the flag (8080), the env (5s), the default (20)", *port, *idle, *max)
	}
	t.Setenv("FACEFLEET_MAX_INSTANCES", "many")
	if err := applyEnv(fs, binds); err == nil {
		t.Fatal("a malformed env value was accepted")
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
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("inputFile", "amy1.png")
	fw.Write(img)
	mw.Close()
	res, err := http.Post(url+"/", mw.FormDataContentType(), &body)
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
