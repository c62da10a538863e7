// Package apptier is the app-tier worker: it long-polls the request queue, fetches
// the named image from the input store, runs the engine, writes the result to the
// output store, answers on the response queue and only then deletes the request.
//
// Failure handling (see docs/architecture.md):
//   - permanent errors (not our message, input vanished or replaced, bad image)
//     are answered with an error and the request is deleted;
//   - transient errors (store, queue, engine) leave the request undeleted; its
//     visibility is shortened to a backoff so it is retried soon, and after the
//     queue's maximum receive count it lands in the dead-letter queue, which the
//     web tier watches;
//   - a panic while analysing is treated as transient, so a poison image that
//     crashes the engine ends in the dead-letter queue instead of looping forever.
package apptier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/settings"
)

// Analyzer is the engine as the worker uses it (*engine.Engine in production).
type Analyzer interface {
	Analyze(ctx context.Context, img []byte) (*engine.Result, error)
}

// Options configure a Worker. Zero durations take the defaults noted.
type Options struct {
	ID        string
	Requests  queue.Queue
	Responses queue.Queue
	Inputs    blob.Store
	Outputs   blob.Store
	Analyzer  Analyzer
	// ReplyQueue resolves a request's reply-to address to the queue its answer
	// goes to (several web tiers share one request queue, each with its own
	// response queue). A request without a reply-to is answered on Responses;
	// with one and no ReplyQueue, or when ReplyQueue fails, the request is
	// answered on Responses too, with the failure logged. ReplyQueue should
	// refuse addresses the deployment does not own.
	ReplyQueue func(addr string) (queue.Queue, error)

	// Gallery is the shared gallery the worker matches against (read only).
	// Nil: the worker opens it from Outputs under GalleryPrefix (default
	// "gallery/") on its first request. Several workers of one process may
	// share one Store.
	Gallery       *gallery.Store
	GalleryPrefix string
	// Threshold is the largest distance that still names a subject (0: the
	// gallery's default, 0.6).
	Threshold float64
	// GalleryCheckEvery bounds how often the worker asks the store whether the
	// gallery changed (default 2 s). A request naming a newer gallery position
	// forces a check.
	GalleryCheckEvery time.Duration

	// WaitTime is the long-poll wait per receive (default 5 s, at most 20 s).
	WaitTime time.Duration
	// IdleTimeout: Run returns nil after this long without work (0: never).
	IdleTimeout time.Duration
	// MinLifetime: an idle worker never stops itself before this long after Run
	// started. EC2 bills every start for at least 60 s, so stopping earlier saves
	// nothing and only costs a new boot when work returns (the simulator's finding).
	MinLifetime time.Duration
	// VisibilityTimeout is the queue's visibility timeout; while an image is being
	// processed the worker extends it every half of it (default 30 s).
	VisibilityTimeout time.Duration
	// RetryBackoff is the first retry delay after a transient error; it doubles per
	// receive up to VisibilityTimeout (default 1 s).
	RetryBackoff time.Duration
	// MaxTails bounds the images whose tail (store the result, answer, delete the
	// request) runs while the worker goes on with the next ones (default 4). A
	// store that syncs (fileblob) takes longer than an analysis under load; with
	// several tails outstanding the engine does not wait for it, and their writes
	// share the store's group commit. 1 waits for each tail before the next.
	MaxTails int
	Logger   *slog.Logger
}

// Worker processes requests one at a time. It is not safe for concurrent Run calls;
// run one Worker per instance.
type Worker struct {
	o   Options
	log *slog.Logger

	shared *gallery.Store // Options.Gallery, or nil until the first request opens one

	drainOnce sync.Once
	drain     chan struct{} // closed by Drain
}

// New checks the options and returns a worker.
func New(o Options) (*Worker, error) {
	switch {
	case o.Requests == nil || o.Responses == nil:
		return nil, errors.New("apptier: Requests and Responses queues are required")
	case o.Inputs == nil || o.Outputs == nil:
		return nil, errors.New("apptier: Inputs and Outputs stores are required")
	case o.Analyzer == nil:
		return nil, errors.New("apptier: an Analyzer (the engine) is required")
	}
	if o.GalleryPrefix == "" {
		o.GalleryPrefix = settings.DefaultGalleryPrefix
	}
	if o.GalleryCheckEvery <= 0 {
		o.GalleryCheckEvery = 2 * time.Second
	}
	if o.WaitTime <= 0 {
		o.WaitTime = 5 * time.Second
	}
	if o.WaitTime > 20*time.Second {
		o.WaitTime = 20 * time.Second
	}
	if o.VisibilityTimeout <= 0 {
		o.VisibilityTimeout = 30 * time.Second
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.MaxTails <= 0 {
		o.MaxTails = 4
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Worker{o: o, log: o.Logger.With("worker", o.ID), drain: make(chan struct{}), shared: o.Gallery}, nil
}

// Drain asks Run to finish what it holds and return before its next receive,
// without cancelling a receive in progress: a long poll cancelled mid-way can
// leave a message SQS already handed out invisible until its visibility
// timeout, which a cancelled context risks and Drain does not. Run then returns
// within one WaitTime plus the images in hand. Safe to call more than once and
// from any goroutine. The overflow Lambda (internal/overflowfn) drains its
// worker when EC2 capacity runs or the invocation's deadline nears.
func (w *Worker) Drain() { w.drainOnce.Do(func() { close(w.drain) }) }

func (w *Worker) draining() bool {
	select {
	case <-w.drain:
		return true
	default:
		return false
	}
}

// Run processes requests until ctx is cancelled or Drain is called (it then
// finishes the images in hand and returns nil: a drain) or until IdleTimeout passes without work (returns nil:
// the instance stops itself). It returns an error only when it cannot go on.
//
// Run overlaps the tails of images (storing the result, answering, deleting the
// request) with the receive, fetch and analysis of the next, so the engine does
// not wait for the store's fsync; at most MaxTails tails are outstanding, so a
// slow store still holds the worker back. Every request is still acknowledged
// only after its result is stored and its answer sent.
func (w *Worker) Run(ctx context.Context) error {
	started := time.Now()
	lastWork := started
	failures := 0
	slots := make(chan struct{}, w.o.MaxTails) // one per outstanding tail
	var tails sync.WaitGroup
	waitTail := tails.Wait
	defer waitTail()
	for {
		if ctx.Err() != nil || w.draining() {
			waitTail()
			w.log.Info("worker drained")
			return nil
		}
		wait := w.o.WaitTime
		if w.o.IdleTimeout > 0 {
			left := max(w.o.IdleTimeout-time.Since(lastWork), w.o.MinLifetime-time.Since(started))
			if left <= 0 {
				waitTail()
				w.log.Info("worker idle, stopping", "idle_timeout", w.o.IdleTimeout)
				return nil
			}
			wait = min(wait, left)
		}
		msgs, err := w.o.Requests.Receive(ctx, queue.ReceiveOptions{MaxMessages: 1, WaitTime: wait})
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			failures++
			w.log.Warn("receive failed", "err", err, "consecutive", failures)
			sleepOrDrain(ctx, w.drain, min(time.Duration(failures)*200*time.Millisecond, 5*time.Second))
			continue
		}
		failures = 0
		for _, m := range msgs {
			// The image in hand is finished even when a drain was asked for.
			finish := w.start(context.WithoutCancel(ctx), m)
			if finish != nil {
				slots <- struct{}{}
				tails.Go(func() {
					defer func() { <-slots }()
					finish()
				})
			}
			lastWork = time.Now()
		}
	}
}

// Handle processes one received message to the end: result stored, answer sent,
// request deleted (exported for tests and for callers that receive themselves).
func (w *Worker) Handle(ctx context.Context, m queue.Message) {
	if finish := w.start(ctx, m); finish != nil {
		finish()
	}
}

// start decodes the request and analyses its image; it returns the tail (store,
// answer, delete), or nil when nothing is left to do. The request's visibility is
// extended until the tail has run.
func (w *Worker) start(ctx context.Context, m queue.Message) (finish func()) {
	received := time.Now()
	req, err := protocol.DecodeRequest(m.Body)
	if err != nil {
		// Not our message: nobody can be waiting for it by an ID we know, so it
		// is dropped rather than retried into the dead-letter queue.
		w.log.Warn("dropping undecodable request", "msg", m.ID, "receive", m.ReceiveCount, "err", err)
		w.delete(ctx, m, nil)
		return nil
	}
	// Log attributes are only formatted when something is logged: per-request
	// loggers (slog's With) would format them for every image.
	attrs := []any{"msg", m.ID, "receive", m.ReceiveCount, "id", req.ID, "key", req.Key}
	stop := w.extendVisibility(ctx, attrs, m.ReceiptHandle)
	// If the goroutine dies here (runtime.Goexit: a killed instance), the
	// extension must die with it so that the request is redelivered.
	handedOver := false
	defer func() {
		if !handedOver {
			stop()
		}
	}()
	resp, err := w.process(ctx, req, received)
	handedOver = true
	return func() {
		defer stop()
		w.finish(ctx, m, req, resp, err, attrs, stop)
	}
}

// finish stores a successful result, answers and deletes the request; a transient
// error leaves the request for redelivery instead. The answer may go out as
// soon as the result is stored (readable); the request is deleted only once
// the result is durable (blob.Batcher: on fileblob's log, one sync later).
func (w *Worker) finish(ctx context.Context, m queue.Message, req protocol.Request, resp protocol.Response, err error, attrs []any, stop func()) {
	var perm *protocol.Error
	var durable func() error // nil: nothing stored, or stored durably already
	switch {
	case err == nil && req.Kind != protocol.Describe && req.Kind != protocol.Detect:
		durable, err = w.store(ctx, req, &resp)
	case errors.As(err, &perm) && perm.Code == protocol.CodeBadImage:
		// Best effort: the answer carries the error either way.
		_ = w.record(ctx, req, protocol.Response{ID: req.ID, Key: req.Key, Stem: resp.Stem, Error: perm})
	}
	switch {
	case err == nil:
	case errors.As(err, &perm):
		resp = protocol.Response{ID: req.ID, Key: req.Key, Stem: protocol.Stem(req.Key), Error: perm, Timings: resp.Timings}
		w.log.Info("permanent failure, answering with an error", append(attrs, "code", perm.Code, "err", perm.Message)...)
	default:
		// The extender must be stopped first: a tick after the backoff
		// would reset the visibility to the full timeout.
		stop()
		w.backoff(ctx, attrs, m, err)
		return
	}
	resp.V, resp.Worker = protocol.Version, w.o.ID
	body, err := protocol.EncodeResponse(resp)
	if err != nil {
		resp = protocol.Response{V: protocol.Version, ID: req.ID, Key: req.Key, Stem: protocol.Stem(req.Key), Worker: w.o.ID,
			Error: &protocol.Error{Code: protocol.CodeFailed, Message: err.Error()}}
		body, _ = protocol.EncodeResponse(resp)
	}
	if _, err := w.replyQueue(req, attrs).Send(ctx, body); err != nil {
		stop()
		w.backoff(ctx, attrs, m, fmt.Errorf("send response: %w", err))
		return
	}
	if durable != nil {
		if err := durable(); err != nil {
			// Answered, but the result might not survive a crash: leave the
			// request to be done again (the web tier drops the second answer).
			stop()
			w.backoff(ctx, attrs, m, fmt.Errorf("result %q not durable: %w", resp.Stem, err))
			return
		}
	}
	stop()
	w.delete(ctx, m, attrs)
	if w.log.Enabled(ctx, slog.LevelDebug) {
		w.log.Debug("answered", append(attrs, "name", resp.Name, "queued_ms", resp.Timings.QueuedMS, "inference_ms", resp.Timings.InferenceMS)...)
	}
}

// replyQueue is where req's answer goes.
func (w *Worker) replyQueue(req protocol.Request, attrs []any) queue.Queue {
	if req.ReplyTo == "" {
		return w.o.Responses
	}
	if w.o.ReplyQueue == nil {
		w.log.Warn("request names a reply-to queue but this worker cannot resolve addresses; answering on the default response queue", append(attrs, "reply_to", req.ReplyTo)...)
		return w.o.Responses
	}
	q, err := w.o.ReplyQueue(req.ReplyTo)
	if err != nil {
		w.log.Warn("cannot resolve the reply-to queue; answering on the default response queue", append(attrs, "reply_to", req.ReplyTo, "err", err)...)
		return w.o.Responses
	}
	return q
}

// keyError turns a store's refusal of a key (a client's file name no store
// accepts) into a permanent error: retrying cannot help.
func keyError(err error, key string) error {
	if errors.Is(err, blob.ErrInvalidKey) {
		return &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("the store refuses the name %q: %v; rename the file", key, err)}
	}
	return err
}

// process fetches and analyses the image; a *protocol.Error is permanent, any
// other error transient.
func (w *Worker) process(ctx context.Context, req protocol.Request, received time.Time) (protocol.Response, error) {
	resp := protocol.Response{ID: req.ID, Key: req.Key, Stem: protocol.Stem(req.Key)}
	if !req.SentAt.IsZero() {
		resp.Timings.QueuedMS = ms(received.Sub(req.SentAt))
	}
	t0 := time.Now()
	data, attrs, err := w.o.Inputs.Get(ctx, req.Key)
	if errors.Is(err, blob.ErrNotFound) {
		return resp, &protocol.Error{Code: protocol.CodeInputMissing, Message: fmt.Sprintf("input %q is gone from the input store", req.Key)}
	}
	if err != nil {
		return resp, keyError(fmt.Errorf("fetch input %q: %w", req.Key, err), req.Key)
	}
	if attrs.ETag != req.ETag {
		return resp, &protocol.Error{Code: protocol.CodeSuperseded, Message: fmt.Sprintf("input %q was replaced by another upload with the same name (etag %s, request was for %s); upload again", req.Key, attrs.ETag, req.ETag)}
	}
	resp.Timings.FetchMS = ms(time.Since(t0))

	g, err := w.gallery(ctx, req.Gallery)
	if err != nil {
		return resp, err
	}
	t1 := time.Now()
	res, err := w.analyze(ctx, data)
	resp.Timings.InferenceMS = ms(time.Since(t1))
	if engine.IsImageError(err) {
		return resp, &protocol.Error{Code: protocol.CodeBadImage, Message: err.Error()}
	}
	if err != nil {
		return resp, fmt.Errorf("analyze %q: %w", req.Key, err)
	}
	if req.Kind != protocol.Detect { // detection answers boxes, not names
		resp.Name = Label(g, res, w.o.Threshold)
	}
	resp.Width, resp.Height = res.Width, res.Height
	resp.Faces = Faces(res)
	if req.Limit > 0 {
		for i, f := range res.Faces {
			if len(f.Descriptor) > 0 {
				for _, n := range g.NearestK(f.Descriptor, req.Limit) {
					resp.Faces[i].Candidates = append(resp.Faces[i].Candidates, protocol.Candidate{Subject: n.Subject, Distance: n.Distance})
				}
			}
		}
	}
	if req.Kind == protocol.Detect {
		for i, f := range res.Faces {
			for _, p := range f.Landmarks {
				resp.Faces[i].Landmarks = append(resp.Faces[i].Landmarks, protocol.Point{X: p.X, Y: p.Y})
			}
		}
	}
	if req.Kind == protocol.Describe {
		big := gallery.Largest(res.Faces)
		if big == nil || len(big.Descriptor) == 0 {
			return resp, &protocol.Error{Code: protocol.CodeNoFace, Message: fmt.Sprintf("no face found in %q to enroll", req.Key)}
		}
		resp.Descriptor = big.Descriptor
	}
	return resp, nil
}

// store writes the result (<stem> holding the name) and its record; an error is
// transient.
func (w *Worker) store(ctx context.Context, req protocol.Request, resp *protocol.Response) (durable func() error, err error) {
	t2 := time.Now()
	rec, err := w.recordObject(req, *resp)
	if err != nil {
		return nil, err
	}
	// One batch: on fileblob's log both are stored at once and durable after
	// one sync, which durable waits for; elsewhere the two writes run at once
	// and are durable on return.
	durable, err = blob.PutAll(ctx, w.o.Outputs, rec, blob.Object{Key: resp.Stem, Data: []byte(resp.Name), ContentType: "text/plain; charset=utf-8"})
	if err != nil {
		return nil, keyError(fmt.Errorf("store result %q and record %q: %w", resp.Stem, rec.Key, err), req.Key)
	}
	resp.Timings.StoreMS = ms(time.Since(t2))
	return durable, nil
}

// Record is the JSON written to ResultKey(stem, id) in the output store.
type Record struct {
	Request  protocol.Request  `json:"request"`
	Response protocol.Response `json:"response"`
	Done     time.Time         `json:"done"`
}

// ResultKey is where the JSON record of request id for stem lives in the output
// store: one per request, so a.jpg and a.png (both stem "a"), or one name
// uploaded twice, keep separate records. The object <stem> (the course's
// contract: the name) is shared: the latest answer wins.
func ResultKey(stem, id string) string { return "results/" + stem + "/" + id + ".json" }

// recordObject is the JSON record of req's answer, as stored at ResultKey.
func (w *Worker) recordObject(req protocol.Request, resp protocol.Response) (blob.Object, error) {
	b, err := json.Marshal(Record{Request: req, Response: resp, Done: time.Now().UTC()})
	if err != nil {
		return blob.Object{}, fmt.Errorf("encode record: %w", err)
	}
	return blob.Object{Key: ResultKey(resp.Stem, req.ID), Data: b, ContentType: "application/json"}, nil
}

func (w *Worker) record(ctx context.Context, req protocol.Request, resp protocol.Response) error {
	o, err := w.recordObject(req, resp)
	if err != nil {
		return err
	}
	if _, err := w.o.Outputs.Put(ctx, o.Key, o.Data, o.ContentType); err != nil {
		return fmt.Errorf("store record %q: %w", o.Key, err)
	}
	return nil
}

// analyze runs the engine, turning a panic into a (transient) error.
func (w *Worker) analyze(ctx context.Context, data []byte) (res *engine.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("engine panicked", "panic", p, "stack", string(debug.Stack()))
			res, err = nil, fmt.Errorf("engine panicked: %v", p)
		}
	}()
	res, err = w.o.Analyzer.Analyze(ctx, data)
	if err == nil && res == nil {
		err = errors.New("engine returned no result")
	}
	return res, err
}

// gallery returns the current gallery: refreshed at most every
// GalleryCheckEvery, or at once when hint (the request's gallery position)
// is beyond ours. A failed refresh keeps answering with what we have.
func (w *Worker) gallery(ctx context.Context, hint string) (*gallery.Gallery, error) {
	if w.shared == nil {
		st, err := gallery.OpenStore(ctx, w.o.Outputs, w.o.GalleryPrefix, gallery.StoreOptions{Logger: w.log})
		if err != nil {
			return nil, fmt.Errorf("load the gallery: %w", err)
		}
		w.shared = st
	}
	atLeast, _ := strconv.ParseUint(hint, 10, 64) // an old tier's ETag hint reads as 0
	if err := w.shared.RefreshIfStale(ctx, w.o.GalleryCheckEvery, atLeast); err != nil {
		w.log.Warn("gallery refresh failed, answering with the loaded version", "seq", w.shared.Seq(), "err", err)
	}
	return w.shared.Gallery(), nil
}

// extendVisibility keeps the message invisible while it is being processed.
func (w *Worker) extendVisibility(ctx context.Context, attrs []any, handle string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(w.o.VisibilityTimeout / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := w.o.Requests.ChangeVisibility(ctx, handle, w.o.VisibilityTimeout); err != nil && ctx.Err() == nil {
					w.log.Warn("extending visibility failed", append(attrs, "err", err)...)
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-finished }) }
}

func (w *Worker) backoff(ctx context.Context, attrs []any, m queue.Message, cause error) {
	d := w.o.RetryBackoff
	for i := 1; i < m.ReceiveCount && d < w.o.VisibilityTimeout; i++ {
		d *= 2
	}
	d = min(d, w.o.VisibilityTimeout)
	w.log.Warn("transient failure, leaving the request for redelivery", append(attrs, "err", cause, "retry_in", d)...)
	if err := w.o.Requests.ChangeVisibility(ctx, m.ReceiptHandle, d); err != nil {
		w.log.Warn("could not shorten visibility; the request returns after the visibility timeout", append(attrs, "err", err)...)
	}
}

func (w *Worker) delete(ctx context.Context, m queue.Message, attrs []any) {
	if err := w.o.Requests.Delete(ctx, m.ReceiptHandle); err != nil {
		// The receipt expired: another worker may answer again; the web tier
		// drops the duplicate.
		w.log.Warn("delete request failed", append(attrs, "err", err)...)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sleepOrDrain waits d, or until ctx is done or drain is closed.
func sleepOrDrain(ctx context.Context, drain <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-drain:
	case <-t.C:
	}
}

// Faces is a labelled result's faces as the API and the queue messages carry
// them (never nil).
func Faces(res *engine.Result) []protocol.Face {
	out := make([]protocol.Face, 0, len(res.Faces))
	for _, f := range res.Faces {
		out = append(out, protocol.Face{
			Box:     protocol.Box{X: f.Box.X, Y: f.Box.Y, W: f.Box.W, H: f.Box.H},
			Subject: f.Subject, Distance: f.Distance, Score: f.Score,
		})
	}
	return out
}
