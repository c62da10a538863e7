// Package memqueue is the in-process adapter of the queue port with SQS's standard
// queue semantics: at-least-once delivery, a visibility timeout per receive, a new
// receipt handle on every delivery, ApproximateReceiveCount, and a redrive to a
// dead-letter queue when a message would be received more than MaxReceiveCount
// times. It starts no goroutines: expiries are evaluated lazily on every call and a
// long-polling Receive waits on a channel plus a timer for the next expiry.
package memqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/facefleet/facefleet/internal/queue"
)

// Defaults; SQS's limits are the port's (queue.MaxWaitTime, ...).
const (
	DefaultVisibilityTimeout = 30 * time.Second
	// DefaultMaxMessageSize matches the 1 KiB queues of the course's SQS setup.
	DefaultMaxMessageSize = 1024
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("memqueue: queue is closed")

// Options configure a queue. The zero value is a 30 s visibility, 1 KiB queue
// without a dead-letter queue.
type Options struct {
	// Name shows up in errors; optional.
	Name string
	// VisibilityTimeout is the default for Receive (0: 30 s; at most 12 h).
	VisibilityTimeout time.Duration
	// MaxMessageSize is the largest body in bytes (0: 1024).
	MaxMessageSize int
	// DeadLetter receives messages that would be received for the
	// (MaxReceiveCount+1)th time. Nil: no redrive.
	DeadLetter *Queue
	// MaxReceiveCount is the redrive's maxReceiveCount (1..1000); required with
	// DeadLetter, ignored without.
	MaxReceiveCount int
	// Now replaces time.Now for timestamps and visibility deadlines (tests); long
	// poll waits still use real timers.
	Now func() time.Time
}

type state uint8

const (
	stateReady state = iota
	stateInFlight
	stateGone // deleted or moved to the dead-letter queue
)

type message struct {
	id           string
	body         string
	sentAt       time.Time
	receiveCount int
	handle       string // latest receipt handle; "" before the first receive
	visibleAt    time.Time
	state        state
}

// Queue is an in-memory SQS standard queue. It is safe for concurrent use.
type Queue struct {
	opts Options

	mu       sync.Mutex
	ready    []*message // visible messages, oldest first; may hold gone ones
	nReady   int
	inFlight map[*message]struct{}
	handles  map[string]*message // latest handle of each live message
	wake     chan struct{}       // closed and replaced when messages become visible
	closed   bool
	done     chan struct{}
}

var _ queue.Queue = (*Queue)(nil)

// New validates opts and returns an empty queue.
func New(opts Options) (*Queue, error) {
	if opts.VisibilityTimeout == 0 {
		opts.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if opts.VisibilityTimeout < 0 || opts.VisibilityTimeout > queue.MaxVisibilityTimeout {
		return nil, fmt.Errorf("memqueue: VisibilityTimeout %v must be in (0, 12h]: %w", opts.VisibilityTimeout, queue.ErrInvalidArgument)
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxMessageSize < 0 {
		return nil, fmt.Errorf("memqueue: MaxMessageSize %d must be positive: %w", opts.MaxMessageSize, queue.ErrInvalidArgument)
	}
	if opts.DeadLetter != nil && (opts.MaxReceiveCount < 1 || opts.MaxReceiveCount > 1000) {
		return nil, fmt.Errorf("memqueue: MaxReceiveCount %d must be 1..1000 with a DeadLetter queue: %w", opts.MaxReceiveCount, queue.ErrInvalidArgument)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Queue{
		opts:     opts,
		inFlight: make(map[*message]struct{}),
		handles:  make(map[string]*message),
		wake:     make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

// Close wakes every waiting Receive (they return ErrClosed) and makes every later
// call fail with ErrClosed. It is idempotent.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
	return nil
}

func (q *Queue) errClosed() error {
	if q.opts.Name != "" {
		return fmt.Errorf("memqueue %s: %w", q.opts.Name, ErrClosed)
	}
	return ErrClosed
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

// validBody applies SQS's character set: valid UTF-8 holding only #x9, #xA, #xD,
// #x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF.
func validBody(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD:
		case r >= 0x20 && r <= 0xD7FF:
		case r >= 0xE000 && r <= 0xFFFD:
		case r >= 0x10000 && r <= 0x10FFFF:
		default:
			return false
		}
	}
	return true
}

// Send enqueues body and returns the new message's ID.
func (q *Queue) Send(ctx context.Context, body string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if len(body) > q.opts.MaxMessageSize {
		return "", fmt.Errorf("memqueue: body of %d bytes exceeds the %d-byte limit: %w", len(body), q.opts.MaxMessageSize, queue.ErrTooLarge)
	}
	if !validBody(body) {
		return "", fmt.Errorf("memqueue: rejecting body: %w", queue.ErrInvalidBody)
	}
	m := &message{id: newID(), body: body, sentAt: q.opts.Now()}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return "", q.errClosed()
	}
	q.pushReadyLocked(m)
	return m.id, nil
}

// enqueueMoved adds a message redriven from a source queue, keeping its ID, sent
// time and receive count as SQS does.
func (q *Queue) enqueueMoved(m *message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	m.handle = ""
	q.pushReadyLocked(m)
}

func (q *Queue) pushReadyLocked(m *message) {
	m.state = stateReady
	q.ready = append(q.ready, m)
	q.nReady++
	close(q.wake)
	q.wake = make(chan struct{})
}

// expireLocked returns in-flight messages whose visibility ended to the ready list
// and reports the earliest pending deadline (zero when none).
func (q *Queue) expireLocked(now time.Time) (next time.Time) {
	for m := range q.inFlight {
		if !m.visibleAt.After(now) {
			delete(q.inFlight, m)
			q.pushReadyLocked(m)
			continue
		}
		if next.IsZero() || m.visibleAt.Before(next) {
			next = m.visibleAt
		}
	}
	return next
}

// Receive returns up to opts.MaxMessages visible messages, waiting up to
// opts.WaitTime for the first one. Each returned message gets a new receipt handle
// and stays invisible for the visibility timeout.
func (q *Queue) Receive(ctx context.Context, opts queue.ReceiveOptions) ([]queue.Message, error) {
	maxN, err := opts.Check()
	if err != nil {
		return nil, fmt.Errorf("memqueue: %w", err)
	}
	vis := opts.VisibilityTimeout
	if vis == 0 {
		vis = q.opts.VisibilityTimeout
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(opts.WaitTime)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, q.errClosed()
		}
		now := q.opts.Now()
		next := q.expireLocked(now)
		msgs, moved := q.takeLocked(maxN, vis, now)
		wake := q.wake
		q.mu.Unlock()
		// Redrive outside our lock so two queues never hold each other's locks.
		for _, m := range moved {
			q.opts.DeadLetter.enqueueMoved(m)
		}
		if len(msgs) > 0 {
			return msgs, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		if !next.IsZero() {
			if d := next.Sub(now); d < left {
				left = d
			}
		}
		if timer == nil {
			timer = time.NewTimer(left)
		} else {
			timer.Reset(left)
		}
		select {
		case <-wake:
		case <-timer.C:
		case <-q.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// takeLocked pops up to n ready messages, redriving those past MaxReceiveCount.
func (q *Queue) takeLocked(n int, vis time.Duration, now time.Time) (out []queue.Message, moved []*message) {
	for len(out) < n && len(q.ready) > 0 {
		m := q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		if m.state != stateReady {
			continue // deleted while it sat in the ready list
		}
		q.nReady--
		if m.handle != "" {
			delete(q.handles, m.handle)
			m.handle = ""
		}
		if q.opts.DeadLetter != nil && m.receiveCount >= q.opts.MaxReceiveCount {
			m.state = stateGone
			moved = append(moved, m)
			continue
		}
		m.receiveCount++
		m.handle = m.id + "." + newID()
		m.state = stateInFlight
		m.visibleAt = now.Add(vis)
		q.handles[m.handle] = m
		q.inFlight[m] = struct{}{}
		out = append(out, queue.Message{ID: m.id, Body: m.body, ReceiptHandle: m.handle, ReceiveCount: m.receiveCount, SentAt: m.sentAt})
	}
	if len(q.ready) == 0 {
		q.ready = nil // let the backing array go
	}
	return out, moved
}

// Delete removes the message whose latest receipt handle is receiptHandle. As in
// SQS, an unknown or stale handle (already deleted, or the message was received
// again since) is not an error; the message then stays and is delivered again.
func (q *Queue) Delete(ctx context.Context, receiptHandle string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if receiptHandle == "" {
		return fmt.Errorf("memqueue: empty receipt handle: %w", queue.ErrInvalidReceipt)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.errClosed()
	}
	m, ok := q.handles[receiptHandle]
	if !ok {
		return nil
	}
	delete(q.handles, receiptHandle)
	switch m.state {
	case stateInFlight:
		delete(q.inFlight, m)
	case stateReady: // visibility ran out but nobody received it again yet
		q.nReady--
	}
	m.state = stateGone
	return nil
}

// ChangeVisibility sets an in-flight message's remaining invisibility to d from
// now (0: visible at once). The handle must be the latest one of a message that
// is still in flight, else ErrInvalidReceipt.
func (q *Queue) ChangeVisibility(ctx context.Context, receiptHandle string, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := queue.CheckVisibility(d); err != nil {
		return fmt.Errorf("memqueue: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.errClosed()
	}
	now := q.opts.Now()
	q.expireLocked(now)
	m, ok := q.handles[receiptHandle]
	if !ok || m.state != stateInFlight {
		return fmt.Errorf("memqueue: message is not in flight under this receipt handle: %w", queue.ErrInvalidReceipt)
	}
	if d == 0 {
		delete(q.inFlight, m)
		q.pushReadyLocked(m)
		return nil
	}
	m.visibleAt = now.Add(d)
	return nil
}

// Counts reports visible and in-flight messages (exact here; SQS's are approximate).
func (q *Queue) Counts(ctx context.Context) (queue.Counts, error) {
	if err := ctx.Err(); err != nil {
		return queue.Counts{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return queue.Counts{}, q.errClosed()
	}
	q.expireLocked(q.opts.Now())
	return queue.Counts{Visible: q.nReady, InFlight: len(q.inFlight)}, nil
}
