package gallery_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
)

func desc(rng *rand.Rand) []float32 {
	d := make([]float32, gallery.DescriptorLen)
	for i := range d {
		d[i] = float32(rng.NormFloat64() * 0.05)
	}
	return d
}

func one(t *testing.T, name string, d []float32) *gallery.Gallery {
	t.Helper()
	g := gallery.New()
	if _, err := g.AddFace(name, d, nil); err != nil {
		t.Fatal(err)
	}
	return g
}

func open(t *testing.T, b blob.Store, opt gallery.StoreOptions) *gallery.Store {
	t.Helper()
	s, err := gallery.OpenStore(context.Background(), b, "", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func same(t *testing.T, a, b *gallery.Gallery) {
	t.Helper()
	x, _ := a.Marshal()
	y, _ := b.Marshal()
	if string(x) != string(y) {
		t.Fatalf("galleries differ: %d subjects/%d faces vs %d/%d", a.Len(), a.FaceTotal(), b.Len(), b.FaceTotal())
	}
}

// Two web tiers enrolling at once on one store lose nothing and agree.
func TestStoreConcurrentWritersLoseNothing(t *testing.T) {
	for _, backend := range []string{"memblob", "fileblob"} {
		t.Run(backend, func(t *testing.T) {
			var b1, b2 blob.Store
			if backend == "memblob" {
				m := memblob.New()
				b1, b2 = m, m
			} else { // two stores on one folder: two processes
				dir := t.TempDir()
				var err error
				if b1, err = fileblob.New(dir); err != nil {
					t.Fatal(err)
				}
				if b2, err = fileblob.New(dir); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			// Writers compact as they go but keep redundant entries for a
			// minute: a journal write must land within KeepFor/2 of its
			// listing (Apply cuts it off otherwise, so a stalled writer cannot
			// re-create a deleted position: TestStoreStalledWrite...), which a
			// KeepFor of 1 ns never allows. The deletes run below, once
			// writing is done.
			opt := gallery.StoreOptions{CompactAfter: 16, KeepFor: time.Minute}
			tiers := []*gallery.Store{open(t, b1, opt), open(t, b2, opt)}
			const per = 24
			var wg sync.WaitGroup
			for k, st := range tiers {
				for w := range 3 {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(k), uint64(w)))
						for i := range per {
							name := fmt.Sprintf("p%d-%d", w, i%5)
							if _, err := st.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, name, desc(rng))}); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
			}
			wg.Wait()
			for _, st := range tiers {
				st.Close()
				if err := st.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if n := tiers[0].Gallery().FaceTotal(); n != 2*3*per {
				t.Fatalf("%d faces enrolled, want %d", n, 2*3*per)
			}
			same(t, tiers[0].Gallery(), tiers[1].Gallery())
			compactor := open(t, b1, gallery.StoreOptions{CompactAfter: 16, KeepFor: time.Nanosecond})
			if err := compactor.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			late := open(t, b1, opt) // from snapshot + journal
			same(t, late.Gallery(), tiers[0].Gallery())
			if late.Seq() != tiers[0].Seq() || late.Seq() != 2*3*per {
				t.Fatalf("positions %d %d, want %d", late.Seq(), tiers[0].Seq(), 2*3*per)
			}
		})
	}
}

// A check is made against the newest state: a face another tier removed is
// a 404 here, not a second removal.
func TestStoreChecksAgainstOthersEdits(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	a, b := open(t, m, gallery.StoreOptions{}), open(t, m, gallery.StoreOptions{})
	rng := rand.New(rand.NewPCG(1, 1))
	if _, err := a.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "amy", desc(rng))}); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	fs, _ := b.Gallery().Faces("amy")
	if _, err := a.Apply(ctx, gallery.Edit{Op: gallery.OpRemoveFace, Subject: "amy", FaceID: fs[0].ID}); err != nil {
		t.Fatal(err)
	}
	// b has not refreshed: it still sees amy's face.
	_, err := b.Apply(ctx, gallery.Edit{Op: gallery.OpRemoveFace, Subject: "amy", FaceID: fs[0].ID})
	if !errors.Is(err, gallery.ErrNoFace) {
		t.Fatalf("stale removal: got %v, want ErrNoFace", err)
	}
	if _, err := b.Apply(ctx, gallery.Edit{Op: gallery.OpRename, Subject: "amy", To: "bea"}); !errors.Is(err, gallery.ErrNoSubject) {
		t.Fatalf("rename of a removed subject: got %v", err)
	}
	for _, key := range mustList(t, m) {
		if strings.Contains(key, "journal/00000000000000000003") {
			t.Fatal("a refused edit was journalled")
		}
	}
	a.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "cy", desc(rng))})
	a.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "dee", desc(rng))})
	out, err := b.Apply(ctx, gallery.Edit{Op: gallery.OpRename, Subject: "cy", To: "dee"})
	if err != nil || !out.Merged || out.Faces != 2 {
		t.Fatalf("merge: %+v %v", out, err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	same(t, a.Gallery(), b.Gallery())
}

func mustList(t *testing.T, b blob.Store) []string {
	t.Helper()
	objs, err := b.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// A reader that fell behind a compaction loads the snapshot and catches up;
// the journal stays bounded.
func TestStoreCompactionAndLaggingReader(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	// The writers keep young entries (a write lands within KeepFor/2 of its
	// listing); a compactor that only compacts deletes at once.
	opt := gallery.StoreOptions{CompactAfter: 5, KeepFor: time.Minute}
	w, lag := open(t, m, opt), open(t, m, opt)
	compactor := open(t, m, gallery.StoreOptions{CompactAfter: 5, KeepFor: time.Nanosecond})
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range 37 {
		if _, err := w.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, fmt.Sprintf("s%d", i%7), desc(rng))}); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if err := lag.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.Close()
	// Two compactions on demand: the second deletes everything the first
	// snapshot covers, so the lagging reader's next entry is gone.
	for range 2 {
		if err := compactor.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys := mustList(t, m)
	journal := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return !strings.Contains(k, "journal/") })
	if len(journal) != 0 {
		t.Fatalf("journal not compacted: %d entries (%v)", len(journal), keys)
	}
	if slices.Contains(keys, "gallery/journal/00000000000000000004") {
		t.Fatal("old entries kept")
	}
	if err := lag.Refresh(ctx); err != nil {
		t.Fatalf("lagging reader: %v", err)
	}
	same(t, lag.Gallery(), w.Gallery())
	if lag.Seq() != 37 {
		t.Fatalf("lagging reader at %d, want 37", lag.Seq())
	}
}

// lostReply writes a PutIfAbsent and then reports ErrExists, as an SDK retry
// meeting its own object does.
type lostReply struct {
	blob.Store
	once sync.Once
}

func (l *lostReply) PutIfAbsent(ctx context.Context, key string, data []byte, ct string) (string, error) {
	tag, err := l.Store.PutIfAbsent(ctx, key, data, ct)
	lost := false
	l.once.Do(func() { lost = err == nil })
	if lost {
		return "", fmt.Errorf("retried: %w", blob.ErrExists)
	}
	return tag, err
}

func TestStoreRecognisesItsOwnEntry(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	s := open(t, &lostReply{Store: m}, gallery.StoreOptions{})
	rng := rand.New(rand.NewPCG(3, 3))
	out, err := s.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "amy", desc(rng))})
	if err != nil || out.Seq != 1 {
		t.Fatalf("Apply: %+v %v", out, err)
	}
	if n := s.Gallery().FaceTotal(); n != 1 {
		t.Fatalf("%d faces after one enrollment whose reply was lost", n)
	}
	if keys := mustList(t, m); len(keys) != 1 {
		t.Fatalf("keys %v: the edit was written twice", keys)
	}
}

func TestStoreImportsLegacyGalleryOnce(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	rng := rand.New(rand.NewPCG(4, 4))
	old := one(t, "penny", desc(rng))
	data, _ := old.Marshal()
	if _, err := m.Put(ctx, "gallery/gallery.json", data, "application/json"); err != nil {
		t.Fatal(err)
	}
	opt := gallery.StoreOptions{LegacyKey: "gallery/gallery.json"}
	a, b := open(t, m, opt), open(t, m, opt)
	same(t, a.Gallery(), old)
	same(t, b.Gallery(), old)
	if a.Seq() != 1 || b.Seq() != 1 {
		t.Fatalf("imported twice: positions %d %d", a.Seq(), b.Seq())
	}
}

func TestStoreRefusesAGap(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	s := open(t, m, gallery.StoreOptions{})
	rng := rand.New(rand.NewPCG(5, 5))
	for range 3 {
		s.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "x", desc(rng))})
	}
	m.Delete(ctx, "gallery/journal/00000000000000000002")
	if _, err := gallery.OpenStore(ctx, m, "", gallery.StoreOptions{}); err == nil || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("a journal with a hole opened: %v", err)
	}
}

// Redundant entries younger than KeepFor stay: a writer that listed before
// the compaction cannot re-create a deleted position.
func TestStoreKeepsYoungEntries(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	w := open(t, m, gallery.StoreOptions{CompactAfter: 1000})
	rng := rand.New(rand.NewPCG(6, 6))
	for range 6 {
		w.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "x", desc(rng))})
	}
	for range 2 {
		if err := w.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if keys := mustList(t, m); !slices.Contains(keys, "gallery/journal/00000000000000000001") {
		t.Fatalf("a fresh entry was deleted: %v", keys)
	}
}

// A worker follows new entries by key between listings, and a request naming
// a newer position than it can find forces a listing.
func TestStoreFollowsByKey(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	w := open(t, m, gallery.StoreOptions{})
	r := open(t, m, gallery.StoreOptions{FullEvery: time.Hour})
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 3 {
		w.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, fmt.Sprint("p", i), desc(rng))})
	}
	if err := r.RefreshIfStale(ctx, 0, 0); err != nil || r.Seq() != 3 {
		t.Fatalf("follow: seq %d, %v", r.Seq(), err)
	}
	same(t, r.Gallery(), w.Gallery())
	if err := r.RefreshIfStale(ctx, time.Hour, 3); err != nil || r.Seq() != 3 {
		t.Fatalf("fresh: seq %d, %v", r.Seq(), err)
	}
}

// An edit that would take the gallery past MaxFaces is refused and not
// journalled (a snapshot must stay loadable).
func TestStoreRefusesToOverfill(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	s := open(t, m, gallery.StoreOptions{MaxFaces: 3})
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range 3 {
		if _, err := s.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, fmt.Sprint("p", i), desc(rng))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "p9", desc(rng))}); !errors.Is(err, gallery.ErrFull) {
		t.Fatalf("a fourth face: %v, want ErrFull", err)
	}
	// Replacing a subject by one of the same size fits.
	if _, err := s.Apply(ctx, gallery.Edit{Op: gallery.OpPut, Faces: one(t, "p0", desc(rng))}); err != nil {
		t.Fatalf("put within the limit: %v", err)
	}
	if s.Seq() != 4 || s.Gallery().FaceTotal() != 3 {
		t.Fatalf("seq %d, %d faces", s.Seq(), s.Gallery().FaceTotal())
	}
}

// stallingBlobs holds the first journal create after arm until release or its
// context ends, as a request stalled in flight: sent late, or held by the
// network, a paused VM or a stopped process. It does not model a create that
// the store still carries out after its context ended (lateBlobs does), nor
// clocks that disagree (memblob stamps objects with this process's clock).
type stallingBlobs struct {
	blob.Store
	armed   atomic.Bool
	held    chan struct{} // closed once a create is held
	release chan struct{}
}

func (s *stallingBlobs) PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if strings.Contains(key, "/journal/") && s.armed.CompareAndSwap(true, false) {
		close(s.held)
		select {
		case <-s.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return s.Store.PutIfAbsent(ctx, key, data, contentType)
}

// A writer whose journal create stalls past KeepFor, while another fills the
// position it planned on and compacts it away, must not land its edit in that
// compacted position (where no reader would ever see it): Apply cuts the
// create off at KeepFor/2 after its listing and writes on a fresh one.
func TestStoreStalledWriteCannotRecreateACompactedPosition(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	const keep = 300 * time.Millisecond
	opt := gallery.StoreOptions{CompactAfter: 2, KeepFor: keep}
	stall := &stallingBlobs{Store: m, held: make(chan struct{}), release: make(chan struct{})}
	w, b := open(t, stall, opt), open(t, m, opt)
	rng := rand.New(rand.NewPCG(9, 9))
	add := func(s *gallery.Store, name string) error {
		_, err := s.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, name, desc(rng))})
		return err
	}
	for i := range 3 {
		if err := add(b, fmt.Sprint("before", i)); err != nil {
			t.Fatal(err)
		}
	}
	stall.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- add(w, "stalled") }()
	<-stall.held
	// Meanwhile the other writer takes position 4 and more, and once those
	// are older than KeepFor compacts them away.
	for i := range 6 {
		if err := add(b, fmt.Sprint("after", i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(keep + 100*time.Millisecond)
	for range 2 {
		if err := b.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Contains(mustList(t, m), "gallery/journal/00000000000000000004") {
		t.Fatal("setup: position 4 was not compacted away")
	}
	close(stall.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fresh := open(t, m, opt)
	if fresh.Gallery().Len() != 10 {
		t.Fatalf("a fresh reader sees %d subjects, want 10: the stalled writer's edit was lost", fresh.Gallery().Len())
	}
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	same(t, w.Gallery(), fresh.Gallery())
}

// lateBlobs lets the first journal create time out at its deadline, and lands
// it at the store right after the writer has looked for it (as a request that
// arrives after its caller gave up).
type lateBlobs struct {
	blob.Store
	mu   sync.Mutex
	late map[string][]byte // held creates, by key
	once atomic.Bool
}

func (l *lateBlobs) PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if strings.Contains(key, "/journal/") && l.once.CompareAndSwap(false, true) {
		l.mu.Lock()
		l.late[key] = data
		l.mu.Unlock()
		<-ctx.Done()
		return "", ctx.Err()
	}
	return l.Store.PutIfAbsent(ctx, key, data, contentType)
}

func (l *lateBlobs) Get(ctx context.Context, key string) ([]byte, blob.Attributes, error) {
	data, attrs, err := l.Store.Get(ctx, key)
	l.mu.Lock()
	held, ok := l.late[key]
	delete(l.late, key)
	l.mu.Unlock()
	if ok {
		if _, perr := l.Store.PutIfAbsent(ctx, key, held, "application/octet-stream"); perr != nil {
			return nil, blob.Attributes{}, perr
		}
	}
	return data, attrs, err
}

// A create cut off at its deadline that lands after the writer found nothing
// there is recognised by its transaction id on the next catch-up: the edit is
// made once, not twice.
func TestStoreCutOffCreateThatLandsLateIsNotRepeated(t *testing.T) {
	ctx := context.Background()
	m := memblob.New()
	opt := gallery.StoreOptions{KeepFor: 400 * time.Millisecond}
	w := open(t, &lateBlobs{Store: m, late: map[string][]byte{}}, opt)
	rng := rand.New(rand.NewPCG(10, 10))
	out, err := w.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "once", desc(rng))})
	if err != nil {
		t.Fatal(err)
	}
	fresh := open(t, m, opt)
	if fresh.Seq() != 1 || out.Seq != 1 || fresh.Gallery().FaceTotal() != 1 {
		t.Fatalf("journal at %d (Apply said %d) with %d faces, want the edit once at 1", fresh.Seq(), out.Seq, fresh.Gallery().FaceTotal())
	}
	same(t, w.Gallery(), fresh.Gallery())
}

// slowBlobs takes longer than any deadline to create a journal entry: every
// create is cut off, as an upload too large for the link.
type slowBlobs struct{ blob.Store }

func (s slowBlobs) PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if strings.Contains(key, "/journal/") {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return s.Store.PutIfAbsent(ctx, key, data, contentType)
}

// A store too slow to write an entry within KeepFor/2 gets an error that says
// so after two tries, not fifty rounds of listings.
func TestStoreTooSlowToWriteSaysSo(t *testing.T) {
	w := open(t, slowBlobs{memblob.New()}, gallery.StoreOptions{KeepFor: 100 * time.Millisecond})
	start := time.Now()
	_, err := w.Apply(context.Background(), gallery.Edit{Op: gallery.OpAdd, Faces: one(t, "big", desc(rand.New(rand.NewPCG(11, 11))))})
	if err == nil || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}
