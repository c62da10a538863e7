package gallery

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

// Store keeps one gallery in a blob store so that any number of processes
// (web tiers editing, workers matching) share it without losing an edit.
//
// Layout under the prefix (default "gallery/"):
//
//	journal/00000000000000000001   one edit each, numbered from 1
//	snapshot/00000000000000000200  the whole gallery after edit 200 (binary)
//
// Writing. Apply catches up with the journal, checks the edit against that
// state (a face to delete must exist ...), and creates the next entry with
// blob.PutIfAbsent. When another process took that number first, the create
// fails, Apply reads the winner's entry and tries again on the new state, so
// every edit lands exactly once, in one order every process agrees on, and a
// check (404 for an unknown face) is never made against a stale state. Each
// entry carries a random transaction id, so a writer whose reply was lost
// recognises its own entry instead of writing the edit twice.
//
// Reading. Refresh lists the prefix and applies the entries after the ones it
// has; when those were compacted away it loads the newest snapshot first.
// Workers call RefreshIfStale per request: at most every few seconds they
// read the next entry by its key (a GET; a LIST costs S3 ten times as much),
// and list only every FullEvery, or when a request names a newer position than
// the entries they found.
//
// Compaction. After CompactAfter entries past the newest snapshot, the writer
// that reached that number writes a snapshot of that position (PutIfAbsent:
// the state at a position is the same for everyone) and deletes the entries
// and snapshots older than the previous snapshot, so a reader one snapshot
// behind still catches up from the journal instead of reloading everything.
// Only objects older than KeepFor go, and a writer's journal write must land
// within KeepFor/2 of the listing it was planned on (Apply cuts it off and
// retries otherwise): a writer that listed the journal before the deletion
// could otherwise re-create a deleted position.
//
// Gallery returns the current in-memory gallery for reading and matching; edit
// only through Apply, never through the returned *Gallery.
type Store struct {
	blobs  blob.Store
	prefix string
	opt    StoreOptions
	log    *slog.Logger

	g atomic.Pointer[Gallery] // state after entry seq

	mu      sync.Mutex // one refresh or edit of this process at a time
	seq     uint64
	snapSeq atomic.Uint64 // newest snapshot known
	checked atomic.Int64  // last check, Unix ns
	listed  time.Time     // last full refresh
	// listStart is when the listing of the last full refresh was asked for:
	// Apply writes on it only until listStart + KeepFor/2.
	listStart time.Time
	known     atomic.Uint64 // seq, readable without mu
	compact   sync.WaitGroup
	busy      atomic.Bool // a background compaction is running
	closed    bool
}

// StoreOptions tune a Store; the zero value is the default.
type StoreOptions struct {
	// CompactAfter is how many journal entries may follow the newest snapshot
	// before a writer writes a new one (default 200: one LIST page of keys for
	// readers, a snapshot write per 200 edits for writers).
	CompactAfter int
	// FullEvery is how often RefreshIfStale lists the prefix instead of only
	// reading the next entry (default 1 minute): a reader that fell a whole
	// snapshot behind finds the snapshot by listing.
	FullEvery time.Duration
	// KeepFor is how old a redundant entry or snapshot must be before a
	// compaction deletes it (default 15 minutes). Apply enforces the window
	// this needs: a journal write is cut off (and retried on a fresh listing)
	// unless it lands within KeepFor/2 of the listing it was planned on, so a
	// stalled writer can never re-create a compacted position. A KeepFor
	// shorter than twice a listing plus a write suits only a store that
	// compacts and does not write (tests that delete at once).
	KeepFor time.Duration
	// MaxFaces bounds the faces an edit may leave in the gallery (default and
	// ceiling: the package's MaxFaces, what a snapshot may hold).
	MaxFaces int
	// LegacyKey is a gallery object written before the journal existed
	// ("gallery/gallery.json"); an empty store imports it once as its first
	// entry. Empty: none.
	LegacyKey string
	Logger    *slog.Logger
}

// DefaultStorePrefix is where a Store keeps its keys in the output store.
const DefaultStorePrefix = "gallery/"

// DefaultCompactAfter is StoreOptions.CompactAfter's default.
const DefaultCompactAfter = 200

// ErrNoSubject and ErrNoFace say what an edit refers to does not exist;
// ErrFull that the edit would take the gallery past StoreOptions.MaxFaces.
var (
	ErrNoSubject = errors.New("gallery: no such subject")
	ErrNoFace    = errors.New("gallery: no such face")
	ErrFull      = errors.New("gallery: full")
)

// EditOp names an edit.
type EditOp string

// The edits a Store journals.
const (
	OpAdd           EditOp = "add"            // Faces' subjects gain their faces
	OpRemoveFace    EditOp = "remove_face"    // Subject loses FaceID
	OpRemoveSubject EditOp = "remove_subject" // Subject goes
	OpRename        EditOp = "rename"         // Subject becomes To (merged when To exists)
	OpPut           EditOp = "put"            // each subject of Faces replaces its namesake
	OpReplace       EditOp = "replace"        // Faces becomes the gallery
)

// Edit is one change to a shared gallery.
type Edit struct {
	Op      EditOp `json:"op"`
	Subject string `json:"subject,omitempty"`
	To      string `json:"to,omitempty"`
	FaceID  string `json:"face_id,omitempty"`
	Tx      string `json:"tx"`
	// Faces carries the faces of add, put and replace (ids included: every
	// process applies the same ids). It travels as a binary gallery after the
	// JSON header line.
	Faces *Gallery `json:"-"`
}

// Outcome is what an applied edit did.
type Outcome struct {
	Seq    uint64 // the journal position of the edit
	Merged bool   // rename: To existed and took Subject's faces
	Faces  int    // faces of the subject the edit left (rename: To's)
	// Removed lists the ids of the faces a remove_subject or remove_face took
	// out, as of the state the edit was checked against.
	Removed []string
}

// OpenStore loads the shared gallery kept under prefix in blobs.
func OpenStore(ctx context.Context, blobs blob.Store, prefix string, opt StoreOptions) (*Store, error) {
	if prefix == "" {
		prefix = DefaultStorePrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if opt.CompactAfter <= 0 {
		opt.CompactAfter = DefaultCompactAfter
	}
	if opt.MaxFaces <= 0 || opt.MaxFaces > MaxFaces {
		opt.MaxFaces = MaxFaces
	}
	if opt.FullEvery <= 0 {
		opt.FullEvery = time.Minute
	}
	if opt.KeepFor <= 0 {
		opt.KeepFor = 15 * time.Minute
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{blobs: blobs, prefix: prefix, opt: opt, log: log.With("gallery", prefix)}
	s.g.Store(New())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(ctx); err != nil {
		return nil, err
	}
	if s.seq == 0 && opt.LegacyKey != "" {
		if err := s.importLegacy(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// importLegacy makes a pre-journal gallery object the first entry.
func (s *Store) importLegacy(ctx context.Context) error {
	data, _, err := s.blobs.Get(ctx, s.opt.LegacyKey)
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("gallery: reading the legacy gallery %s: %w", s.opt.LegacyKey, err)
	}
	g, err := Unmarshal(data)
	if err != nil {
		return fmt.Errorf("gallery: the legacy gallery %s: %w", s.opt.LegacyKey, err)
	}
	if g.Len() == 0 {
		return nil
	}
	_, err = s.applyLocked(ctx, Edit{Op: OpReplace, Faces: g})
	if err == nil {
		s.log.Info("imported the legacy gallery into the journal", "key", s.opt.LegacyKey, "subjects", g.Len())
	}
	return err
}

// Gallery is the current gallery, for reading and matching only.
func (s *Store) Gallery() *Gallery { return s.g.Load() }

// Seq is the journal position the current gallery reflects.
func (s *Store) Seq() uint64 { return s.known.Load() }

// Refresh catches up with every process's edits.
func (s *Store) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshLocked(ctx)
}

// RefreshIfStale refreshes when the last check is older than maxAge or atLeast
// is beyond the current position (a request saw a newer gallery).
func (s *Store) RefreshIfStale(ctx context.Context, maxAge time.Duration, atLeast uint64) error {
	if atLeast <= s.Seq() && time.Since(time.Unix(0, s.checked.Load())) < maxAge {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if atLeast <= s.seq && time.Since(time.Unix(0, s.checked.Load())) < maxAge {
		return nil // another caller refreshed meanwhile
	}
	if time.Since(s.listed) < s.opt.FullEvery {
		if err := s.follow(ctx); err != nil {
			return err
		}
		if s.seq >= atLeast {
			s.checked.Store(time.Now().UnixNano())
			return nil
		}
	}
	return s.refreshLocked(ctx)
}

// follow applies the entries after seq by reading them one by one until one
// is missing; the caller holds mu.
func (s *Store) follow(ctx context.Context) error {
	for {
		e, err := s.readEntry(ctx, s.seq+1)
		if errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.applyEntry(e); err != nil {
			return fmt.Errorf("gallery: journal entry %d: %w", s.seq+1, err)
		}
		s.setSeq(s.seq + 1)
	}
}

func (s *Store) journalKey(seq uint64) string  { return fmt.Sprintf("%sjournal/%020d", s.prefix, seq) }
func (s *Store) snapshotKey(seq uint64) string { return fmt.Sprintf("%ssnapshot/%020d", s.prefix, seq) }

// listing is what the prefix holds: journal and snapshot positions, ascending,
// and when each object was written.
type listing struct {
	journal, snapshots []uint64
	written            map[string]time.Time
}

func (s *Store) list(ctx context.Context) (listing, error) {
	objs, err := s.blobs.List(ctx, s.prefix)
	if err != nil {
		return listing{}, fmt.Errorf("gallery: listing %s: %w", s.prefix, err)
	}
	l := listing{written: map[string]time.Time{}}
	for _, o := range objs {
		l.written[o.Key] = o.Modified
		rest := strings.TrimPrefix(o.Key, s.prefix)
		kind, num, ok := strings.Cut(rest, "/")
		n, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil || len(num) != 20 {
			continue // not ours
		}
		switch kind {
		case "journal":
			l.journal = append(l.journal, n)
		case "snapshot":
			l.snapshots = append(l.snapshots, n)
		}
	}
	slices.Sort(l.journal)
	slices.Sort(l.snapshots)
	return l, nil
}

// refreshLocked applies every entry after seq; the caller holds mu. A key that
// vanishes between the listing and the read (compacted meanwhile) restarts it.
func (s *Store) refreshLocked(ctx context.Context) error {
	var err error
	for range 3 {
		if err = s.catchUp(ctx); !errors.Is(err, blob.ErrNotFound) {
			break
		}
	}
	if err == nil {
		s.checked.Store(time.Now().UnixNano())
		s.listed = time.Now()
	}
	return err
}

func (s *Store) catchUp(ctx context.Context) error {
	s.listStart = time.Now()
	l, err := s.list(ctx)
	if err != nil {
		return err
	}
	if n := len(l.snapshots); n > 0 {
		s.noteSnapshot(l.snapshots[n-1])
		// The newest snapshot wins over replaying the journal when this
		// process starts, when the next entry is gone, or when the snapshot
		// saves replaying at least CompactAfter entries.
		newest := l.snapshots[n-1]
		if newest > s.seq && (s.seq == 0 || !slices.Contains(l.journal, s.seq+1) || newest-s.seq >= uint64(s.opt.CompactAfter)) {
			if err := s.loadSnapshot(ctx, newest); err != nil {
				return err
			}
		}
	}
	for _, j := range l.journal {
		if j <= s.seq {
			continue
		}
		if j != s.seq+1 {
			return fmt.Errorf("gallery: journal gap under %s: have entry %d, next is %d and no snapshot covers it", s.prefix, s.seq, j)
		}
		e, err := s.readEntry(ctx, j)
		if err != nil {
			return err
		}
		if err := s.applyEntry(e); err != nil {
			return fmt.Errorf("gallery: journal entry %d: %w", j, err)
		}
		s.setSeq(j)
	}
	return nil
}

// noteSnapshot records that a snapshot of seq exists.
func (s *Store) noteSnapshot(seq uint64) {
	for {
		old := s.snapSeq.Load()
		if seq <= old || s.snapSeq.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (s *Store) setSeq(seq uint64) {
	s.seq = seq
	s.known.Store(seq)
}

func (s *Store) loadSnapshot(ctx context.Context, seq uint64) error {
	t0 := time.Now()
	data, _, err := s.blobs.Get(ctx, s.snapshotKey(seq))
	if err != nil {
		return fmt.Errorf("gallery: reading snapshot %d: %w", seq, err)
	}
	t1 := time.Now()
	g, got, err := decodeBinary(data, true) // data came from Get: ours to keep
	if err != nil {
		return fmt.Errorf("gallery: snapshot %d: %w", seq, err)
	}
	if got != seq {
		return fmt.Errorf("gallery: snapshot %d says it covers entry %d", seq, got)
	}
	s.g.Store(g)
	s.setSeq(seq)
	s.log.Info("gallery snapshot loaded", "seq", seq, "subjects", g.Len(), "faces", g.FaceTotal(), "bytes", len(data),
		"read", t1.Sub(t0).Round(time.Millisecond), "decode", time.Since(t1).Round(time.Millisecond))
	return nil
}

func (s *Store) readEntry(ctx context.Context, seq uint64) (Edit, error) {
	data, _, err := s.blobs.Get(ctx, s.journalKey(seq))
	if err != nil {
		return Edit{}, fmt.Errorf("gallery: reading journal entry %d: %w", seq, err)
	}
	e, err := decodeEntry(data)
	if err != nil {
		return Edit{}, fmt.Errorf("gallery: journal entry %d: %w", seq, err)
	}
	return e, nil
}

func encodeEntry(e Edit) ([]byte, error) {
	head, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	head = append(head, '\n')
	if e.Faces != nil {
		head = e.Faces.appendBinary(head, 0)
	}
	return head, nil
}

func decodeEntry(data []byte) (Edit, error) {
	head, body, _ := bytes.Cut(data, []byte{'\n'})
	var e Edit
	if err := json.Unmarshal(head, &e); err != nil {
		return Edit{}, fmt.Errorf("malformed header: %w", err)
	}
	if len(body) > 0 {
		g, _, err := decodeBinary(body, true) // data came from Get: ours to keep
		if err != nil {
			return Edit{}, err
		}
		e.Faces = g
	}
	return e, nil
}

// check says whether e can apply to the current state, and what it will do.
func (s *Store) check(e Edit) (Outcome, error) {
	g := s.g.Load()
	switch e.Op {
	case OpAdd, OpPut, OpReplace:
		if e.Faces == nil {
			return Outcome{}, fmt.Errorf("gallery: %s without faces", e.Op)
		}
		total := e.Faces.FaceTotal() // replace: the new gallery
		switch e.Op {
		case OpAdd:
			total += g.FaceTotal()
		case OpPut: // at most: its subjects replace their namesakes
			total += g.FaceTotal()
			for _, name := range e.Faces.Names() {
				total -= g.FaceCount(name)
			}
		}
		if total > s.opt.MaxFaces {
			return Outcome{}, fmt.Errorf("%w: the edit would leave %d faces; the limit is %d", ErrFull, total, s.opt.MaxFaces)
		}
		if e.Op == OpAdd && e.Faces.Len() == 1 {
			name := e.Faces.Names()[0]
			return Outcome{Faces: g.FaceCount(name) + e.Faces.FaceCount(name)}, nil
		}
		return Outcome{Faces: e.Faces.FaceTotal()}, nil
	case OpRemoveFace:
		if !g.HasFace(e.Subject, e.FaceID) {
			return Outcome{}, fmt.Errorf("%w: %q has no face %q", ErrNoFace, e.Subject, e.FaceID)
		}
		return Outcome{Faces: g.FaceCount(e.Subject) - 1, Removed: []string{e.FaceID}}, nil
	case OpRemoveSubject:
		faces, _ := g.Faces(e.Subject)
		if len(faces) == 0 {
			return Outcome{}, fmt.Errorf("%w: %q", ErrNoSubject, e.Subject)
		}
		out := Outcome{}
		for _, f := range faces {
			out.Removed = append(out.Removed, f.ID)
		}
		return out, nil
	case OpRename:
		if err := ValidName(e.To); err != nil {
			return Outcome{}, fmt.Errorf("gallery: subject %q: %w", e.To, err)
		}
		n := g.FaceCount(e.Subject)
		if n == 0 {
			return Outcome{}, fmt.Errorf("%w: %q", ErrNoSubject, e.Subject)
		}
		if e.To == e.Subject {
			return Outcome{Faces: n}, nil
		}
		m := g.FaceCount(e.To)
		return Outcome{Merged: m > 0, Faces: n + m}, nil
	}
	return Outcome{}, fmt.Errorf("gallery: unknown edit %q", e.Op)
}

// applyEntry applies a journalled edit to the in-memory gallery. Entries are
// applied as written, whatever the state: a face already gone is no error, so
// every process ends in the same state.
func (s *Store) applyEntry(e Edit) error { return s.apply(e, true) }

// apply is applyEntry; owned says e.Faces is nobody else's (decoded from the
// journal), so a replace keeps it instead of copying it.
func (s *Store) apply(e Edit, owned bool) error {
	g := s.g.Load()
	switch e.Op {
	case OpAdd:
		if e.Faces == nil {
			return errors.New("add without faces")
		}
		e.Faces.mu.RLock()
		defer e.Faces.mu.RUnlock()
		for _, sub := range e.Faces.subs {
			if sub.name == "" {
				continue
			}
			faces := make([]face, len(sub.rows))
			for k, i := range sub.rows {
				faces[k] = face{desc: e.Faces.r.descriptor(i), info: e.Faces.info(i)}
			}
			if err := g.addFaces(sub.name, faces); err != nil {
				return err
			}
		}
	case OpPut:
		if e.Faces == nil {
			return errors.New("put without faces")
		}
		for _, sub := range e.Faces.Subjects() {
			if err := g.PutSubject(sub); err != nil {
				return err
			}
		}
	case OpReplace:
		if e.Faces == nil {
			return errors.New("replace without faces")
		}
		if owned {
			s.g.Store(e.Faces)
		} else {
			s.g.Store(e.Faces.Clone())
		}
	case OpRemoveFace:
		g.RemoveFace(e.Subject, e.FaceID)
	case OpRemoveSubject:
		g.Remove(e.Subject)
	case OpRename:
		if _, _, err := g.Rename(e.Subject, e.To); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown edit %q (written by a newer facefleet?)", e.Op)
	}
	return nil
}

// MaxApplyAttempts bounds how often Apply retries after losing the race for a
// journal position.
const MaxApplyAttempts = 50

// Apply journals e and applies it: every process sees it, in one order. The
// error wraps ErrNoSubject or ErrNoFace when e refers to something the current
// gallery lacks (nothing is written then).
func (s *Store) Apply(ctx context.Context, e Edit) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyLocked(ctx, e)
}

func (s *Store) applyLocked(ctx context.Context, e Edit) (Outcome, error) {
	if e.Tx == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		e.Tx = hex.EncodeToString(b[:])
	}
	data, err := encodeEntry(e)
	if err != nil {
		return Outcome{}, fmt.Errorf("gallery: encoding the edit: %w", err)
	}
	stale := 0         // attempts whose listing was too old to write on
	cuts := 0          // creates cut off at their deadline
	var cut uint64     // the position of a create cut off at its deadline
	var cutOut Outcome // what the edit did, as checked before that create
	for range MaxApplyAttempts {
		if err := s.refreshLocked(ctx); err != nil {
			return Outcome{}, err
		}
		if cut != 0 && s.seq >= cut {
			// The cut-off create may have landed after all, and the catch-up
			// just applied it: the edit is done, not to be made twice.
			if mine, rerr := s.isMine(ctx, cut, e.Tx); rerr == nil && mine {
				cutOut.Seq = cut
				return cutOut, nil
			}
			cut = 0
		}
		out, err := s.check(e)
		if err != nil {
			return Outcome{}, err
		}
		next := s.seq + 1
		// A compaction deletes only entries older than KeepFor, so a write that
		// lands within KeepFor of the listing it was planned on cannot re-create
		// a position that was filled and deleted meanwhile (its original is still
		// there: the create fails and Apply catches up). The write must land
		// by listStart + KeepFor/2; the other half is margin for the store's and
		// the compacting process's clocks.
		by := s.listStart.Add(s.opt.KeepFor / 2)
		if !time.Now().Before(by) {
			stale++
			continue // the listing is already too old to write on
		}
		wctx, cancel := context.WithDeadline(ctx, by)
		_, err = s.blobs.PutIfAbsent(wctx, s.journalKey(next), data, "application/octet-stream")
		late := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case errors.Is(err, blob.ErrExists):
			if mine, rerr := s.isMine(ctx, next, e.Tx); rerr == nil && mine {
				err = nil // our own write, its reply lost: it landed
			} else {
				continue // someone else took next: catch up and check again
			}
		case err != nil && late:
			// Cut off at the bound: it may have landed before the cut.
			if mine, rerr := s.isMine(ctx, next, e.Tx); rerr == nil && mine {
				err = nil
			} else if rerr == nil || errors.Is(rerr, blob.ErrNotFound) {
				if cuts++; cuts >= 2 {
					return Outcome{}, fmt.Errorf("gallery: writing journal entry %d (%d bytes) did not finish within %v of its listing, twice: the store is too slow for an entry this large (KeepFor/2 bounds a write, so that a compaction cannot delete the position under it); make the edit smaller", next, len(data), s.opt.KeepFor/2)
				}
				cut, cutOut = next, out
				continue // not ours (or nothing yet): catch up and try again
			} else {
				return Outcome{}, fmt.Errorf("gallery: writing journal entry %d: %w (checking whether it landed: %w)", next, err, rerr)
			}
		}
		if err != nil {
			return Outcome{}, fmt.Errorf("gallery: writing journal entry %d: %w", next, err)
		}
		if err := s.apply(e, false); err != nil { // e.Faces is the caller's: copy it
			return Outcome{}, fmt.Errorf("gallery: applying entry %d: %w", next, err)
		}
		s.setSeq(next)
		out.Seq = next
		s.maybeCompact()
		return out, nil
	}
	if stale > 0 {
		return Outcome{}, fmt.Errorf("gallery: gave up after %d attempts: %d listings were older than KeepFor/2 (%v) before the write could start, the rest lost the race for a journal position; a KeepFor this short suits only a store that does not write", MaxApplyAttempts, stale, s.opt.KeepFor/2)
	}
	return Outcome{}, fmt.Errorf("gallery: gave up after %d attempts: other writers took every journal position meanwhile; try again", MaxApplyAttempts)
}

func (s *Store) isMine(ctx context.Context, seq uint64, tx string) (bool, error) {
	data, _, err := s.blobs.Get(ctx, s.journalKey(seq))
	if err != nil {
		return false, err
	}
	head, _, _ := bytes.Cut(data, []byte{'\n'})
	var e Edit
	if err := json.Unmarshal(head, &e); err != nil {
		return false, err
	}
	return e.Tx == tx, nil
}

// maybeCompact starts a snapshot when the journal has grown CompactAfter
// entries past the newest one; the caller holds mu. The snapshot is encoded
// now (the state at seq) and written in the background.
func (s *Store) maybeCompact() {
	if s.closed || s.seq-s.snapSeq.Load() < uint64(s.opt.CompactAfter) || !s.busy.CompareAndSwap(false, true) {
		return
	}
	seq, prev := s.seq, s.snapSeq.Load()
	data := s.g.Load().appendBinary(nil, seq)
	s.compact.Go(func() {
		defer s.busy.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := s.writeSnapshot(ctx, seq, prev, data); err != nil {
			s.log.Warn("gallery compaction failed; the journal keeps growing until one succeeds", "seq", seq, "err", err)
		}
	})
}

// Compact writes a snapshot of the current position now and deletes what the
// previous snapshot made redundant (the background compaction, on demand).
func (s *Store) Compact(ctx context.Context) error {
	s.mu.Lock()
	if err := s.refreshLocked(ctx); err != nil {
		s.mu.Unlock()
		return err
	}
	seq, prev := s.seq, s.snapSeq.Load()
	data := s.g.Load().appendBinary(nil, seq)
	s.mu.Unlock()
	return s.writeSnapshot(ctx, seq, prev, data)
}

func (s *Store) writeSnapshot(ctx context.Context, seq, prev uint64, data []byte) error {
	if _, err := s.blobs.PutIfAbsent(ctx, s.snapshotKey(seq), data, "application/octet-stream"); err != nil && !errors.Is(err, blob.ErrExists) {
		return fmt.Errorf("writing snapshot %d: %w", seq, err)
	}
	l, err := s.list(ctx)
	if err != nil {
		return err
	}
	// Keep the previous snapshot's entries: a reader up to one snapshot behind
	// catches up from the journal.
	old := func(key string) bool { return time.Since(l.written[key]) >= s.opt.KeepFor }
	for _, j := range l.journal {
		if k := s.journalKey(j); j <= prev && old(k) {
			if err := s.blobs.Delete(ctx, k); err != nil {
				return fmt.Errorf("deleting journal entry %d: %w", j, err)
			}
		}
	}
	for _, n := range l.snapshots {
		if k := s.snapshotKey(n); n < prev && old(k) {
			if err := s.blobs.Delete(ctx, k); err != nil {
				return fmt.Errorf("deleting snapshot %d: %w", n, err)
			}
		}
	}
	s.noteSnapshot(seq)
	s.log.Info("gallery snapshot written", "seq", seq, "bytes", len(data))
	return nil
}

// Close waits for a running compaction.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.compact.Wait()
}
