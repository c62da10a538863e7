package fileblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

// crash abandons a store as a dead process would: its log lock is released,
// nothing is checkpointed, nothing more is synced.
func crash(s *Store) {
	s.log.mu.Lock()
	s.log.fail(errors.New("crashed")) // stop its checkpoints
	s.log.mu.Unlock()
	_ = s.log.lock.Close()
}

func newLogged(t *testing.T, dir string, every time.Duration) *Store {
	t.Helper()
	s, err := New(dir, Options{Log: true, CheckpointEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.log.lock.Close() })
	return s
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, walDirName, segPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A machine crash loses what was not synced: every object file placed since
// the last checkpoint may be missing, empty or older. The log alone must bring
// back exactly what was acknowledged, keep a big object written durably by the
// direct path over an older record of its key, and not resurrect a deleted key.
func TestLogReplaysAcknowledgedWritesAfterACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newLogged(t, dir, time.Hour) // no checkpoint: everything stays in the log
	put := func(key, v string) {
		t.Helper()
		if _, err := s.Put(ctx, key, []byte(v), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	put("results/amy/1.json", `{"n":1}`)
	put("amy", "old")
	put("amy", "Amy")
	put("gone", "x")
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctx, "journal/00001", []byte("e1"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctx, "journal/00001", []byte("e2"), ""); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("second PutIfAbsent: %v, want ErrExists", err)
	}
	put("snap", "small first")
	big := bytes.Repeat([]byte("B"), maxLogged+1)
	if _, err := s.Put(ctx, "snap", big, ""); err != nil {
		t.Fatal(err)
	}
	crash(s)

	// What the crash may leave: files gone, empty, or an older version.
	mustPath := func(key string) string {
		p, err := s.path(key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.RemoveAll(filepath.Join(dir, "results.d")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mustPath("amy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(mustPath("journal/00001")); err != nil {
		t.Fatal(err)
	}
	// A record torn by the crash (never acknowledged) ends the segment.
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v, want 1", segs)
	}
	torn := encode(opPut, "torn", []byte(`{"v":1}`+"\n"), []byte("never acknowledged"), time.Time{})
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(torn[:len(torn)-3]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s2 := newLogged(t, dir, time.Hour)
	if s2.Replayed() == 0 {
		t.Fatal("nothing replayed")
	}
	for key, want := range map[string]string{"results/amy/1.json": `{"n":1}`, "amy": "Amy", "journal/00001": "e1", "snap": string(big)} {
		got, a, err := s2.Get(ctx, key)
		if err != nil || string(got) != want {
			t.Errorf("after replay %q = %.20q, %v; want %.20q", key, got, err, want)
		}
		if err == nil && a.ETag != blob.ETagOf([]byte(want)) {
			t.Errorf("after replay %q has ETag %s", key, a.ETag)
		}
	}
	for _, key := range []string{"gone", "torn"} {
		if _, _, err := s2.Get(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("after replay %q: %v, want not found", key, err)
		}
	}
	// Replayed segments are gone; one fresh, empty segment is open.
	if segs := segFiles(t, dir); len(segs) != 1 {
		t.Errorf("segments after replay: %v", segs)
	} else if st, err := os.Stat(segs[0]); err != nil || st.Size() != 0 {
		t.Errorf("the new segment: %v, %v", st, err)
	}
	// The log folder is not a key.
	all, err := s2.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if strings.Contains(a.Key, walDirName) || strings.Contains(a.Key, "LOCK") {
			t.Errorf("List shows the log: %q", a.Key)
		}
	}
}

// A replay never overwrites an object written after its record by someone
// else (another store without the log on the same folder).
func TestLogReplayKeepsNewerWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newLogged(t, dir, time.Hour)
	if _, err := s.Put(ctx, "k", []byte("logged"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "d", []byte("logged"), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	crash(s)
	time.Sleep(2 * time.Millisecond) // a later modification time on any clock
	other, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "d"} {
		if _, err := other.Put(ctx, k, []byte("newer"), ""); err != nil {
			t.Fatal(err)
		}
	}
	s2 := newLogged(t, dir, time.Hour)
	for _, k := range []string{"k", "d"} {
		if got, _, err := s2.Get(ctx, k); err != nil || string(got) != "newer" {
			t.Errorf("%q after replay = %q, %v; want the newer write kept", k, got, err)
		}
	}
}

// Checkpoints empty the log while writes go on, and stop when they stop.
func TestLogCheckpointsAndGoesQuiet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newLogged(t, dir, 10*time.Millisecond)
	for i := range 50 {
		if _, err := s.Put(ctx, "k/"+string(rune('a'+i%26)), bytes.Repeat([]byte{'x'}, 100+i), ""); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(15 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		segs := segFiles(t, dir)
		var size int64 = -1
		if len(segs) == 1 {
			if st, err := os.Stat(segs[0]); err == nil {
				size = st.Size()
			}
		}
		s.log.mu.Lock()
		quiet := !s.log.scheduled
		s.log.mu.Unlock()
		if size == 0 && quiet {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log not checkpointed: segments %v, last size %d, checkpoint scheduled %v", segs, size, !quiet)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.log.segN < 3 {
		t.Errorf("%d segments used; want checkpoints during the writes", s.log.segN)
	}
}

// One store holds a folder's log; a second is refused with a clear error, and
// Log with NoSync is refused.
func TestLogIsExclusive(t *testing.T) {
	dir := t.TempDir()
	newLogged(t, dir, time.Hour)
	if _, err := New(dir, Options{Log: true}); err == nil || !strings.Contains(err.Error(), "held by another store") {
		t.Fatalf("second logged store: %v", err)
	}
	if _, err := New(t.TempDir(), Options{Log: true, NoSync: true}); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Fatalf("Log with NoSync: %v", err)
	}
}

// A failed log write or sync is sticky: later Puts fail naming the log
// instead of being acknowledged without it.
func TestLogFailureIsSticky(t *testing.T) {
	ctx := context.Background()
	s := newLogged(t, t.TempDir(), time.Hour)
	s.log.mu.Lock()
	_ = s.log.seg.Close() // the next append fails
	s.log.mu.Unlock()
	for range 2 {
		if _, err := s.Put(ctx, "k", []byte("v"), ""); err == nil || !strings.Contains(err.Error(), "write-ahead log") {
			t.Fatalf("Put with a broken log: %v", err)
		}
	}
}

func TestDecodeStopsAtGarbage(t *testing.T) {
	a := encode(opPut, "a", []byte("{}\n"), []byte("1"), time.Time{})
	b := encode(opDelete, "b", nil, nil, time.Unix(5, 0))
	c := encode(opDirect, "c", nil, nil, time.Time{})
	all := append(append(append([]byte{}, a...), b...), c...)
	if got := decode(all); len(got) != 3 || got[0].key != "a" || string(got[0].data) != "1" || got[1].op != opDelete || !got[1].at.Equal(time.Unix(5, 0)) || got[2].op != opDirect {
		t.Fatalf("decode = %+v", got)
	}
	bad := append([]byte{}, all...)
	bad[len(a)+recHeader+1] ^= 0xff // b's payload: CRC mismatch
	if got := decode(bad); len(got) != 1 {
		t.Fatalf("decode past a bad CRC: %d records", len(got))
	}
	for cut := range len(a) {
		if got := decode(a[:cut]); len(got) != 0 {
			t.Fatalf("decode of %d of %d bytes gave %d records", cut, len(a), len(got))
		}
	}
}

// Close leaves nothing to replay, releases the folder for the next store and
// refuses later writes.
func TestLogCloseCheckpointsAndReleases(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newLogged(t, dir, time.Hour)
	if _, err := s.Put(ctx, "a/b", []byte("v"), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if segs := segFiles(t, dir); len(segs) != 0 {
		t.Errorf("segments after Close: %v", segs)
	}
	if _, err := s.Put(ctx, "a/c", []byte("v"), ""); !errors.Is(err, errClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	s2 := newLogged(t, dir, time.Hour)
	if got, _, err := s2.Get(ctx, "a/b"); err != nil || string(got) != "v" || s2.Replayed() != 0 {
		t.Errorf("reopened: %q, %v, %d replayed", got, err, s2.Replayed())
	}
}

// A batch (a request's result and its record) costs one sync of the log;
// without the batch two Puts started together often need one each (the
// second appends while the first's sync runs).
func TestLogBatchSharesOneSync(t *testing.T) {
	ctx := context.Background()
	s := newLogged(t, t.TempDir(), time.Hour)
	const pairs = 40
	for i := range pairs {
		durable, err := blob.PutAll(ctx, s, blob.Object{Key: fmt.Sprintf("results/p%d/%d.json", i, i), Data: bytes.Repeat([]byte{'r'}, 900)},
			blob.Object{Key: fmt.Sprintf("p%d", i), Data: []byte("amy"), ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		// Readable before durable: answered first, the request deleted after.
		if got, _, err := s.Get(ctx, fmt.Sprintf("p%d", i)); err != nil || string(got) != "amy" {
			t.Fatalf("p%d before durable: %q, %v", i, got, err)
		}
		if err := durable(); err != nil {
			t.Fatal(err)
		}
		s.log.smu.Lock()
		d, pos := s.log.durable, s.log.position()
		s.log.smu.Unlock()
		if d < pos {
			t.Fatalf("durable returned at log position %d of %d", d, pos)
		}
	}
	s.log.smu.Lock()
	syncs := s.log.syncs
	s.log.smu.Unlock()
	if syncs != pairs {
		t.Errorf("%d syncs for %d batches of two; want one each", syncs, pairs)
	}
	for i := range pairs {
		if got, a, err := s.Get(ctx, fmt.Sprintf("p%d", i)); err != nil || string(got) != "amy" || a.ContentType != "text/plain" {
			t.Fatalf("p%d = %q %+v, %v", i, got, a, err)
		}
	}
	// A batch is refused like a Put for a bad key, after the objects before it.
	if _, err := s.PutBatch(ctx, []blob.Object{{Key: "ok", Data: []byte("1")}, {Key: "", Data: []byte("2")}}); !errors.Is(err, blob.ErrInvalidKey) {
		t.Fatalf("batch with an empty key: %v", err)
	}
}
