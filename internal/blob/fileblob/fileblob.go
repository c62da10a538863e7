// Package fileblob is the blob port on a local folder, the embedded default.
//
// Layout: a key's "/"-separated segments become sub-folders; each folder segment
// gets the suffix ".d" and the object file the suffix ".obj", so the keys "a" and
// "a/b" (both legal in S3) never collide as file and folder. An object file holds
// one JSON header line (content type, ETag, size, modification time) followed by
// the bytes, so a Put is one temp-file-plus-rename and a reader sees the old or
// the new object with its own metadata, never a mix. PutIfAbsent hard-links the
// temp file to the key's file instead of renaming it: link(2) fails when the
// name exists, so of concurrent PutIfAbsent calls on one key exactly one wins,
// also across processes sharing the folder (it needs a file system with hard
// links: ext4, XFS, btrfs, tmpfs, NFS; not FAT).
//
// Durability: a Put returns once its file, the rename and any folder it created
// are synced. Concurrent Puts share one round of syncs (group commit, as
// databases do with their log), so a burst of writes costs a few journal commits
// rather than one per object. PutIfAbsent is acknowledged the same way, and its
// ErrExists answer too is given only once the existing object's folder entries
// (its folder and every folder above it) are synced, so a caller that moves on
// because a key is taken never sees that key vanish after a crash.
//
// Options.Log acknowledges small Puts through a write-ahead log instead (one
// fdatasync per group of writes; wal.go), and Options.WriteBehind lets a Put
// return before its file exists (behind.go); with the log, one store holds a
// folder at a time.
package fileblob

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/facefleet/facefleet/internal/bigalloc"

	"github.com/facefleet/facefleet/internal/blob"
)

const (
	dirSuffix = ".d"
	objSuffix = ".obj"
	tmpPrefix = ".tmp-"
	// maxSegment keeps segment+suffix within the usual 255-byte file name limit.
	maxSegment = 250
	// maxHeader bounds the JSON header line, so a corrupt file cannot make Head
	// read a whole object.
	maxHeader = 4096
	formatV1  = 1
)

// ErrCorrupt is returned (wrapped) when an object file is unreadable as such.
var ErrCorrupt = errors.New("fileblob: object file is corrupt")

// header is the first line of an object file.
type header struct {
	V           int       `json:"v"`
	ContentType string    `json:"contentType"`
	ETag        string    `json:"etag"`
	Size        int64     `json:"size"`
	Modified    time.Time `json:"modified"`
}

// Options tune a store; the zero value is the safe default.
type Options struct {
	// NoSync skips the fsyncs of files and folders. Writes stay atomic for readers,
	// but a machine crash may leave an empty or missing object; use it for
	// scratch data and tests only (it makes a 64 KiB Put several times faster).
	NoSync bool
	// Log acknowledges a Put of up to 1 MiB by one append to a write-ahead log
	// instead of syncing the object's file and folders (see wal.go): the same
	// durability for about a quarter of the time. One store per folder holds
	// the log; New fails while another does. Not with NoSync.
	Log bool
	// CheckpointEvery is how often the log's records are made redundant by one
	// sync of the file system (default DefaultCheckpointEvery).
	CheckpointEvery time.Duration
	// WriteBehind returns from a Put before the object's file exists: the
	// object is held in memory, served by this store's Get, Head and List,
	// and written by background writers (see behind.go); with Log the Put
	// still returns only once its record is durable. Needs Log or NoSync.
	// Other processes on the folder see an object once its file is written.
	// What the writers wrote last stays readable from memory (up to a quarter
	// of WriteBehindBytes), so this store does not see another process's
	// change to such a file until its copy ages out: the folder is this
	// store's (with Log, New enforces it).
	WriteBehind bool
	// WriteBehindBytes bounds the bytes held; past it Puts write their files
	// themselves (default DefaultWriteBehindBytes).
	WriteBehindBytes int64
}

// Store keeps objects under one folder. It is safe for concurrent use, also by
// several processes on the same folder (writes are renames).
type Store struct {
	root string
	sync bool
	// files syncs and renames temp files; dirs then syncs their folders.
	files, dirs *committer
	fresh       *freshDirs
	log         *wal    // nil without Options.Log
	wb          *behind // nil without Options.WriteBehind
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) the store in dir; at most one Options.
func New(dir string, opts ...Options) (*Store, error) {
	var o Options
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		return nil, fmt.Errorf("fileblob: New takes at most one Options, got %d", len(opts))
	}
	if dir == "" {
		return nil, errors.New("fileblob: empty data folder")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fileblob: resolving data folder %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("fileblob: creating data folder %q: %w", abs, err)
	}
	s := &Store{root: abs, sync: !o.NoSync, files: &committer{run: syncFiles}, dirs: &committer{run: syncDirs}, fresh: &freshDirs{n: map[string]int{}}}
	if o.WriteBehind {
		if !o.Log && !o.NoSync {
			return nil, errors.New("fileblob: Options.WriteBehind needs Log (durable through the log) or NoSync")
		}
		limit := o.WriteBehindBytes
		if limit <= 0 {
			limit = DefaultWriteBehindBytes
		}
		s.wb = newBehind(s, limit)
	}
	if o.Log {
		if o.NoSync {
			return nil, errors.New("fileblob: Options.Log and NoSync exclude each other (the log exists to sync)")
		}
		every := o.CheckpointEvery
		if every <= 0 {
			every = DefaultCheckpointEvery
		}
		if s.log, err = openWAL(s, every); err != nil {
			return nil, err
		}
		if s.wb != nil {
			s.log.held = s.wb
		}
	}
	return s, nil
}

// Close writes every object still held (WriteBehind) and ends a store opened
// with Log: the log's records are made redundant by one sync, its segments
// removed and its lock released, so the next open has nothing to replay;
// logged Puts and Deletes fail afterwards. Without either it does nothing. A
// logged store that is never closed loses nothing: the next open replays.
func (s *Store) Close() error {
	var werr error
	if s.wb != nil {
		werr = s.wb.close()
	}
	if s.log == nil {
		return werr
	}
	// Held objects that could not be written stay in the log for the next
	// open to replay.
	return errors.Join(werr, s.log.close(werr != nil))
}

// Replayed is how many log records New redid after a crash (0 without Log).
func (s *Store) Replayed() int {
	if s.log == nil {
		return 0
	}
	return s.log.replayed
}

// Dir is the store's folder.
func (s *Store) Dir() string { return s.root }

// path maps a valid key to its object file.
func (s *Store) path(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	segs := strings.Split(key, "/")
	parts := make([]string, 0, len(segs)+1)
	parts = append(parts, s.root)
	for i, seg := range segs {
		if len(seg) > maxSegment {
			return "", fmt.Errorf("fileblob: key %q has a segment of %d bytes, over the %d-byte file name limit: %w", key, len(seg), maxSegment, blob.ErrInvalidKey)
		}
		if i < len(segs)-1 {
			parts = append(parts, seg+dirSuffix)
		} else {
			parts = append(parts, seg+objSuffix)
		}
	}
	return filepath.Join(parts...), nil
}

// Put writes the object atomically: a temp file in the same folder, renamed over
// the key's file. With syncing on (the default) Put returns only once the data,
// the rename and any folders it created are durable; concurrent Puts share the
// syncs (group commit, see committer).
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	return s.put(ctx, key, data, contentType, false, nil)
}

// PutIfAbsent writes the object only when the key has none: a temp file in the
// same folder, hard-linked to the key's file (link fails when the name exists,
// atomically, whoever made it) and then unlinked. It syncs as Put does, and
// returns an error wrapping blob.ErrExists, after syncing the existing object's
// folder entries, when the key is taken.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	return s.put(ctx, key, data, contentType, true, nil)
}

// PutBatch writes each object as Put does (blob.Batcher) and returns once all
// are readable; durable returns once they are durable. With the log, every
// object is placed and appended and one sync then covers them all: a
// request's result and record cost one fdatasync, and the app tier answers
// before waiting for it. Without the log each Put is durable on return. Not
// atomic: after an error, objects before it may be stored.
func (s *Store) PutBatch(ctx context.Context, objs []blob.Object) (durable func() error, err error) {
	var upTo int64
	for _, o := range objs {
		if _, err := s.put(ctx, o.Key, o.Data, o.ContentType, false, &upTo); err != nil {
			return nil, err
		}
	}
	if s.log == nil {
		return func() error { return nil }, nil
	}
	return func() error {
		if err := s.log.waitDurable(upTo); err != nil {
			return fmt.Errorf("fileblob: syncing the log for a batch of %d: %w", len(objs), err)
		}
		return nil
	}, nil
}

// put writes one object. With upTo set, a logged write is not waited for:
// upTo is raised to its log position for the caller's one wait.
func (s *Store) put(ctx context.Context, key string, data []byte, contentType string, ifAbsent bool, upTo *int64) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	if ifAbsent {
		// Taken already: answer without writing the data (the link below is
		// what decides a race; this only saves the work when it is lost).
		if _, err := os.Lstat(p); err == nil {
			return "", s.exists(key, p)
		}
		if s.wb != nil {
			if _, ok := s.wb.get(key); ok {
				return "", s.exists(key, p)
			}
		}
	}
	if contentType == "" {
		contentType = blob.DefaultContentType
	}
	h := header{V: formatV1, ContentType: contentType, ETag: blob.ETagOf(data), Size: int64(len(data)), Modified: time.Now().UTC()}
	line, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("fileblob: encoding header of %q: %w", key, err)
	}
	line = append(line, '\n')
	logged := s.log != nil && len(data) <= maxLogged
	if s.wb != nil && !ifAbsent {
		if (logged || s.log == nil) && s.wb.accepts(len(data)) {
			return s.putBehind(key, h, line, data, upTo)
		}
		// The direct path: no writer may put a held older version back over it.
		if s.log != nil {
			if err := s.wb.settle(key); err != nil {
				return "", fmt.Errorf("fileblob: writing %q: %w", key, err)
			}
		} else {
			s.wb.forget(key)
		}
	}
	if s.wb != nil {
		// No writer's copy of key may stay in recent over this file.
		s.wb.beginDirect(key)
		defer s.wb.endDirect(key)
	}
	// A concurrent Delete may prune the folder between mkdirAll and CreateTemp;
	// try again a few times before giving up.
	var w *pending
	for attempt := 0; ; attempt++ {
		w, err = s.writeTemp(p, line, data, s.sync && !logged)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err == nil {
		w.ifAbsent = ifAbsent
		switch {
		case logged:
			var pos int64
			if pos, err = s.putLogged(w, key, p, line, data); err == nil {
				err = s.awaitLog(pos, upTo)
			}
			if err == nil && w.taken {
				err = s.dirs.commit(&pending{dirs: s.folders(p)})
			}
		case s.sync:
			if err = s.files.commit(w); err == nil {
				if w.taken {
					w.dirs = s.folders(p)
				}
				err = s.dirs.commit(w)
			}
			s.fresh.done(w.created)
			if err == nil && !w.taken && s.log != nil {
				err = s.markDirect(key)
			}
		default:
			w.place()
			err = w.err
		}
	}
	if err != nil {
		return "", fmt.Errorf("fileblob: writing %q: %w", key, err)
	}
	if w.taken {
		return "", fmt.Errorf("fileblob: %q: %w", key, blob.ErrExists)
	}
	return h.ETag, nil
}

// putBehind holds the object for the background writers (with the log, after
// appending its record, and, unless upTo is given, once that is durable).
func (s *Store) putBehind(key string, h header, line, data []byte, upTo *int64) (string, error) {
	if s.log == nil {
		s.wb.hold(key, h, line, bytes.Clone(data)) // the caller may reuse its buffer once Put returns
		return h.ETag, nil
	}
	// The record ends with a copy of the bytes: the held object shares it.
	rec := encode(opPut, key, line, data, time.Time{})
	held := rec[len(rec)-len(data):]
	pos, err := s.log.appendPlaced(func() bool { s.wb.hold(key, h, line, held); return true }, rec)
	if err == nil {
		err = s.awaitLog(pos, upTo)
	}
	if err != nil {
		return "", fmt.Errorf("fileblob: writing %q: %w", key, err)
	}
	return h.ETag, nil
}

// awaitLog waits until the log is durable up to pos or, in a batch (upTo
// given), raises upTo to pos for the batch's one wait.
func (s *Store) awaitLog(pos int64, upTo *int64) error {
	if upTo != nil {
		*upTo = max(*upTo, pos)
		return nil
	}
	return s.log.waitDurable(pos)
}

// putLogged places a written temp file and appends its record to the log,
// returning the log position that makes it durable.
func (s *Store) putLogged(w *pending, key, p string, line, data []byte) (int64, error) {
	placed := false
	pos, err := s.log.appendPlaced(func() bool {
		placed = true
		w.place()
		return w.err == nil && !w.taken
	}, encode(opPut, key, line, data, time.Time{}))
	if !placed {
		_ = os.Remove(w.tmp)
	}
	if err == nil {
		err = w.err
	}
	return pos, err
}

// markDirect records that key was just written durably by the direct path,
// so no earlier record of it is replayed over the new object.
func (s *Store) markDirect(key string) error {
	pos, err := s.log.appendPlaced(func() bool { return true }, encode(opDirect, key, nil, nil, time.Time{}))
	if err == nil {
		err = s.log.waitDurable(pos)
	}
	return err
}

// exists is PutIfAbsent's answer for a key found taken before writing: with
// syncing on, once the object found is durable (its record, if this store's
// log holds one, and its folder entries).
func (s *Store) exists(key, p string) error {
	if s.log != nil {
		if err := s.log.waitDurable(s.log.position()); err != nil {
			return fmt.Errorf("fileblob: syncing the log before answering that %q exists: %w", key, err)
		}
	}
	if s.sync {
		if err := s.dirs.commit(&pending{dirs: s.folders(p)}); err != nil {
			return fmt.Errorf("fileblob: syncing the folders of the existing %q: %w", key, err)
		}
	}
	return fmt.Errorf("fileblob: %q: %w", key, blob.ErrExists)
}

// folders lists the folders from p's own up to the store's root: those whose
// entries make the object file p reachable.
func (s *Store) folders(p string) []string {
	var out []string
	for d := filepath.Dir(p); len(d) >= len(s.root); d = filepath.Dir(d) {
		out = append(out, d)
		if d == s.root {
			break
		}
	}
	return out
}

// writeTemp creates the temp file beside p and writes the object into it. When
// syncing, the file stays open for the commit's fsync, and the folders whose
// entries the commit must sync are listed: p's own, the parent of each folder
// made here, and the parent of each folder above p that another Put made and
// has not synced yet (else this Put could be acknowledged in an earlier commit
// than the one that makes its folder durable).
func (s *Store) writeTemp(p string, head, data []byte, syncIt bool) (w *pending, err error) {
	dir := filepath.Dir(p)
	created, err := mkdirAll(dir)
	if err != nil {
		return nil, err
	}
	var unsynced []string
	if syncIt {
		unsynced = s.fresh.add(created, dir, s.root)
		defer func() {
			if err != nil {
				s.fresh.done(created)
			}
		}()
	}
	f, err := createTemp(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// One write for a small object: every syscall counts at one file per write.
	if len(data) <= smallObject {
		buf := make([]byte, 0, len(head)+len(data))
		_, err = f.Write(append(append(buf, head...), data...))
	} else if _, err = f.Write(head); err == nil {
		_, err = f.Write(data)
	}
	if err != nil {
		return nil, err
	}
	w = &pending{tmp: f.Name(), final: p, dirs: []string{dir}}
	if !syncIt {
		return w, f.Close()
	}
	w.f, w.created = f, created
	for _, d := range unsynced {
		w.dirs = append(w.dirs, filepath.Dir(d))
	}
	return w, nil
}

// freshDirs counts the folders this store made whose entry in their parent no
// commit has synced yet. Another process writing to the same folder is not
// covered: its fresh folders look old here.
type freshDirs struct {
	mu sync.Mutex
	n  map[string]int
}

// add records created and returns the folders from dir up to (not including)
// root that are fresh, created among them.
func (f *freshDirs) add(created []string, dir, root string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range created {
		f.n[d]++
	}
	var out []string
	for d := dir; d != root && len(d) > len(root); d = filepath.Dir(d) {
		if f.n[d] > 0 {
			out = append(out, d)
		}
	}
	return out
}

// done forgets created once the commit that synced their parents has run.
func (f *freshDirs) done(created []string) {
	if len(created) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range created {
		if f.n[d]--; f.n[d] <= 0 {
			delete(f.n, d)
		}
	}
}

// smallObject is the size up to which header and data go out in one write.
const smallObject = 256 << 10

// createTemp is os.CreateTemp with the object's final mode (0644 less the
// umask) set at creation rather than by a chmod afterwards.
func createTemp(dir string) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(filepath.Join(dir, tmpPrefix+strconv.FormatUint(rand.Uint64(), 36)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("creating a temp file in %s: 100 random names taken", dir)
}

// mkdirAll is os.MkdirAll that also returns the folders it created, outermost
// first.
func mkdirAll(dir string) ([]string, error) {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return nil, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil, nil
	}
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append(missing, d)
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		switch {
		case err == nil:
			created = append(created, missing[i])
		case errors.Is(err, fs.ErrExist):
			// Made meanwhile by a concurrent Put, whose commit syncs its parent.
		default:
			return nil, err
		}
	}
	return created, nil
}

// pending is one Put waiting for its commit.
type pending struct {
	f          *os.File // the temp file, open until synced
	tmp, final string
	ifAbsent   bool      // link rather than rename: a PutIfAbsent
	taken      bool      // ifAbsent, and final existed: nothing was written
	dirs       []string  // folders to sync after the rename
	created    []string  // folders this write made
	err        error     // the commit's outcome for this write
	wake       chan bool // true: lead the next commit; false: done (err set)
}

// place moves the written temp file to its final name: a rename for Put; for
// PutIfAbsent a hard link, which fails if the name exists (then taken is set),
// followed by removing the temp name. The temp file is gone either way.
func (w *pending) place() {
	if !w.ifAbsent {
		if err := os.Rename(w.tmp, w.final); err != nil {
			w.err = err
			_ = os.Remove(w.tmp)
		}
		return
	}
	err := os.Link(w.tmp, w.final)
	// Once linked, the object is stored under its key whatever happens to the
	// temp name; a temp name left behind (Remove failed) is a second name of
	// the same file, ignored by List and Get.
	_ = os.Remove(w.tmp)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		w.taken = true
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP):
		w.err = fmt.Errorf("PutIfAbsent needs hard links, which the data folder's file system refuses: %w", err)
	default:
		w.err = err
	}
}

// committer is a group commit: a write queues itself; if no commit is running
// it leads one, taking every queued write, and writes that arrive meanwhile wait
// and the first of them leads the next commit, so one round of syncs covers
// every write that arrived during the previous one, and no write returns before
// its own round. A Put goes through two: files (sync every temp file at once,
// then rename them in arrival order) and dirs (sync each folder touched once).
// Being separate, the folder syncs of one round overlap the file syncs of the
// next, which the file system's journal can then commit together.
type committer struct {
	mu    sync.Mutex
	queue []*pending
	busy  bool
	run   func([]*pending) // sets err of the writes it fails
}

// syncParallel bounds the fsyncs one commit runs at once.
const syncParallel = 16

func (c *committer) commit(w *pending) error {
	w.wake = make(chan bool, 1)
	c.mu.Lock()
	c.queue = append(c.queue, w)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()
	if !lead && !<-w.wake {
		return w.err
	}
	c.mu.Lock()
	batch := c.queue
	c.queue = nil
	c.mu.Unlock()
	c.run(batch)
	for _, o := range batch {
		if o != w {
			o.wake <- false
		}
	}
	c.mu.Lock()
	if len(c.queue) > 0 {
		next := c.queue[0]
		c.mu.Unlock()
		next.wake <- true
	} else {
		c.busy = false
		c.mu.Unlock()
	}
	return w.err
}

// syncFiles syncs the batch's temp files at once, then renames (or, for
// PutIfAbsent, links) them in order.
func syncFiles(batch []*pending) {
	parallel(len(batch), func(i int) {
		w := batch[i]
		if err := w.f.Sync(); err != nil {
			w.err = fmt.Errorf("syncing %s: %w", w.tmp, err)
		}
		if err := w.f.Close(); err != nil && w.err == nil {
			w.err = err
		}
		if w.err != nil {
			_ = os.Remove(w.tmp)
		}
	})
	for _, w := range batch {
		if w.err == nil {
			w.place()
		}
	}
}

// syncDirs syncs each folder the batch's renames and new folders touched, once.
func syncDirs(batch []*pending) {
	dirs := map[string][]*pending{}
	var order []string
	for _, w := range batch {
		for _, d := range w.dirs {
			if _, ok := dirs[d]; !ok {
				order = append(order, d)
			}
			dirs[d] = append(dirs[d], w)
		}
	}
	errs := make([]error, len(order))
	parallel(len(order), func(i int) { errs[i] = syncDir(order[i]) })
	for i, err := range errs {
		if err == nil {
			continue
		}
		for _, w := range dirs[order[i]] {
			if w.err == nil {
				w.err = err
			}
		}
	}
}

// syncDir makes a folder's entries durable. A folder gone meanwhile (a
// concurrent Delete pruned it) has nothing left to sync.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening folder %s to sync it: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return nil
}

// parallel runs f(0..n-1) on up to syncParallel goroutines.
func parallel(n int, f func(int)) {
	if n <= 1 {
		f(0)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, syncParallel) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		})
	}
	wg.Wait()
}

// readHeader parses the header line; it leaves r at the first data byte.
func readHeader(r *bufio.Reader, key string) (header, error) {
	var h header
	line, err := r.ReadSlice('\n')
	if err != nil {
		return h, fmt.Errorf("fileblob: %q has no header line: %w", key, ErrCorrupt)
	}
	if err := json.Unmarshal(line, &h); err != nil || h.V != formatV1 {
		return h, fmt.Errorf("fileblob: %q has an unreadable header: %w", key, ErrCorrupt)
	}
	return h, nil
}

func (h header) attrs(key string) blob.Attributes {
	return blob.Attributes{Key: key, ContentType: h.ContentType, ETag: h.ETag, Size: h.Size, Modified: h.Modified}
}

func (s *Store) open(ctx context.Context, key string) (*os.File, *bufio.Reader, header, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, header{}, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, nil, header{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
			return nil, nil, header{}, fmt.Errorf("fileblob: %q: %w", key, blob.ErrNotFound)
		}
		return nil, nil, header{}, fmt.Errorf("fileblob: opening %q: %w", key, err)
	}
	r := bufio.NewReaderSize(f, maxHeader)
	h, err := readHeader(r, key)
	if err != nil {
		_ = f.Close()
		return nil, nil, header{}, err
	}
	return f, r, h, nil
}

// isNotDir reports ENOTDIR, which a path through a file yields; it cannot happen
// with the suffix layout but a hand-edited folder might produce it.
func isNotDir(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

// Get returns the object's bytes and attributes.
func (s *Store) Get(ctx context.Context, key string) ([]byte, blob.Attributes, error) {
	if s.wb != nil {
		if err := ctx.Err(); err != nil {
			return nil, blob.Attributes{}, err
		}
		if h, ok := s.wb.get(key); ok {
			return bytes.Clone(h.data), h.h.attrs(key), nil
		}
	}
	f, r, h, err := s.open(ctx, key)
	if err != nil {
		return nil, blob.Attributes{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, blob.Attributes{}, fmt.Errorf("fileblob: stat of %q: %w", key, err)
	}
	if h.Size < 0 || h.Size > st.Size() {
		return nil, blob.Attributes{}, fmt.Errorf("fileblob: %q claims %d bytes in a %d-byte file: %w", key, h.Size, st.Size(), ErrCorrupt)
	}
	data := bigalloc.Slice[byte](int(h.Size)) // huge pages for a gallery snapshot
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, blob.Attributes{}, fmt.Errorf("fileblob: %q is shorter than its header's %d bytes: %w", key, h.Size, ErrCorrupt)
	}
	return data, h.attrs(key), nil
}

// Head returns the attributes without reading the bytes.
func (s *Store) Head(ctx context.Context, key string) (blob.Attributes, error) {
	if s.wb != nil {
		if err := ctx.Err(); err != nil {
			return blob.Attributes{}, err
		}
		if h, ok := s.wb.get(key); ok {
			return h.h.attrs(key), nil
		}
	}
	f, _, h, err := s.open(ctx, key)
	if err != nil {
		return blob.Attributes{}, err
	}
	_ = f.Close()
	return h.attrs(key), nil
}

// List returns the objects whose keys start with prefix, sorted by key bytes as
// S3 sorts them. It walks only the folder the prefix's complete segments name.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start, keyBase := s.root, ""
	if i := strings.LastIndex(prefix, "/"); i > 0 && blob.ValidateKey(prefix[:i]) == nil {
		for seg := range strings.SplitSeq(prefix[:i], "/") {
			start = filepath.Join(start, seg+dirSuffix)
		}
		keyBase = prefix[:i+1]
	}
	// Held objects are taken before the walk: one written meanwhile is then
	// found by one or the other.
	var held map[string]blob.Attributes
	if s.wb != nil {
		held = s.wb.list(prefix)
	}
	out := []blob.Attributes{}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the folder vanished (pruned by Delete) or never existed
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != start && !strings.HasSuffix(name, dirSuffix) {
				return fs.SkipDir
			}
			return nil
		}
		// Temp files (".tmp-<base-36 digits>") never end in ".obj"; a key may start with ".tmp-".
		if !d.Type().IsRegular() || !strings.HasSuffix(name, objSuffix) {
			return nil
		}
		rel, err := filepath.Rel(start, p)
		if err != nil {
			return err
		}
		key := keyBase + keyOf(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		a, err := s.Head(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			return nil // deleted while we walked
		}
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fileblob: listing prefix %q: %w", prefix, err)
	}
	if len(held) > 0 {
		for _, a := range out {
			delete(held, a.Key) // found by the walk (Head answers for a held one)
		}
		for _, a := range held {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// keyOf turns a relative object path back into its key.
func keyOf(rel string) string {
	segs := strings.Split(filepath.ToSlash(rel), "/")
	for i, seg := range segs {
		if i < len(segs)-1 {
			segs[i] = strings.TrimSuffix(seg, dirSuffix)
		} else {
			segs[i] = strings.TrimSuffix(seg, objSuffix)
		}
	}
	return strings.Join(segs, "/")
}

// Delete removes the object and prunes folders it leaves empty; a missing key is
// not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	var rmErr error
	remove := func() bool {
		if s.wb == nil {
			rmErr = os.Remove(p)
			return rmErr == nil
		}
		// Under the writers' lock, after any rename of this key in progress,
		// so none puts a held version back.
		s.wb.mu.Lock()
		defer s.wb.mu.Unlock()
		s.wb.waitPlacedLocked(key)
		had := s.wb.forgetLocked(key)
		if rmErr = os.Remove(p); had && errors.Is(rmErr, fs.ErrNotExist) {
			rmErr = nil
		}
		return rmErr == nil
	}
	if s.log != nil {
		// Logged (not waited for) so a replay does not bring the object back
		// from an earlier record; without the log a Delete is not synced either.
		if _, err := s.log.appendPlaced(remove, encode(opDelete, key, nil, nil, time.Now())); err != nil && rmErr == nil {
			return fmt.Errorf("fileblob: deleting %q: %w", key, err)
		}
	} else {
		remove()
	}
	if err := rmErr; err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("fileblob: deleting %q: %w", key, err)
	}
	// Best effort: Remove fails on a folder that is not empty (or that a
	// concurrent Put just filled), which is where pruning stops.
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}
