package loadgen_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/loadgen"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// server answers "<stem>:<file content>" like a web tier that recognises the
// content; content "fail" gets a 500.
func server(t *testing.T, seen *sync.Map) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, fh, err := r.FormFile("inputFile")
		if err != nil {
			http.Error(w, "no inputFile", 400)
			return
		}
		defer f.Close()
		var b [64]byte
		n, _ := f.Read(b[:])
		if _, dup := seen.LoadOrStore(fh.Filename, true); dup {
			t.Errorf("file name %s uploaded twice", fh.Filename)
		}
		if string(b[:n]) == "fail" {
			http.Error(w, "boom", 500)
			return
		}
		fmt.Fprintf(w, "%s:%s", strings.TrimSuffix(fh.Filename, filepath.Ext(fh.Filename)), b[:n])
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunFolderLabels(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "amy", "amy1.png"), "amy")
	write(t, filepath.Join(dir, "penny", "penny1.png"), "penny")
	write(t, filepath.Join(dir, "penny", "notes.txt"), "ignored")
	imgs, err := loadgen.LoadImages(dir, "")
	if err != nil || len(imgs) != 2 {
		t.Fatalf("images %+v, %v", imgs, err)
	}
	var seen sync.Map
	s, err := loadgen.Run(context.Background(), loadgen.Options{URL: server(t, &seen).URL, Images: imgs, N: 7, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !s.OK() || s.Total != 7 || s.Correct != 7 || s.P50MS <= 0 || s.P99MS < s.P50MS {
		t.Fatalf("summary %+v", s)
	}
}

func TestRunCountsWrongAndFailed(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "test_00.jpg"), "amy")
	write(t, filepath.Join(dir, "test_01.jpg"), "howard") // CSV says leonard
	write(t, filepath.Join(dir, "test_02.jpg"), "fail")
	write(t, filepath.Join(dir, "labels.csv"), "Image,Results\ntest_00,amy\ntest_01,leonard\ntest_02,penny\n")
	imgs, err := loadgen.LoadImages(dir, filepath.Join(dir, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var seen sync.Map
	s, err := loadgen.Run(context.Background(), loadgen.Options{URL: server(t, &seen).URL, Images: imgs, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if s.OK() || s.Correct != 1 || s.Wrong != 1 || s.Failed != 1 || len(s.Failures) != 2 {
		t.Fatalf("summary %+v", s)
	}
	var text strings.Builder
	s.WriteText(&text)
	if !strings.Contains(text.String(), `got "test_01:howard", want "test_01:leonard"`) || !strings.Contains(text.String(), "HTTP 500") {
		t.Fatalf("text:\n%s", text.String())
	}
}

func TestLoadImagesErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadgen.LoadImages(dir, ""); err == nil {
		t.Fatal("empty folder accepted")
	}
	write(t, filepath.Join(dir, "a.png"), "x")
	write(t, filepath.Join(dir, "bad.csv"), "nope\n")
	if _, err := loadgen.LoadImages(dir, filepath.Join(dir, "bad.csv")); err == nil {
		t.Fatal("CSV without header accepted")
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := loadgen.Percentile(v, 50); p != 5 {
		t.Errorf("p50 = %v", p)
	}
	if p := loadgen.Percentile(v, 99); p != 10 {
		t.Errorf("p99 = %v", p)
	}
	if p := loadgen.Percentile(nil, 50); p != 0 {
		t.Errorf("empty = %v", p)
	}
}

// A run that made its own HTTP client leaves no connection open behind it.
func TestRunClosesItsConnections(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "amy", "amy1.png"), "amy")
	imgs, err := loadgen.LoadImages(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		open = map[net.Conn]bool{}
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "amy1:amy")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if s == http.StateClosed || s == http.StateHijacked {
			delete(open, c)
		} else {
			open[c] = true
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s, err := loadgen.Run(context.Background(), loadgen.Options{URL: srv.URL, Images: imgs, N: 1, Concurrency: 2})
	if err != nil || !s.OK() {
		t.Fatalf("Run = %+v, %v", s, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(open)
		mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connection(s) still open after Run returned", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
