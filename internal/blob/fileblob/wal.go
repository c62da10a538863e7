package fileblob

// The write-ahead log (Options.Log).
//
// Without it a durable Put costs the sync of its file, of its folder and of
// every folder it created (~1.5 ms on the development VM's disk, most of it
// journal commits for the folder entries), and a request writes two such
// objects. With it a Put of a small object writes its file and renames it
// without syncing (with write-behind, only holds it for a background writer),
// then appends one record (the key, the file's header line and the bytes) to
// the log; it returns once the log is synced up to its record. One fdatasync
// covers every record appended meanwhile (group commit), and appending to an
// open file needs no folder sync at all.
//
// States of the log, all under <root>/.wal (which List never shows: its name
// has no ".d" suffix):
//
//	seg-<n>    the current segment: records appended in the order their
//	           objects were placed, so a replay ends with the same winner as
//	           the folder had for each key.
//	checkpoint every Options.CheckpointEvery (1 s) while there are records:
//	           the segment is synced and a fresh one started (its folder entry
//	           synced before any record in it is acknowledged); then, off the
//	           write path, with write-behind (behind.go) the objects held before
//	           the rotation are written, the whole file system is synced
//	           (syncfs(2); sync(2) elsewhere), which makes every object placed
//	           before the rotation durable in its own file, and only then the
//	           old segment is deleted and the deletion synced.
//	replay     New with Log replays every segment left (a crash between a
//	           record's sync and its checkpoint): a put is written again unless
//	           the key's file already holds it or something newer (its header's
//	           modification time is later), a delete is done again unless the
//	           key was written after it; then the file system is synced and
//	           the segments deleted. A torn record (a length or CRC-32C that
//	           does not check) ends its segment: it was never acknowledged.
//
// Objects over maxLogged bytes (gallery snapshots) take the direct path (their
// own syncs): copying them into the log would double the bytes written for
// little gain. Once such a write is durable a marker record says so, and a
// replay redoes only each key's last record, so a stale record never
// overwrites it. A Delete appends its record without waiting for the sync, as a
// Delete without the log does not sync either.
//
// One store per folder: the log is locked with flock(2), and New with Log
// fails while another store (in this or another process) holds it. Stores
// without Log may share the folder; replay's time comparison keeps their newer
// writes.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	walDirName = ".wal"
	segPrefix  = "seg-"
	// maxLogged is the largest object a Put sends through the log.
	maxLogged = 1 << 20
	// DefaultCheckpointEvery is Options.CheckpointEvery's default: a second of
	// records is at most a second of replay after a crash, and one syncfs a
	// second costs far less than the fsyncs it replaces.
	DefaultCheckpointEvery = time.Second
	// opDirect marks a key written by the direct path (a big object, synced
	// in its own file) after that write is durable: the key's earlier records
	// are not replayed over it.
	opPut, opDelete, opDirect = 'P', 'D', 'S'

	recHeader = 8 // 4-byte length, 4-byte CRC-32C of the payload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// wal is the store's log. mu orders placing objects and appending their
// records; smu guards the group sync.
type wal struct {
	dir   string
	root  string
	every time.Duration
	lock  *os.File

	mu        sync.Mutex
	seg       *os.File
	segN      uint64
	segBytes  int64
	pos       int64 // bytes appended since open, over all segments
	old       []string
	scheduled bool
	// errp is sticky: the log cannot be trusted after a failed write or sync
	// (read under either lock, so atomic; see failed and fail).
	errp atomic.Pointer[error]

	smu     sync.Mutex
	cond    *sync.Cond
	durable int64
	syncing bool
	syncs   int // fdatasyncs led so far (tests count them)

	replayed int
	// held, with write-behind: a checkpoint waits for the objects held before
	// its rotation to be written before it syncs and deletes their records.
	held *behind
}

// openWAL locks the log, replays what a crash left and starts a segment.
func openWAL(s *Store, every time.Duration) (*wal, error) {
	l := &wal{dir: filepath.Join(s.root, walDirName), root: s.root, every: every}
	l.cond = sync.NewCond(&l.smu)
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("fileblob: creating the log folder: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(l.dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("fileblob: opening the log lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("fileblob: the write-ahead log in %s is held by another store (another facefleet on this data folder?): %w", l.dir, err)
	}
	l.lock = lock
	segs, err := l.segments()
	if err == nil {
		err = l.replay(s, segs)
	}
	if err == nil && len(segs) > 0 {
		l.segN = segs[len(segs)-1].n
	}
	if err == nil {
		err = l.rotateLocked()
	}
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	return l, nil
}

type segment struct {
	n    uint64
	path string
}

func (l *wal) segments() ([]segment, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("fileblob: reading the log folder: %w", err)
	}
	var out []segment
	for _, e := range ents {
		if n, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), segPrefix), 10, 64); err == nil && strings.HasPrefix(e.Name(), segPrefix) {
			out = append(out, segment{n, filepath.Join(l.dir, e.Name())})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out, nil
}

// rotateLocked syncs the current segment (if any), starts the next one and
// syncs the log folder so the new segment's name survives a crash. Called
// with mu held (or before the store is shared).
func (l *wal) rotateLocked() error {
	if l.seg != nil {
		if err := syncData(l.seg); err != nil {
			return fmt.Errorf("fileblob: syncing log segment %s: %w", l.seg.Name(), err)
		}
		l.old = append(l.old, l.seg.Name())
	}
	l.segN++
	f, err := os.OpenFile(filepath.Join(l.dir, fmt.Sprintf("%s%020d", segPrefix, l.segN)), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("fileblob: starting a log segment: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		_ = f.Close()
		return err
	}
	prev := l.seg
	l.seg, l.segBytes = f, 0
	l.markDurable(l.pos)
	if prev != nil {
		// A sync leader may still hold the old segment; close it once no sync
		// runs (every record in it is durable already).
		go func() {
			l.smu.Lock()
			for l.syncing {
				l.cond.Wait()
			}
			_ = prev.Close()
			l.smu.Unlock()
		}()
	}
	return nil
}

func (l *wal) markDurable(pos int64) {
	l.smu.Lock()
	if pos > l.durable {
		l.durable = pos
	}
	l.cond.Broadcast()
	l.smu.Unlock()
}

// encode builds a record: length, CRC-32C, then the payload (op, key, and for
// a put the header line and the bytes; for a delete its time).
func encode(op byte, key string, line, data []byte, at time.Time) []byte {
	p := make([]byte, recHeader, recHeader+1+2*binary.MaxVarintLen64+len(key)+len(line)+len(data)+8)
	p = append(p, op)
	p = binary.AppendUvarint(p, uint64(len(key)))
	p = append(p, key...)
	switch op {
	case opPut:
		p = binary.AppendUvarint(p, uint64(len(line)))
		p = append(p, line...)
		p = append(p, data...)
	case opDelete:
		p = binary.BigEndian.AppendUint64(p, uint64(at.UnixNano()))
	}
	binary.BigEndian.PutUint32(p[0:4], uint32(len(p)-recHeader))
	binary.BigEndian.PutUint32(p[4:8], crc32.Checksum(p[recHeader:], castagnoli))
	return p
}

// appendPlaced runs place (which puts the object in its file) and, when it
// placed something, appends rec, both under mu so records follow the order
// in which objects were placed. It returns the log position to wait for.
func (l *wal) appendPlaced(place func() bool, rec []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failed(); err != nil {
		return 0, err
	}
	if !place() {
		return l.pos, nil
	}
	n, err := l.seg.Write(rec)
	l.pos += int64(n)
	l.segBytes += int64(n)
	if err != nil {
		return 0, l.fail(fmt.Errorf("fileblob: appending to the write-ahead log: %w (restart to replay it)", err))
	}
	if !l.scheduled {
		l.scheduled = true
		time.AfterFunc(l.every, l.checkpoint)
	}
	return l.pos, nil
}

// failed is the log's sticky error, if any.
func (l *wal) failed() error {
	if p := l.errp.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err as the sticky error unless one is recorded, and returns
// the recorded one.
func (l *wal) fail(err error) error {
	l.errp.CompareAndSwap(nil, &err)
	return l.failed()
}

// position is the log's end: waiting for it makes every record so far durable.
func (l *wal) position() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pos
}

// waitDurable returns once the log is synced up to pos. The first waiter
// finding no sync running leads one, covering everything appended by then.
func (l *wal) waitDurable(pos int64) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	for l.durable < pos {
		if err := l.failed(); err != nil {
			return err
		}
		if l.syncing {
			l.cond.Wait()
			continue
		}
		l.syncing = true
		l.smu.Unlock()
		l.mu.Lock()
		f, target := l.seg, l.pos
		l.mu.Unlock()
		lerr := l.failed()
		err := lerr
		if err == nil {
			// Let the goroutines this one readied run first (the app tier's
			// answer wakes the web tier's dispatcher, queued to run next on
			// this P): fdatasync blocks the thread, and the runtime takes a
			// P back from a blocking system call only after a while, so they
			// would wait for a sync they do not need (measured: 0.65-0.8 ms
			// of the 1.3 ms overhead one request at a time).
			runtime.Gosched()
			err = syncData(f)
		}
		if err != nil && lerr == nil {
			err = l.fail(fmt.Errorf("fileblob: syncing the write-ahead log: %w (restart to replay it)", err))
		}
		l.smu.Lock()
		l.syncing = false
		l.syncs++
		if err == nil && target > l.durable {
			l.durable = target
		}
		l.cond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkpoint rotates the segment, syncs the file system and deletes the
// segments it made redundant; it reschedules itself while records arrive.
func (l *wal) checkpoint() {
	l.mu.Lock()
	if l.failed() != nil || l.segBytes == 0 && len(l.old) == 0 {
		l.scheduled = false
		l.mu.Unlock()
		return
	}
	if l.segBytes > 0 {
		if err := l.rotateLocked(); err != nil {
			l.fail(fmt.Errorf("%w (restart to replay the log)", err))
			l.scheduled = false
			l.mu.Unlock()
			l.markDurable(0) // wake waiters to see the error
			return
		}
	}
	old := l.old
	var upTo uint64
	if l.held != nil {
		upTo = l.held.sequence() // every hold with a record in old is at or before it
	}
	l.mu.Unlock()

	var err error
	if l.held != nil && upTo > 0 {
		err = l.held.flush(upTo)
	}
	if err == nil {
		err = syncFS(l.root)
	}
	if err == nil {
		for _, p := range old {
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = rerr
			}
		}
		if err == nil {
			err = syncDir(l.dir)
		}
	}
	l.mu.Lock()
	if err == nil {
		l.old = l.old[len(old):]
	}
	// Failed: the old segments stay and the next checkpoint tries again.
	if l.segBytes > 0 || len(l.old) > 0 {
		time.AfterFunc(l.every, l.checkpoint)
	} else {
		l.scheduled = false
	}
	l.mu.Unlock()
}

// record is one decoded log record.
type record struct {
	op   byte
	key  string
	line []byte
	data []byte
	at   time.Time
}

// decode reads the records of one segment, stopping at the first torn one.
func decode(b []byte) []record {
	var out []record
	for len(b) >= recHeader {
		n := int(binary.BigEndian.Uint32(b[0:4]))
		if n <= 0 || n > len(b)-recHeader || crc32.Checksum(b[recHeader:recHeader+n], castagnoli) != binary.BigEndian.Uint32(b[4:8]) {
			break
		}
		p := b[recHeader : recHeader+n]
		b = b[recHeader+n:]
		r, ok := parseRecord(p)
		if !ok {
			break
		}
		out = append(out, r)
	}
	return out
}

func parseRecord(p []byte) (record, bool) {
	var r record
	if len(p) < 2 {
		return r, false
	}
	r.op, p = p[0], p[1:]
	kl, k := binary.Uvarint(p)
	if k <= 0 || kl > uint64(len(p)-k) {
		return r, false
	}
	r.key, p = string(p[k:k+int(kl)]), p[k+int(kl):]
	switch r.op {
	case opPut:
		ll, k := binary.Uvarint(p)
		if k <= 0 || ll > uint64(len(p)-k) {
			return r, false
		}
		r.line, r.data = p[k:k+int(ll)], p[k+int(ll):]
	case opDelete:
		if len(p) != 8 {
			return r, false
		}
		r.at = time.Unix(0, int64(binary.BigEndian.Uint64(p)))
	case opDirect:
		if len(p) != 0 {
			return r, false
		}
	default:
		return r, false
	}
	return r, true
}

// replay redoes the segments' records (see the package comment), syncs the
// file system and removes them.
func (l *wal) replay(s *Store, segs []segment) error {
	if len(segs) == 0 {
		return nil
	}
	// Only each key's last record decides its state: records follow the order
	// in which objects were placed, so the last one is what the folder held.
	var recs []record
	for _, sg := range segs {
		b, err := os.ReadFile(sg.path)
		if err != nil {
			return fmt.Errorf("fileblob: reading log segment %s: %w", sg.path, err)
		}
		recs = append(recs, decode(b)...)
	}
	last := make(map[string]int, len(recs))
	for i, r := range recs {
		last[r.key] = i
	}
	for i, r := range recs {
		if last[r.key] != i {
			continue
		}
		if err := s.redo(r); err != nil {
			return fmt.Errorf("fileblob: replaying %q: %w", r.key, err)
		}
		l.replayed++
	}
	if err := syncFS(l.root); err != nil {
		return fmt.Errorf("fileblob: syncing the replayed objects: %w", err)
	}
	for _, sg := range segs {
		if err := os.Remove(sg.path); err != nil {
			return fmt.Errorf("fileblob: removing replayed log segment: %w", err)
		}
	}
	return syncDir(l.dir)
}

// redo applies one replayed record unless the key's file is newer.
func (s *Store) redo(r record) error {
	p, err := s.path(r.key)
	if err != nil {
		return err
	}
	f, _, cur, curErr := s.open(context.Background(), r.key)
	if curErr == nil {
		_ = f.Close()
	}
	switch r.op {
	case opDirect:
		return nil // durable in its own file
	case opDelete:
		if curErr == nil && cur.Modified.After(r.at) {
			return nil // written again after the delete
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	default:
		var h header
		if err := json.Unmarshal(bytes.TrimSuffix(r.line, []byte("\n")), &h); err != nil {
			return fmt.Errorf("record header: %w", err)
		}
		if curErr == nil && (cur.ETag == h.ETag || cur.Modified.After(h.Modified)) {
			return nil // holds it already, or something newer
		}
		// No sync: replay syncs the file system once at the end.
		w, err := s.writeTemp(p, r.line, r.data, false)
		if err != nil {
			return err
		}
		w.place()
		return w.err
	}
}

// errClosed is the log's sticky error once the store is closed.
var errClosed = errors.New("fileblob: the store is closed")

// close makes every record redundant (one last sync of the file system),
// removes the segments and releases the lock; with keep it only syncs and
// releases (held objects could not be written: the next open replays them).
// Writes after it fail.
func (l *wal) close(keep bool) error {
	l.mu.Lock()
	if l.failed() == errClosed {
		l.mu.Unlock()
		return nil
	}
	prevErr := l.failed()
	l.errp.Store(&errClosed)
	seg, old, pos := l.seg, l.old, l.pos
	l.mu.Unlock()
	l.markDurable(0) // waiters see the store closed

	err := prevErr
	if err == nil {
		err = syncData(seg)
	}
	if err == nil {
		l.markDurable(pos)
		err = syncFS(l.root)
	}
	if err == nil && !keep {
		for _, p := range append(old, seg.Name()) {
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
				err = rerr
			}
		}
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	// On an error the segments stay for the next open to replay.
	l.smu.Lock()
	for l.syncing {
		l.cond.Wait()
	}
	_ = seg.Close()
	l.smu.Unlock()
	if cerr := l.lock.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fileblob: closing the write-ahead log: %w", err)
	}
	return nil
}
