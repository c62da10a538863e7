package fileblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

// pauseWriters keeps the background writers from starting, so objects stay
// held until resumeWriters.
func pauseWriters(b *behind) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.running {
		b.running[i] = true
	}
}

func resumeWriters(b *behind) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.running {
		b.running[i] = true
		go b.write(i)
	}
}

func newBehindStore(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	o.WriteBehind = true
	s, err := New(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.log != nil {
		t.Cleanup(func() { _ = s.log.lock.Close() })
	}
	return s
}

// While held, an object is this store's to Get, Head, List and Delete, and
// no file exists; once the writers run, the files hold exactly what is left.
func TestWriteBehindHeldObjects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newBehindStore(t, dir, Options{NoSync: true})
	pauseWriters(s.wb)
	buf := []byte("v1")
	if _, err := s.Put(ctx, "a/b", buf, "text/plain"); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // the caller's buffer is its own again
	if _, err := s.Put(ctx, "a/c", []byte("c"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "gone", []byte("g"), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	p, _ := s.path("a/b")
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file of a held object: %v", err)
	}
	if got, a, err := s.Get(ctx, "a/b"); err != nil || string(got) != "v1" || a.ContentType != "text/plain" || a.ETag != blob.ETagOf([]byte("v1")) {
		t.Fatalf("held Get = %q %+v %v", got, a, err)
	}
	if _, _, err := s.Get(ctx, "gone"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("deleted held object: %v", err)
	}
	if _, err := s.PutIfAbsent(ctx, "a/c", []byte("other"), ""); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("PutIfAbsent over a held object: %v", err)
	}
	ls, err := s.List(ctx, "a/")
	if err != nil || len(ls) != 2 || ls[0].Key != "a/b" || ls[1].Key != "a/c" {
		t.Fatalf("List of held objects = %+v, %v", ls, err)
	}
	resumeWriters(s.wb)
	if err := s.wb.flush(0); err != nil {
		t.Fatal(err)
	}
	other, err := New(dir, Options{NoSync: true}) // sees files only
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a/b": "v1", "a/c": "c"} {
		if got, _, err := other.Get(ctx, k); err != nil || string(got) != want {
			t.Errorf("written %q = %q, %v", k, got, err)
		}
	}
	if _, _, err := other.Get(ctx, "gone"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a deleted held object was written: %v", err)
	}
	if n := len(s.wb.objs); n != 0 || s.wb.bytes != 0 {
		t.Errorf("%d objects, %d bytes still held after the flush", n, s.wb.bytes)
	}
}

// With the log, a held object is durable through its record: a crash before
// any writer ran loses nothing acknowledged, and the next open writes it.
func TestWriteBehindWithLogSurvivesACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newBehindStore(t, dir, Options{Log: true, CheckpointEvery: time.Hour})
	pauseWriters(s.wb)
	for k, v := range map[string]string{"x": "1", "results/x/1.json": "{}", "y": "2"} {
		if _, err := s.Put(ctx, k, []byte(v), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	crash(s)
	s2 := newLogged(t, dir, time.Hour)
	if s2.Replayed() == 0 {
		t.Fatal("nothing replayed")
	}
	for k, v := range map[string]string{"x": "1", "results/x/1.json": "{}"} {
		if got, _, err := s2.Get(ctx, k); err != nil || string(got) != v {
			t.Errorf("%q after the crash = %q, %v", k, got, err)
		}
	}
	if _, _, err := s2.Get(ctx, "y"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("deleted y: %v", err)
	}
}

// A checkpoint waits for the held objects whose records it is about to
// delete; Close writes everything held and leaves no segment.
func TestWriteBehindCheckpointAndClose(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newBehindStore(t, dir, Options{Log: true, CheckpointEvery: 5 * time.Millisecond})
	pauseWriters(s.wb)
	if _, err := s.Put(ctx, "k", []byte("v"), ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // checkpoints tried; the record must stay
	segs := segFiles(t, dir)
	var size int64
	for _, p := range segs {
		if st, err := os.Stat(p); err == nil {
			size += st.Size()
		}
	}
	if size == 0 {
		t.Fatalf("the record of an unwritten held object was checkpointed away: %v", segs)
	}
	resumeWriters(s.wb)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := segFiles(t, dir); len(segs) != 0 {
		t.Errorf("segments after Close: %v", segs)
	}
	other, _ := New(dir)
	if got, _, err := other.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Errorf("after Close: %q, %v", got, err)
	}
}

// Past the byte limit a Put writes its file itself, and a held older version
// of its key is never written over it.
func TestWriteBehindLimitTakesTheDirectPath(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newBehindStore(t, dir, Options{NoSync: true, WriteBehindBytes: 10})
	pauseWriters(s.wb)
	if _, err := s.Put(ctx, "k", []byte("old"), ""); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("n"), 20)
	if _, err := s.Put(ctx, "k", big, ""); err != nil {
		t.Fatal(err)
	}
	resumeWriters(s.wb)
	if err := s.wb.flush(0); err != nil {
		t.Fatal(err)
	}
	other, _ := New(dir, Options{NoSync: true})
	if got, _, err := other.Get(ctx, "k"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("k = %q, %v; want the newer, direct write", got, err)
	}
	if _, err := New(t.TempDir(), Options{WriteBehind: true}); err == nil {
		t.Error("WriteBehind with syncing and no log accepted")
	}
}

// A writer that cannot write a held object keeps it (Get still serves it),
// sends the next Puts down the direct path so the error reaches a caller,
// and leaves its record in the log on Close for the next open to replay.
func TestWriteBehindWriterFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newBehindStore(t, dir, Options{Log: true, CheckpointEvery: time.Hour})
	// A file where the key's folder must go: every write under a/ fails
	// (permissions would not stop root).
	if err := os.WriteFile(dir+"/a.d", []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "a/b", []byte("held"), ""); err != nil {
		t.Fatalf("held Put: %v", err)
	}
	if err := s.wb.flush(0); err == nil {
		t.Fatal("flush after a failed write reported no error")
	}
	if got, _, err := s.Get(ctx, "a/b"); err != nil || string(got) != "held" {
		t.Fatalf("the held object after its write failed: %q, %v", got, err)
	}
	if _, err := s.Put(ctx, "a/c", []byte("x"), ""); err == nil {
		t.Fatal("a Put after a writer failure did not report the failure")
	}
	if _, err := s.Put(ctx, "elsewhere", []byte("ok"), ""); err != nil {
		t.Fatalf("a Put that can be written: %v", err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close with an unwritable held object reported no error")
	}
	if len(segFiles(t, dir)) == 0 {
		t.Fatal("Close removed the log although a held object was never written")
	}
	// Once the obstacle is gone, the next open replays it.
	if err := os.Remove(dir + "/a.d"); err != nil {
		t.Fatal(err)
	}
	s2 := newLogged(t, dir, time.Hour)
	if got, _, err := s2.Get(ctx, "a/b"); err != nil || string(got) != "held" {
		t.Fatalf("after replay: %q, %v", got, err)
	}
}

// With the log, a direct write (an object over 1 MiB) of a key whose older
// version is still held waits until that version's file is written: its record
// may be checkpointed away meanwhile, and then the file is its only copy.
func TestWriteBehindDirectWriteWaitsForTheHeldVersion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newBehindStore(t, dir, Options{Log: true, CheckpointEvery: time.Hour})
	pauseWriters(s.wb)
	if _, err := s.Put(ctx, "snap", []byte("small"), ""); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("B"), maxLogged+1)
	done := make(chan error, 1)
	go func() { _, err := s.Put(ctx, "snap", big, ""); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("the direct write finished (%v) while the held version was unwritten", err)
	case <-time.After(50 * time.Millisecond):
	}
	resumeWriters(s.wb)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	crash(s)
	s2 := newLogged(t, dir, time.Hour)
	if got, _, err := s2.Get(ctx, "snap"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("after a crash: %d bytes, %v; want the direct write", len(got), err)
	}
}

// Puts and Deletes of the same keys while the writers run: once everything is
// written, each key's file is what its last operation left (no deleted object
// written back, no older version over a newer one), in both write-behind modes.
func TestWriteBehindRacesEndInTheLastWrite(t *testing.T) {
	for name, o := range map[string]Options{"log": {Log: true, CheckpointEvery: 3 * time.Millisecond}, "nosync": {NoSync: true}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			o.WriteBehindBytes = 4096 // some Puts take the direct path
			s := newBehindStore(t, dir, o)
			s.wb.beforePlace = func() { time.Sleep(200 * time.Microsecond) } // renames meet Deletes
			s.wb.afterPlace = func() { time.Sleep(100 * time.Microsecond) }  // and remembers meet them too
			const writers, keys, ops = 6, 4, 150
			last := make([][keys]string, writers) // "" deleted
			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for i := range ops {
						k := r.IntN(keys)
						key := fmt.Sprintf("g%d/k%d", g, k)
						if r.IntN(4) == 0 {
							if err := s.Delete(ctx, key); err != nil {
								t.Error(err)
							}
							last[g][k] = ""
							continue
						}
						v := fmt.Sprintf("%d-%d-%s", g, i, strings.Repeat("x", r.IntN(3000)))
						if _, err := s.Put(ctx, key, []byte(v), ""); err != nil {
							t.Error(err)
						}
						last[g][k] = v
					}
					// Last, each key written and deleted at once: the Delete
					// meets its writer's rename.
					for k := range keys {
						key := fmt.Sprintf("g%d/k%d", g, k)
						if _, err := s.Put(ctx, key, []byte("short-lived"), ""); err != nil {
							t.Error(err)
						}
						time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
						if err := s.Delete(ctx, key); err != nil {
							t.Error(err)
						}
						last[g][k] = ""
					}
				})
			}
			wg.Wait()
			// This store agrees first (held objects, copies kept in memory).
			for g := range writers {
				for k := range keys {
					key := fmt.Sprintf("g%d/k%d", g, k)
					if got, _, err := s.Get(ctx, key); !errors.Is(err, blob.ErrNotFound) || len(got) > 0 {
						t.Errorf("%s was deleted last; this store still serves %.12q (%v)", key, got, err)
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			files, err := New(dir, Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			for g := range writers {
				for k := range keys {
					key := fmt.Sprintf("g%d/k%d", g, k)
					got, _, err := files.Get(ctx, key)
					switch want := last[g][k]; {
					case want == "" && !errors.Is(err, blob.ErrNotFound):
						t.Errorf("%s was deleted last but holds %.12q (%v)", key, got, err)
					case want != "" && (err != nil || string(got) != want):
						t.Errorf("%s = %.12q, %v; want its last write %.12q", key, got, err, want)
					}
				}
			}
		})
	}
}

// A written object stays readable from memory (recent) until a change of its
// key or the byte bound drops it: a Get then reads no file. The file is
// removed behind the store's back here only to tell the two apart.
func TestWriteBehindServesRecentWritesFromMemory(t *testing.T) {
	for name, o := range map[string]Options{"log": {Log: true}, "nosync": {NoSync: true}} {
		t.Run(name, func(t *testing.T) {
			o.WriteBehindBytes = 4 << 10 // recent: 1 KiB
			testRecentWrites(t, newBehindStore(t, t.TempDir(), o))
		})
	}
}

func testRecentWrites(t *testing.T, s *Store) {
	ctx := context.Background()
	put := func(key, v string) {
		t.Helper()
		if _, err := s.Put(ctx, key, []byte(v), "text/plain"); err != nil {
			t.Fatal(err)
		}
		if err := s.wb.flush(0); err != nil {
			t.Fatal(err)
		}
	}
	unlink := func(key string) {
		t.Helper()
		p, err := s.path(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatalf("%s was not written: %v", key, err)
		}
	}
	put("in/a", "first")
	unlink("in/a")
	if got, attrs, err := s.Get(ctx, "in/a"); err != nil || string(got) != "first" || attrs.Size != 5 {
		t.Fatalf("Get of a written object = %q, %+v, %v; want it from memory", got, attrs, err)
	}
	// A new version replaces the copy; a Delete drops it.
	put("in/a", "second")
	if got, _, err := s.Get(ctx, "in/a"); err != nil || string(got) != "second" {
		t.Fatalf("Get after a second Put = %q, %v", got, err)
	}
	if err := s.Delete(ctx, "in/a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, "in/a"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want not found", err)
	}
	// Past the bound, the oldest go first.
	for i := range 6 {
		put(fmt.Sprintf("in/%d", i), strings.Repeat("x", 300))
	}
	for i := range 6 {
		unlink(fmt.Sprintf("in/%d", i))
	}
	for i := range 6 {
		_, _, err := s.Get(ctx, fmt.Sprintf("in/%d", i))
		if old := i < 3; old != errors.Is(err, blob.ErrNotFound) {
			t.Errorf("object %d of 6 (300 B each, 1 KiB kept): Get error %v", i, err)
		}
	}
	// A direct write (over the held-bytes bound) drops the copy too.
	put("in/b", "small")
	big := strings.Repeat("y", 5<<10)
	if _, err := s.Put(ctx, "in/b", []byte(big), ""); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Get(ctx, "in/b"); err != nil || string(got) != big {
		t.Fatalf("Get after a direct write = %.10q (%d B), %v", got, len(got), err)
	}
}

// The race the direct-write epoch closes: a Put held just after a direct
// write of its key began is renamed into place before the direct write's
// file, and its writer would remember it after the direct write ended.
func TestWriteBehindWriterDoesNotRememberOverADirectWrite(t *testing.T) {
	for name, o := range map[string]Options{"log": {Log: true}, "nosync": {NoSync: true}} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			o.WriteBehindBytes = 1 << 10
			s := newBehindStore(t, t.TempDir(), o)
			placed, directDone := make(chan struct{}), make(chan struct{})
			var once sync.Once
			s.wb.afterBeginDirect = func() {
				once.Do(func() {
					if _, err := s.Put(ctx, "k", []byte("held"), ""); err != nil { // small: behind
						t.Error(err)
					}
					<-placed
				})
			}
			s.wb.afterPlace = func() {
				close(placed)
				<-directDone
			}
			big := strings.Repeat("d", 2<<10) // over the bound: direct
			if _, err := s.Put(ctx, "k", []byte(big), ""); err != nil {
				t.Fatal(err)
			}
			close(directDone)
			if err := s.wb.flush(0); err != nil {
				t.Fatal(err)
			}
			s.wb.mu.Lock()
			s.wb.afterPlace, s.wb.afterBeginDirect = nil, nil
			s.wb.mu.Unlock()
			got, _, err := s.Get(ctx, "k")
			if err != nil || string(got) != big {
				t.Fatalf("Get = %.10q (%d B), %v; want the direct write, which its file holds", got, len(got), err)
			}
		})
	}
}
