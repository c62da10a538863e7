package fileblob

// Write-behind (Options.WriteBehind).
//
// Creating a file costs 0.2-1 ms on the development VM's disk even without a
// sync, and the embedded service creates three per request (the upload, the
// result, the record) while its caller waits. With write-behind a Put keeps
// the object in memory (and, with the log, appends its record and waits for
// its sync as before) and returns; background writers make the file later.
// This store's Get, Head and List see a held object at once; other processes
// on the folder see it once its file is written (milliseconds). A held object
// is durable exactly as without write-behind: with the log its record is; with
// NoSync nothing is.
//
//	held     Put: the object is in objs (the newest version per key) and its key
//	         in a writer's queue (the key's hash picks the writer, so one key's
//	         versions are written in order, and a queue holds a key once per Put).
//	written  a writer takes the key's newest version, writes its temp file,
//	         and under mu renames it into place and drops it from objs, unless
//	         a newer Put or a Delete replaced it meanwhile (then the temp file is
//	         removed). Writers run only while their queue has keys.
//	recent   a written version stays in memory for this store's Get and Head
//	         (a quarter of Options.WriteBehindBytes, oldest out first) until a
//	         Put, Delete or direct write of its key; a direct write that began
//	         before the writer's rename ends keeps it out (directEpoch).
//	full     over Options.WriteBehindBytes held (64 MiB), or after a writer failed, a Put
//	         writes its file itself (the direct path); first any held version of
//	         its key is written (with the log: its record may be checkpointed
//	         away) or taken out of objs (without), so no writer puts it back over.
//
// The log's checkpoint waits until every object held when it rotated the log
// is written, before the file-system sync that lets it delete the old segment;
// Close writes everything held. A writer that fails keeps its object held (a
// Get still finds it) and retries after behindRetry; until one succeeds, Puts
// take the direct path so the error reaches a caller.

import (
	"container/list"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

const (
	behindWriters = 2
	// DefaultWriteBehindBytes is Options.WriteBehindBytes' default: results
	// are bytes and uploads rarely over a few MiB, and the writers empty the
	// map within milliseconds, so this is only reached when the disk stalls;
	// it bounds what the service holds on top of the web tier's own upload
	// budget (-max-inflight-bytes).
	DefaultWriteBehindBytes = 64 << 20
	behindRetry             = time.Second
)

type held struct {
	h    header
	line []byte
	data []byte
	seq  uint64
}

type behind struct {
	s     *Store
	limit int64
	seed  maphash.Seed

	mu      sync.Mutex
	cond    *sync.Cond // broadcast when an object is written or a writer fails
	objs    map[string]*held
	placing map[string]bool // keys a writer is renaming into place (outside mu)
	// beforePlace, set only by tests, runs just before a writer's rename: it
	// widens the window in which a Delete or direct write meets the rename.
	beforePlace func()
	afterPlace  func() // likewise, just after it: a direct write meets the writer's remember
	// afterBeginDirect, set only by tests, runs as a direct write starts.
	afterBeginDirect func()
	bytes            int64
	// recent keeps the objects written last, in memory, for Get and Head:
	// an app-tier worker reads an upload from milliseconds to seconds after
	// its Put, and on the development VM opening and reading a file costs
	// more CPU than copying its bytes (measured: 1.7 % of the service's CPU
	// in a 1000 burst). Bounded by recentLimit bytes, oldest out first;
	// every change of a key (Put, Delete, a direct write) drops its entry.
	recent      map[string]*list.Element // of *recentCopy, in recentOrder
	recentOrder list.List                // oldest first
	recentBytes int64
	recentLimit int64
	directEpoch uint64 // advanced by beginDirect and endDirect
	seq         uint64
	queue       [behindWriters][]string
	running     [behindWriters]bool
	err         error // the last writer failure, until a write succeeds
	closed      bool
}

func newBehind(s *Store, limit int64) *behind {
	b := &behind{s: s, limit: limit, seed: maphash.MakeSeed(), objs: map[string]*held{}, placing: map[string]bool{},
		recent: map[string]*list.Element{}, recentLimit: limit / 4}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// accepts reports whether a Put of n bytes may be held.
func (b *behind) accepts(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.closed && b.err == nil && b.bytes+int64(n) <= b.limit
}

// hold keeps the object and queues its key. Called with the log's mu held
// when the log is on (records and holds in one order).
func (b *behind) hold(key string, h header, line, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.dropRecentLocked(key)
	if old := b.objs[key]; old != nil {
		b.bytes -= int64(len(old.data))
	}
	b.objs[key] = &held{h: h, line: line, data: data, seq: b.seq}
	b.bytes += int64(len(data))
	b.enqueueLocked(int(maphash.String(b.seed, key)%behindWriters), key)
}

// enqueueLocked queues key for writer i, starting the writer if it is not
// running. Called with mu held.
func (b *behind) enqueueLocked(i int, key string) {
	b.queue[i] = append(b.queue[i], key)
	if !b.running[i] {
		b.running[i] = true
		go b.write(i)
	}
}

// forget drops key's held version (a Delete, or a Put taking the direct
// path); a writer holding it removes its temp file instead of placing it.
// It reports whether there was one. Called with mu held.
func (b *behind) forgetLocked(key string) bool {
	b.dropRecentLocked(key)
	old := b.objs[key]
	if old == nil {
		return false
	}
	delete(b.objs, key)
	b.bytes -= int64(len(old.data))
	b.cond.Broadcast()
	return true
}

// recentCopy is an entry of recent.
type recentCopy struct {
	key string
	h   *held
}

// rememberLocked keeps h, just written as key's file, in recent, dropping
// the oldest entries past recentLimit. Called with mu held.
func (b *behind) rememberLocked(key string, h *held) {
	if int64(len(h.data)) > b.recentLimit {
		return
	}
	b.dropRecentLocked(key)
	b.recent[key] = b.recentOrder.PushBack(&recentCopy{key: key, h: h})
	b.recentBytes += int64(len(h.data))
	for b.recentBytes > b.recentLimit {
		b.dropRecentLocked(b.recentOrder.Front().Value.(*recentCopy).key)
	}
}

// dropRecentLocked forgets key's written copy. Called with mu held.
func (b *behind) dropRecentLocked(key string) {
	if e := b.recent[key]; e != nil {
		delete(b.recent, key)
		b.recentOrder.Remove(e)
		b.recentBytes -= int64(len(e.Value.(*recentCopy).h.data))
	}
}

// beginDirect and endDirect bracket a write of key's file that bypasses the
// writers (the direct path, PutIfAbsent): both drop key's copy in recent, and
// the epoch they advance stops a writer whose rename raced with the direct
// write from remembering its (possibly overwritten) version.
func (b *behind) beginDirect(key string) {
	b.mu.Lock()
	b.directLocked(key)
	hook := b.afterBeginDirect
	b.mu.Unlock()
	if hook != nil {
		hook()
	}
}

func (b *behind) endDirect(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.directLocked(key)
}

func (b *behind) directLocked(key string) {
	b.directEpoch++
	b.dropRecentLocked(key)
}

func (b *behind) forget(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waitPlacedLocked(key)
	return b.forgetLocked(key)
}

// waitPlacedLocked waits while a writer renames key's file into place, so a
// Delete or a direct write that follows cannot be overtaken by that rename.
// Called with mu held.
func (b *behind) waitPlacedLocked(key string) {
	for b.placing[key] {
		b.cond.Wait()
	}
}

// settle waits until key has no held version (its writer wrote it), or a
// writer failed. A direct write waits for it with the log on: forgetting a
// held version instead could let a checkpoint delete its record while its
// file was never written, losing an acknowledged object if the direct write
// then did not finish before a crash.
func (b *behind) settle(key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.objs[key] != nil {
		if b.err != nil {
			return b.err
		}
		b.cond.Wait()
	}
	return nil
}

// get returns key's held version, or its copy in recent.
func (b *behind) get(key string) (*held, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.objs[key]; ok {
		return h, ok
	}
	if e, ok := b.recent[key]; ok {
		return e.Value.(*recentCopy).h, true
	}
	return nil, false
}

// list returns the attributes of the held objects under prefix.
func (b *behind) list(prefix string) map[string]blob.Attributes {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]blob.Attributes{}
	for k, h := range b.objs {
		if strings.HasPrefix(k, prefix) {
			out[k] = h.h.attrs(k)
		}
	}
	return out
}

// write is writer i: it writes the newest version of each queued key until
// its queue is empty.
func (b *behind) write(i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue[i]) > 0 {
		key := b.queue[i][0]
		b.queue[i] = b.queue[i][1:]
		h := b.objs[key]
		if h == nil {
			continue // written by an earlier turn, or deleted
		}
		b.mu.Unlock()
		err := b.writeOne(key, h)
		b.mu.Lock()
		if err != nil {
			b.err = fmt.Errorf("fileblob: writing held object %q: %w", key, err)
			b.cond.Broadcast()
			if b.objs[key] == h {
				// Kept (a Get still finds it); tried again later.
				time.AfterFunc(behindRetry, func() { b.requeue(i, key) })
			}
			continue
		}
		b.err = nil
	}
	b.running[i] = false
}

func (b *behind) requeue(i int, key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return // Close reported the failure; the log keeps the object
	}
	b.enqueueLocked(i, key)
}

// writeOne writes h's temp file and, if h is still key's held version,
// renames it into place and drops it from objs (unless a newer Put replaced
// it during the rename).
func (b *behind) writeOne(key string, h *held) error {
	p, err := b.s.path(key)
	if err != nil {
		return err
	}
	var w *pending
	for attempt := 0; ; attempt++ {
		w, err = b.s.writeTemp(p, h.line, h.data, false)
		if err == nil || !errors.Is(err, os.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.objs[key] != h {
		b.mu.Unlock()
		_ = os.Remove(w.tmp) // replaced or deleted meanwhile
		return nil
	}
	// The rename runs outside mu: while the file system commits its journal
	// (the log's checkpoint syncs it) a rename can take milliseconds, and
	// every Put would wait for it. A Delete or direct write of this key waits
	// for it instead (waitPlacedLocked); a newer Put just replaces h in objs.
	b.placing[key] = true
	epoch := b.directEpoch
	pause, after := b.beforePlace, b.afterPlace
	b.mu.Unlock()
	if pause != nil {
		pause()
	}
	w.place()
	if after != nil {
		after()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.placing, key)
	b.cond.Broadcast()
	if w.err != nil {
		return w.err
	}
	if b.objs[key] == h {
		b.forgetLocked(key)
		if b.directEpoch == epoch {
			b.rememberLocked(key, h)
		}
	}
	return nil
}

// flush waits until no object held at sequence upTo or before is left
// unwritten (0: everything held now). It returns early with a writer's
// error.
func (b *behind) flush(upTo uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if upTo == 0 {
		upTo = b.seq
	}
	for {
		oldest := uint64(0)
		for _, h := range b.objs {
			if oldest == 0 || h.seq < oldest {
				oldest = h.seq
			}
		}
		if oldest == 0 || oldest > upTo {
			return nil
		}
		if b.err != nil {
			return b.err
		}
		b.cond.Wait()
	}
}

// sequence is the newest hold's number.
func (b *behind) sequence() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// close refuses new holds and writes everything held.
func (b *behind) close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.flush(0)
}
