// Package webtier is the HTTP front of facefleet (Fiber v2). An upload is stored in
// the input store under its file name, a small request naming the object's key and
// ETag goes on the request queue, and the caller waits until the one response
// dispatcher of this web tier routes the matching answer back by request ID.
//
// The dispatcher deletes every response it receives: answers for callers that gave
// up (late), second answers (duplicate, after a redelivery) and answers for IDs this
// web tier never issued (foreign) are logged and counted, never delivered to anyone
// else. It also drains the request dead-letter queue: a request that failed too
// often is recorded in the output store under failed/<stem>.json and its caller gets
// a 502 at once instead of waiting for the timeout. One web tier owns one response
// queue, and every request names it (reply-to), so several web tiers can share
// the request queue and its dead-letter queue: a dead-lettered request of another
// tier is recorded and its 502 answer is sent to that tier's response queue.
package webtier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/scaling"
)

// Subject is one enrolled person as GET /v1/subjects lists it.
type Subject struct {
	Name  string `json:"name"`
	Faces int    `json:"faces"`
}

// Limits bound what a caller may ask; every one answers with a clear status.
type Limits struct {
	// MaxBodyBytes is the largest request body (413). Default 10 MiB.
	MaxBodyBytes int
	// MaxPixels is the largest width*height an upload may declare (413).
	// Default 40 megapixels.
	MaxPixels int
	// MaxPending is how many uploads may wait for an answer at once (503 with
	// Retry-After beyond it). Default 2000.
	MaxPending int
	// RequestTimeout is how long a caller waits for an answer (504). Zero
	// derives it from the request queue (see MinRequestTimeout), so that a
	// request that keeps crashing its workers gets its 502 from the dead-letter
	// queue before its caller's 504; without Options.Visibility the default is
	// 60 s. A value shorter than MinRequestTimeout is refused.
	RequestTimeout time.Duration
	// RetryAfter is the Retry-After sent with 503. Default 1 s.
	RetryAfter time.Duration
	// MaxInflightBytes bounds the upload bytes held in memory at once: an
	// upload is charged its Content-Length (MaxBodyBytes when it is chunked)
	// from before its body is read until the image is in the input store;
	// beyond it the upload gets 503 with Retry-After, unread. Waiting for the
	// answer costs no upload bytes. Default 256 MiB.
	MaxInflightBytes int64
	// ClientCheckEvery is how often a waiting caller's connection is checked;
	// a caller that went away frees its slot at once (its request stays
	// queued and its result still lands). Default 1 s.
	ClientCheckEvery time.Duration
}

func (l *Limits) defaults() {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = settings.DefaultMaxBody
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = settings.DefaultMaxPixels
	}
	if l.MaxPending <= 0 {
		l.MaxPending = settings.DefaultMaxPending
	}
	if l.RetryAfter <= 0 {
		l.RetryAfter = time.Second
	}
	if l.MaxInflightBytes <= 0 {
		l.MaxInflightBytes = settings.DefaultMaxInflightBytes
	}
	if l.ClientCheckEvery <= 0 {
		l.ClientCheckEvery = time.Second
	}
}

// Options configure a Server.
type Options struct {
	Requests   queue.Queue
	Responses  queue.Queue
	RequestDLQ queue.Queue // optional but strongly advised
	Inputs     blob.Store
	Outputs    blob.Store
	// ReplyTo is the address of Responses (an SQS queue URL, a memqueue name)
	// that every request carries, so workers answer this tier and no other.
	// Empty: requests carry none and workers answer on their default queue
	// (fine for a single web tier).
	ReplyTo string
	// ReplyQueue resolves another tier's reply-to address, so that the
	// dead-letter watcher can send that tier's callers their 502. Without it
	// (or when it fails) another tier's dead letter is left for that tier.
	ReplyQueue func(addr string) (queue.Queue, error)

	// Gallery is the shared gallery this tier edits (gallery.Store: a journal
	// in the output store that any number of web tiers append to). Nil: the
	// tier opens it from Outputs under GalleryPrefix (default "gallery/") when
	// first needed, importing a gallery.json an older facefleet left there.
	Gallery       *gallery.Store
	GalleryPrefix string

	Limits Limits
	// MaxReceives is the request queue's redrive count, quoted in the error a
	// dead-lettered caller gets.
	MaxReceives int
	// Visibility is the request queue's visibility timeout. With MaxReceives it
	// bounds how long a request that crashes every worker takes to reach the
	// dead-letter queue, and so the shortest consistent RequestTimeout.
	Visibility time.Duration
	// PollWait is the dispatcher's long-poll wait (default 10 s, at most 20 s).
	PollWait time.Duration

	// Nudge is called after every request is sent (e.g. to start a worker at
	// once when none runs). It must not block.
	Nudge func()
	// Fleet and Decisions feed /v1/status and /metrics; both optional.
	Fleet     fleet.Fleet
	Decisions func() []scaling.Decision
	// DecisionLog reads the decisions of a scaler running elsewhere (on AWS
	// the scaler Lambda's decisionlog object in the output bucket); used when
	// Decisions is nil, read with the queue counts and the fleet at most once
	// per StatusTTL. Optional.
	DecisionLog func(context.Context) ([]scaling.Decision, error)
	// StatusTTL is how long /v1/status and /metrics reuse one snapshot of the
	// queue counts and the fleet (default DefaultStatusTTL).
	StatusTTL time.Duration
	Logger    *slog.Logger

	// Auth says which routes need an API key (auth.go).
	Auth AuthOptions
	// Threshold is the largest descriptor distance POST /v1/verify calls a
	// match (0: the gallery's default, 0.6; the workers' -threshold).
	Threshold float64
}

// Server is one web tier.
type Server struct {
	o   Options
	log *slog.Logger
	app *fiber.App
	m   *metrics
	// auth checks API keys and rate limits (auth.go).
	auth *auth
	// inflight counts running handlers, so shutdown knows when only idle
	// connections are left.
	inflight atomic.Int64
	// uploadBytes are the upload bytes held now (Limits.MaxInflightBytes).
	uploadBytes budget

	mu      sync.Mutex
	pending map[string]chan protocol.Response
	// recent remembers IDs answered or abandoned, to tell late and duplicate
	// answers from foreign ones.
	recent map[string]recentID

	snapshots snapshotCache

	galleryMu sync.Mutex // guards opening the store
	shared    *gallery.Store

	histOnce sync.Once
	history  *history // ui.go: the fleet's recent history for the page
}

// budget counts bytes against a maximum.
type budget struct {
	mu        sync.Mutex
	used, max int64
}

// take reserves n bytes, or reports that they would exceed the maximum.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

type recentID struct {
	abandoned bool
	at        time.Time
}

// recentTTL is how long answered or abandoned IDs are remembered (to tell late
// and duplicate answers from foreign ones); maxRecent bounds the memory.
const (
	recentTTL = 15 * time.Minute
	maxRecent = 200_000
)

// New validates the options and builds the Fiber app.
func New(o Options) (*Server, error) {
	switch {
	case o.Requests == nil || o.Responses == nil:
		return nil, errors.New("webtier: Requests and Responses queues are required")
	case o.Inputs == nil || o.Outputs == nil:
		return nil, errors.New("webtier: Inputs and Outputs stores are required")
	}
	o.Limits.defaults()
	if o.PollWait <= 0 || o.PollWait > 20*time.Second {
		o.PollWait = 10 * time.Second
	}
	if o.Visibility > 0 && o.MaxReceives > 0 {
		minimum := MinRequestTimeout(o.MaxReceives, o.Visibility, o.PollWait)
		switch {
		case o.Limits.RequestTimeout <= 0:
			o.Limits.RequestTimeout = minimum
		case o.Limits.RequestTimeout < minimum:
			return nil, fmt.Errorf("webtier: request timeout %s is shorter than %s = max receives %d × visibility %s + dead-letter poll %s + %s margin: "+
				"a request that crashes its workers would get 504 instead of 502; raise the request timeout, lower the visibility timeout or max receives, or leave the request timeout unset to derive it",
				o.Limits.RequestTimeout, minimum, o.MaxReceives, o.Visibility, o.PollWait, timeoutMargin)
		}
	}
	if o.Limits.RequestTimeout <= 0 {
		o.Limits.RequestTimeout = settings.DefaultRequestTimeout
	}
	if o.GalleryPrefix == "" {
		o.GalleryPrefix = settings.DefaultGalleryPrefix
	}
	if o.StatusTTL <= 0 {
		o.StatusTTL = DefaultStatusTTL
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{
		o: o, log: o.Logger.With("component", "webtier"), m: newMetrics(),
		pending: make(map[string]chan protocol.Response),
		recent:  make(map[string]recentID),
		shared:  o.Gallery,
	}
	s.uploadBytes.max = o.Limits.MaxInflightBytes
	s.auth = newAuth(&s.o)
	s.app = fiber.New(fiber.Config{
		AppName:   "facefleet",
		BodyLimit: o.Limits.MaxBodyBytes,
		// Uploads are read by the handler, one copy, after their bytes are
		// budgeted; fasthttp would otherwise buffer each whole body and parse
		// the multipart form into a second copy before any check.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		DisableStartupMessage:        true,
		ErrorHandler:                 s.errorHandler,
		// The upload (headers and the streamed body) must arrive within the
		// request timeout, but never less than minReadTimeout: a short answer
		// wait must not turn a slow read into 408 before the answer's own 504.
		ReadTimeout:  max(o.Limits.RequestTimeout, minReadTimeout),
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  2 * time.Minute,
	})
	s.routes()
	return s, nil
}

// minReadTimeout is the least time an upload is given to arrive (see ReadTimeout).
const minReadTimeout = 10 * time.Second

// timeoutMargin covers what MinRequestTimeout does not count: the worker's
// receive wait, the move to the dead-letter queue and the answer's trip.
const timeoutMargin = 5 * time.Second

// MinRequestTimeout is the shortest request timeout consistent with the request
// queue: a request whose worker dies every time is redelivered maxReceives times,
// each after the visibility timeout, then moved to the dead-letter queue, where
// the watcher (long-polling pollWait) answers its caller with 502.
func MinRequestTimeout(maxReceives int, visibility, pollWait time.Duration) time.Duration {
	return time.Duration(maxReceives)*visibility + pollWait + timeoutMargin
}

// RequestTimeout is how long a caller waits for its answer (set or derived).
func (s *Server) RequestTimeout() time.Duration { return s.o.Limits.RequestTimeout }

// App is the Fiber application (for tests: app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Serve runs the dispatchers and serves HTTP on ln until ctx is cancelled, then
// shuts down gracefully: no new connections, in-flight callers get their answers
// or time out.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.RunDispatcher(ctx) })
	wg.Go(func() { s.runHistory(ctx) })
	if s.o.RequestDLQ != nil {
		wg.Go(func() { s.RunDeadLetterWatcher(ctx) })
	}
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		// Callers already waiting keep being served while we shut down: the
		// dispatcher stops only after Fiber has finished its handlers. fasthttp
		// would also wait for idle keep-alive connections (up to IdleTimeout),
		// so once no handler runs the shutdown is cut short.
		shutCtx, c := context.WithTimeout(context.WithoutCancel(ctx), s.o.Limits.RequestTimeout+5*time.Second)
		done := make(chan struct{})
		go func() {
			defer c()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-shutCtx.Done():
					return
				case <-t.C:
					if s.inflight.Load() == 0 {
						return
					}
				}
			}
		}()
		err = s.app.ShutdownWithContext(shutCtx)
		close(done)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
	}
	cancel()
	wg.Wait()
	s.closeGallery()
	return err
}

// register reserves a slot for a caller, or reports that too many are waiting.
func (s *Server) register() (string, chan protocol.Response, bool) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	ch := make(chan protocol.Response, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= s.o.Limits.MaxPending {
		return "", nil, false
	}
	s.pending[id] = ch
	s.m.pending.Store(int64(len(s.pending)))
	return id, ch, true
}

// forget removes a caller; abandoned marks a caller that gave up.
func (s *Server) forget(id string, abandoned bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return
	}
	delete(s.pending, id)
	s.recent[id] = recentID{abandoned: abandoned, at: time.Now()}
	s.m.pending.Store(int64(len(s.pending)))
}

// deliver routes r to its caller and classifies it for the log.
func (s *Server) deliver(r protocol.Response) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.pending[r.ID]; ok {
		ch <- r // buffered 1 and removed below: never blocks, never twice
		delete(s.pending, r.ID)
		s.recent[r.ID] = recentID{at: time.Now()}
		s.m.pending.Store(int64(len(s.pending)))
		return "delivered"
	}
	if rec, ok := s.recent[r.ID]; ok {
		if rec.abandoned {
			return "late"
		}
		return "duplicate"
	}
	return "foreign"
}

func (s *Server) recentLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recent)
}

func (s *Server) pruneRecent(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ttl := recentTTL
	if len(s.recent) > maxRecent {
		ttl = time.Minute // under a flood, remember less rather than grow without bound
	}
	for id, r := range s.recent {
		if now.Sub(r.at) > ttl {
			delete(s.recent, id)
		}
	}
}

// RunDispatcher receives responses until ctx is cancelled (Serve runs it).
func (s *Server) RunDispatcher(ctx context.Context) {
	s.poll(ctx, s.o.Responses, "responses", func(m queue.Message) {
		r, err := protocol.DecodeResponse(m.Body)
		outcome := "invalid"
		if err == nil {
			outcome = s.deliver(r)
		}
		s.m.responses.inc(outcome)
		switch outcome {
		case "delivered":
		case "invalid":
			s.log.Warn("dropping an undecodable response", "msg", m.ID, "err", err)
		default:
			s.log.Warn("dropping a response nobody waits for", "outcome", outcome, "id", r.ID, "key", r.Key, "worker", r.Worker)
		}
		if err := s.o.Responses.Delete(ctx, m.ReceiptHandle); err != nil {
			s.log.Warn("delete response failed", "msg", m.ID, "err", err)
		}
	})
}

// FailureRecord is written to failed/<stem>.json for a dead-lettered request.
type FailureRecord struct {
	Request      protocol.Request `json:"request"`
	Body         string           `json:"body,omitempty"`
	ReceiveCount int              `json:"receive_count"`
	Reason       string           `json:"reason"`
	At           time.Time        `json:"at"`
}

// RunDeadLetterWatcher drains the request dead-letter queue until ctx is cancelled.
func (s *Server) RunDeadLetterWatcher(ctx context.Context) {
	s.poll(ctx, s.o.RequestDLQ, "dead-letter", func(m queue.Message) { s.deadLetter(ctx, m) })
}

// deadLetter records one dead-lettered request and answers its caller: this
// tier's directly, another tier's through that tier's response queue.
func (s *Server) deadLetter(ctx context.Context, m queue.Message) {
	req, err := protocol.DecodeRequest(m.Body)
	// Another tier's request goes back to that tier's response queue; when
	// that queue cannot be named, it is left for that tier's own watcher.
	var route queue.Queue
	if err == nil && req.ReplyTo != "" && req.ReplyTo != s.o.ReplyTo {
		var rerr error
		if s.o.ReplyQueue == nil {
			rerr = errors.New("this web tier cannot resolve reply-to addresses")
		} else {
			route, rerr = s.o.ReplyQueue(req.ReplyTo)
		}
		if rerr != nil {
			s.log.Warn("leaving another web tier's dead letter to it", "msg", m.ID, "id", req.ID, "reply_to", req.ReplyTo, "err", rerr)
			// Hand it back soon for the owner's watcher, but not at once:
			// this tier would only receive it again.
			_ = s.o.RequestDLQ.ChangeVisibility(ctx, m.ReceiptHandle, s.o.PollWait)
			return
		}
	}
	s.m.deadLetters.Add(1)
	attempts := s.o.MaxReceives
	if attempts <= 0 {
		attempts = m.ReceiveCount
	}
	reason := fmt.Sprintf("processing failed after %d attempts; the request was moved to the dead-letter queue", attempts)
	rec := FailureRecord{Request: req, ReceiveCount: m.ReceiveCount, Reason: reason, At: time.Now().UTC()}
	key := "failed/" + m.ID + ".json"
	if err != nil {
		rec.Body, rec.Reason = m.Body, "undecodable request: "+err.Error()
	} else {
		key = FailureKey(protocol.Stem(req.Key), req.ID)
	}
	b, _ := json.Marshal(rec)
	if _, perr := s.o.Outputs.Put(ctx, key, b, "application/json"); perr != nil {
		// Keep the message: the failure must be recorded before it goes.
		s.log.Error("cannot record a dead-lettered request; will retry", "msg", m.ID, "err", perr)
		return
	}
	s.log.Error("request dead-lettered", "id", req.ID, "key", req.Key, "attempts", attempts, "record", key, "reply_to", req.ReplyTo)
	if err == nil {
		resp := protocol.Response{V: protocol.Version, ID: req.ID, Key: req.Key, Stem: protocol.Stem(req.Key),
			Error: &protocol.Error{Code: protocol.CodeFailed, Message: reason}}
		if route == nil {
			s.deliver(resp)
		} else {
			body, eerr := protocol.EncodeResponse(resp)
			if eerr == nil {
				_, eerr = route.Send(ctx, body)
			}
			if eerr != nil {
				s.log.Warn("cannot answer another web tier's dead letter; will retry", "msg", m.ID, "reply_to", req.ReplyTo, "err", eerr)
				return
			}
		}
	}
	if err := s.o.RequestDLQ.Delete(ctx, m.ReceiptHandle); err != nil {
		s.log.Warn("delete dead-letter message failed", "msg", m.ID, "err", err)
	}
}

// FailureKey is where the record of a dead-lettered request lives in the output
// store: one per request, like the worker's results/<stem>/<id>.json.
func FailureKey(stem, id string) string { return "failed/" + stem + "/" + id + ".json" }

func (s *Server) poll(ctx context.Context, q queue.Queue, name string, handle func(queue.Message)) {
	failures := 0
	lastPrune := time.Now()
	for ctx.Err() == nil {
		msgs, err := q.Receive(ctx, queue.ReceiveOptions{MaxMessages: 10, WaitTime: s.o.PollWait})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			s.log.Warn("receive failed", "queue", name, "err", err, "consecutive", failures)
			t := time.NewTimer(min(time.Duration(failures)*200*time.Millisecond, 5*time.Second))
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		failures = 0
		for _, m := range msgs {
			handle(m)
		}
		if now := time.Now(); now.Sub(lastPrune) > time.Minute || (now.Sub(lastPrune) > time.Second && s.recentLen() > maxRecent) {
			s.pruneRecent(now)
			lastPrune = now
		}
	}
}
