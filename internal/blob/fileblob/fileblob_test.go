package fileblob_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/blobtest"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
)

func newStore(t *testing.T, dir string) *fileblob.Store {
	t.Helper()
	s, err := fileblob.New(dir)
	if err != nil {
		t.Fatalf("fileblob.New(%q): %v", dir, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store {
		return newStore(t, t.TempDir())
	}})
}

func TestConformanceLog(t *testing.T) {
	blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store {
		s, err := fileblob.New(t.TempDir(), fileblob.Options{Log: true, CheckpointEvery: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}})
}

func TestConformanceWriteBehind(t *testing.T) {
	for name, o := range map[string]fileblob.Options{
		"log":    {Log: true, WriteBehind: true, CheckpointEvery: 5 * time.Millisecond},
		"nosync": {NoSync: true, WriteBehind: true},
	} {
		t.Run(name, func(t *testing.T) {
			blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store {
				s, err := fileblob.New(t.TempDir(), o)
				if err != nil {
					t.Fatal(err)
				}
				// Before the folder's removal: the writers stop once all is written.
				t.Cleanup(func() { _ = s.Close() })
				return s
			}})
		})
	}
}

func TestConformanceNoSync(t *testing.T) {
	blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store {
		s, err := fileblob.New(t.TempDir(), fileblob.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}})
}

func TestLayoutAndPersistence(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, filepath.Join(dir, "data"))
	ctx := context.Background()
	if _, err := s.Put(ctx, "uploads/2026/x.jpg", []byte("jpeg"), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	// Keys with slashes become sub-folders of the data folder.
	p := filepath.Join(dir, "data", "uploads.d", "2026.d", "x.jpg.obj")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("object file not where expected: %v", err)
	}
	if !strings.HasSuffix(string(raw), "\njpeg") || !strings.Contains(string(raw), `"contentType":"image/jpeg"`) {
		t.Fatalf("object file = %q", raw)
	}
	// A second store on the same folder (a restart) sees the object.
	again := newStore(t, filepath.Join(dir, "data"))
	data, a, err := again.Get(ctx, "uploads/2026/x.jpg")
	if err != nil || string(data) != "jpeg" || a.ContentType != "image/jpeg" {
		t.Fatalf("after reopening: %q %+v %v", data, a, err)
	}
	// Deleting the last object prunes its now-empty folders.
	if err := s.Delete(ctx, "uploads/2026/x.jpg"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "uploads.d")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty folders left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("data folder itself was pruned: %v", err)
	}
}

func TestIgnoresTempAndForeignFiles(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", []byte("v"), ""); err != nil {
		t.Fatal(err)
	}
	// A crash mid-Put leaves a temp file; stray files are not objects either.
	for _, name := range []string{".tmp-123", "README", "other.d.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "foreign"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "foreign", "z.obj"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := s.List(ctx, "")
	if err != nil || len(l) != 1 || l[0].Key != "k" {
		t.Fatalf("List = %+v, %v; want only k", l, err)
	}
}

// Two stores on one folder stand for two processes sharing it (each has its own
// group commit and fresh-folder bookkeeping, so nothing in memory orders them):
// of writers racing PutIfAbsent on one key through both, exactly one wins,
// whichever store it used, and no temp file is left behind.
func TestPutIfAbsentAcrossStores(t *testing.T) {
	dir := t.TempDir()
	stores := []*fileblob.Store{newStore(t, dir), newStore(t, dir)}
	ctx := context.Background()
	const writers = 8
	for round := range 5 {
		key := fmt.Sprintf("gallery/journal/%d", round)
		errs, etags := make([]error, writers), make([]string, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				etags[i], errs[i] = stores[i%2].PutIfAbsent(ctx, key, fmt.Appendf(nil, "entry by writer %d", i), "text/plain")
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both won", round, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, blob.ErrExists):
				t.Fatalf("round %d: writer %d: %v, want ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer won", round)
		}
		// Both stores, and a third opened afresh, read the winner's entry.
		for i, s := range append(stores, newStore(t, dir)) {
			data, a, err := s.Get(ctx, key)
			if err != nil || string(data) != fmt.Sprint("entry by writer ", winner) || a.ETag != etags[winner] {
				t.Fatalf("round %d: store %d reads %q %+v %v, want writer %d's entry", round, i, data, a, err, winner)
			}
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			return fmt.Errorf("temp file left behind: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptObject(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := context.Background()
	for name, content := range map[string]string{
		"noheader.obj":  "just bytes",
		"badjson.obj":   "{not json\nrest",
		"truncated.obj": `{"v":1,"contentType":"x","etag":"\"e\"","size":99,"modified":"2026-01-01T00:00:00Z"}` + "\nshort",
		"negative.obj":  `{"v":1,"size":-5}` + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		key := strings.TrimSuffix(name, ".obj")
		if _, _, err := s.Get(ctx, key); !errors.Is(err, fileblob.ErrCorrupt) {
			t.Errorf("Get(%q) = %v, want ErrCorrupt", key, err)
		}
	}
}

func TestSegmentTooLong(t *testing.T) {
	s := newStore(t, t.TempDir())
	_, err := s.Put(context.Background(), strings.Repeat("s", 251), []byte("x"), "")
	if !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("Put with a 251-byte segment = %v, want ErrInvalidKey", err)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := fileblob.New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fileblob.New(f); err == nil {
		t.Fatal("New on a regular file succeeded")
	}
	if _, err := fileblob.New(t.TempDir(), fileblob.Options{}, fileblob.Options{}); err == nil {
		t.Fatal("New with two Options succeeded")
	}
}

func BenchmarkPutGet64K(b *testing.B) {
	for _, o := range []fileblob.Options{{}, {NoSync: true}} {
		b.Run(fmt.Sprintf("NoSync=%v", o.NoSync), func(b *testing.B) { benchPutGet(b, o) })
	}
}

func benchPutGet(b *testing.B, o fileblob.Options) {
	s, err := fileblob.New(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := make([]byte, 64<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Put(ctx, "bench/obj", data, "application/octet-stream"); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Get(ctx, "bench/obj"); err != nil {
			b.Fatal(err)
		}
	}
}

// benchStore opens a store in a fresh folder under build/ (the system temp
// folder may be tmpfs, where fsync is free), removed and closed at the end.
func benchStore(b *testing.B, o fileblob.Options) *fileblob.Store {
	b.Helper()
	parent := filepath.Join("..", "..", "..", "build")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp(parent, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	s, err := fileblob.New(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkPut writes small results (the worker's name object and JSON record)
// into fresh folders, one writer at a time and 16 at once, on the real disk
// under build/ (the system temp folder may be tmpfs, where fsync is free). The
// ifabsent modes write the same keys with PutIfAbsent (link instead of rename).
func BenchmarkPut(b *testing.B) {
	for _, mode := range []struct {
		name     string
		opts     fileblob.Options
		ifAbsent bool
	}{{"sync", fileblob.Options{}, false}, {"log", fileblob.Options{Log: true}, false}, {"nosync", fileblob.Options{NoSync: true}, false},
		{"sync-ifabsent", fileblob.Options{}, true}, {"log-ifabsent", fileblob.Options{Log: true}, true}} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, writers), func(b *testing.B) {
				s := benchStore(b, mode.opts)
				data := []byte(strings.Repeat("x", 600))
				var n atomic.Int64
				b.SetParallelism(writers)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						put := s.Put
						if mode.ifAbsent {
							put = s.PutIfAbsent
						}
						if _, err := put(context.Background(), fmt.Sprintf("results/s%d/r%d.json", i, i), data, "application/json"); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkResultPair is one request's durable results as the app tier writes
// them (blob.PutAll), one request at a time: the course's <stem> object and
// the JSON record results/<stem>/<id>.json (a fresh folder).
func BenchmarkResultPair(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts fileblob.Options
	}{{"sync", fileblob.Options{}}, {"log", fileblob.Options{Log: true}}, {"log+write-behind", fileblob.Options{Log: true, WriteBehind: true}},
		{"nosync", fileblob.Options{NoSync: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			s := benchStore(b, mode.opts)
			rec := []byte(strings.Repeat("x", 900))
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				stem := fmt.Sprintf("photo%d", i)
				durable, err := blob.PutAll(ctx, s, blob.Object{Key: fmt.Sprintf("results/%s/%d.json", stem, i), Data: rec, ContentType: "application/json"},
					blob.Object{Key: stem, Data: []byte("amy"), ContentType: "text/plain"})
				if err == nil {
					err = durable()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
