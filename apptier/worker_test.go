package apptier_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/enginetest"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
)

type rig struct {
	req, resp, dlq *memqueue.Queue
	in, out        *memblob.Store
	eng            *enginetest.Engine
	w              *apptier.Worker
}

func newRig(t *testing.T, mod func(*apptier.Options)) *rig {
	t.Helper()
	r := &rig{in: memblob.New(), out: memblob.New(), eng: enginetest.New()}
	r.eng.SetFaceDescriptors(smallFace(), bigFace())
	var err error
	if r.dlq, err = memqueue.New(memqueue.Options{Name: "dlq"}); err != nil {
		t.Fatal(err)
	}
	if r.req, err = memqueue.New(memqueue.Options{Name: "req", VisibilityTimeout: 2 * time.Second, DeadLetter: r.dlq, MaxReceiveCount: 2}); err != nil {
		t.Fatal(err)
	}
	if r.resp, err = memqueue.New(memqueue.Options{Name: "resp", MaxMessageSize: protocol.MaxResponseBytes}); err != nil {
		t.Fatal(err)
	}
	o := apptier.Options{
		ID: "w1", Requests: r.req, Responses: r.resp, Inputs: r.in, Outputs: r.out,
		Analyzer: r.eng,
		WaitTime: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
		VisibilityTimeout: 2 * time.Second, RetryBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&o)
	}
	if r.w, err = apptier.New(o); err != nil {
		t.Fatal(err)
	}
	return r
}

// send uploads content under key and enqueues a request for it.
func (r *rig) send(t *testing.T, id, key, content string, kind protocol.Kind) {
	t.Helper()
	ctx := context.Background()
	etag, err := r.in.Put(ctx, key, []byte(content), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	body, err := protocol.EncodeRequest(protocol.Request{ID: id, Key: key, ETag: etag, Kind: kind, SentAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.req.Send(ctx, body); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) responses(t *testing.T) map[string]protocol.Response {
	t.Helper()
	out := map[string]protocol.Response{}
	for {
		msgs, err := r.resp.Receive(context.Background(), queue.ReceiveOptions{MaxMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			return out
		}
		for _, m := range msgs {
			resp, err := protocol.DecodeResponse(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := out[resp.ID]; dup {
				t.Errorf("two answers for %s", resp.ID)
			}
			out[resp.ID] = resp
			_ = r.resp.Delete(context.Background(), m.ReceiptHandle)
		}
	}
}

func counts(t *testing.T, q queue.Queue) queue.Counts {
	t.Helper()
	n, err := q.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func runUntilIdle(t *testing.T, w *apptier.Worker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("worker did not stop itself when idle")
	}
}

func TestWorkerAnswersStoresAndDeletes(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, nil)
	ctx := context.Background()
	setGallery(t, r.out, "amy")
	r.send(t, "a", "test_00.jpg", "face", protocol.Classify)
	r.send(t, "b", "empty.png", "noface", protocol.Recognize)
	runUntilIdle(t, r.w)

	got := r.responses(t)
	if a := got["a"]; a.Name != "amy" || a.Stem != "test_00" || len(a.Faces) != 2 || a.Faces[1].Subject != "amy" || a.Error != nil || a.Worker != "w1" {
		t.Fatalf("answer a = %+v", a)
	}
	if b := got["b"]; b.Name != "NoFace" || len(b.Faces) != 0 || b.Error != nil {
		t.Fatalf("answer b = %+v", b)
	}
	data, _, err := r.out.Get(ctx, "test_00")
	if err != nil || string(data) != "amy" {
		t.Fatalf("output test_00 = %q, %v", data, err)
	}
	data, _, err = r.out.Get(ctx, apptier.ResultKey("test_00", "a"))
	if err != nil {
		t.Fatal(err)
	}
	var rec apptier.Record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Response.Name != "amy" || rec.Request.ID != "a" {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	if n := counts(t, r.req); n.Visible+n.InFlight != 0 {
		t.Fatalf("request queue not empty: %+v", n)
	}
}

func TestWorkerPermanentErrorsAreAnsweredAndDeleted(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, nil)
	ctx := context.Background()
	r.send(t, "bad", "bad.jpg", "bad", protocol.Classify)
	r.send(t, "gone", "gone.jpg", "face", protocol.Classify)
	if err := r.in.Delete(ctx, "gone.jpg"); err != nil {
		t.Fatal(err)
	}
	r.send(t, "old", "same.jpg", "face", protocol.Classify)
	if _, err := r.in.Put(ctx, "same.jpg", []byte("noface"), "image/png"); err != nil { // another upload reuses the name
		t.Fatal(err)
	}
	r.send(t, "desc", "nobody.jpg", "noface", protocol.Describe)
	if _, err := r.req.Send(ctx, "this is not our message"); err != nil {
		t.Fatal(err)
	}
	runUntilIdle(t, r.w)

	got := r.responses(t)
	want := map[string]string{"bad": protocol.CodeBadImage, "gone": protocol.CodeInputMissing, "old": protocol.CodeSuperseded, "desc": protocol.CodeNoFace}
	if len(got) != len(want) {
		t.Fatalf("got %d answers, want %d: %+v", len(got), len(want), got)
	}
	for id, code := range want {
		if e := got[id].Error; e == nil || e.Code != code || e.Message == "" {
			t.Errorf("%s: error %+v, want code %s", id, e, code)
		}
	}
	if _, _, err := r.out.Get(ctx, "same"); err == nil {
		t.Error("a superseded request wrote a result")
	}
	if n, d := counts(t, r.req), counts(t, r.dlq); n.Visible+n.InFlight+d.Visible != 0 {
		t.Fatalf("left behind: requests %+v, dlq %+v", n, d)
	}
}

func TestWorkerDescribeReturnsLargestDescriptor(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, nil)
	r.send(t, "d", "amy1.png", "face", protocol.Describe)
	runUntilIdle(t, r.w)
	d := r.responses(t)["d"]
	if d.Error != nil || len(d.Descriptor) != gallery.DescriptorLen || d.Descriptor[1] != bigFace()[1] {
		t.Fatalf("describe = %+v", d)
	}
	if _, _, err := r.out.Get(context.Background(), "amy1"); err == nil {
		t.Error("describe wrote a classification result")
	}
}

func TestWorkerTransientFailuresEndInDeadLetterQueue(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	for _, content := range []string{"flaky", "panic"} {
		t.Run(content, func(t *testing.T) {
			r := newRig(t, nil)
			r.send(t, "p", "poison.jpg", content, protocol.Classify)
			runUntilIdle(t, r.w)
			if got := r.responses(t); len(got) != 0 {
				t.Fatalf("answered a transient failure: %+v", got)
			}
			if c := r.eng.Calls(); c != 2 {
				t.Fatalf("engine called %d times, want 2 (MaxReceiveCount)", c)
			}
			if n, d := counts(t, r.req), counts(t, r.dlq); n.Visible+n.InFlight != 0 || d.Visible != 1 {
				t.Fatalf("requests %+v, dlq %+v; want the request in the dead-letter queue", n, d)
			}
		})
	}
}

func TestWorkerExtendsVisibilityOfSlowImages(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, func(o *apptier.Options) { o.VisibilityTimeout = 200 * time.Millisecond })
	r.send(t, "s", "slow.jpg", "slow:700", protocol.Classify)
	done := make(chan struct{})
	go func() { defer close(done); runUntilIdle(t, r.w) }()
	// While the worker holds it, nobody else may receive it.
	deadline := time.Now().Add(600 * time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		msgs, err := r.req.Receive(context.Background(), queue.ReceiveOptions{WaitTime: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			t.Fatal("a request being processed became visible again: visibility was not extended")
		}
	}
	<-done
	if got := r.responses(t); len(got) != 1 || got["s"].Name != "Unknown" {
		t.Fatalf("answers %+v", got)
	}
	if c := r.eng.Calls(); c != 1 {
		t.Fatalf("engine called %d times", c)
	}
}

func TestWorkerDrainsOnCancel(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, func(o *apptier.Options) { o.IdleTimeout = 0 })
	r.send(t, "x", "x.jpg", "block", protocol.Classify)
	r.send(t, "y", "y.jpg", "face", protocol.Classify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	for r.eng.Calls() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	r.eng.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	got := r.responses(t)
	if len(got) != 1 || got["x"].Name != "Unknown" {
		t.Fatalf("after drain got %+v; want only the image in hand answered", got)
	}
	if n := counts(t, r.req); n.Visible != 1 || n.InFlight != 0 {
		t.Fatalf("request queue %+v; want the second request left visible", n)
	}
}

func TestWorkerReloadsGalleryWhenARequestNamesANewerOne(t *testing.T) {
	r := newRig(t, func(o *apptier.Options) { o.GalleryCheckEvery = time.Hour })
	ctx := context.Background()
	setGallery(t, r.out, "amy")
	r.send(t, "1", "1.jpg", "face", protocol.Classify)
	runUntilIdle(t, r.w)
	seq := setGallery(t, r.out, "penny")
	// Without a hint the hour-long check interval keeps the loaded version ...
	r.send(t, "2", "2.jpg", "face", protocol.Classify)
	// ... and a request naming the new position forces a reload.
	in, err := r.in.Put(ctx, "3.jpg", []byte("face"), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protocol.EncodeRequest(protocol.Request{ID: "3", Key: "3.jpg", ETag: in, Kind: protocol.Classify, Gallery: strconv.FormatUint(seq, 10)})
	if _, err := r.req.Send(ctx, body); err != nil {
		t.Fatal(err)
	}
	runUntilIdle(t, r.w)
	got := r.responses(t)
	if got["1"].Name != "amy" || got["2"].Name != "amy" || got["3"].Name != "penny" {
		t.Fatalf("names %q %q %q; want amy amy penny", got["1"].Name, got["2"].Name, got["3"].Name)
	}
}

// An idle worker stops after IdleTimeout, but never before MinLifetime since it
// started: the first billed minute is already paid for.
func TestWorkerIdleStopWaitsForMinLifetime(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	for _, tc := range []struct {
		name          string
		idle, minLife time.Duration
		wantAtLeast   time.Duration
	}{
		{"idle only", 100 * time.Millisecond, 0, 100 * time.Millisecond},
		{"min lifetime longer", 100 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(o *apptier.Options) { o.IdleTimeout, o.MinLifetime = tc.idle, tc.minLife })
			start := time.Now()
			runUntilIdle(t, r.w)
			if got := time.Since(start); got < tc.wantAtLeast {
				t.Fatalf("stopped after %v, want at least %v", got, tc.wantAtLeast)
			}
		})
	}
}

// gatedBlob holds every Put or PutIfAbsent of a result until open is closed.
type gatedBlob struct {
	*memblob.Store
	open chan struct{}
}

func (g *gatedBlob) Put(ctx context.Context, key string, data []byte, ct string) (string, error) {
	if !strings.HasPrefix(key, "gallery/") {
		<-g.open
	}
	return g.Store.Put(ctx, key, data, ct)
}

func (g *gatedBlob) PutIfAbsent(ctx context.Context, key string, data []byte, ct string) (string, error) {
	if !strings.HasPrefix(key, "gallery/") {
		<-g.open
	}
	return g.Store.PutIfAbsent(ctx, key, data, ct)
}

func TestWorkerOverlapsStoreWithNextImageButAnswersOnlyAfterStore(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	for _, tails := range []int{1, 3} {
		t.Run(fmt.Sprintf("MaxTails=%d", tails), func(t *testing.T) { testOverlap(t, tails) })
	}
}

// testOverlap holds every result store: tails images are analysed and wait for
// their store while one more is analysed, and the rest wait for a free tail.
func testOverlap(t *testing.T, tails int) {
	gate := &gatedBlob{Store: memblob.New(), open: make(chan struct{})}
	r := newRig(t, func(o *apptier.Options) { o.Outputs = gate; o.MaxTails = tails })
	var ids []string
	for i := range tails + 2 {
		id := string(rune('a' + i))
		ids = append(ids, id)
		r.send(t, id, id+".jpg", "face", protocol.Recognize)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { done <- r.w.Run(ctx) }()

	// The stores are held: one more image is analysed meanwhile, the last waits.
	for deadline := time.Now().Add(5 * time.Second); r.eng.Calls() < tails+1; {
		if time.Now().After(deadline) {
			t.Fatalf("the next image was not analysed while results were being stored (calls %d)", r.eng.Calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := r.eng.Calls(); n != tails+1 {
		t.Fatalf("engine calls = %d while the stores are held, want %d (at most %d outstanding tails)", n, tails+1, tails)
	}
	if n := counts(t, r.resp); n.Visible != 0 {
		t.Fatalf("%d answers sent before their results were stored", n.Visible)
	}
	if n := counts(t, r.req); n.Visible+n.InFlight != len(ids) {
		t.Fatalf("requests deleted before their results were stored: %+v", n)
	}
	close(gate.open)
	if err := <-done; err != nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want an idle stop", err, ctx.Err())
	}
	got := r.responses(t)
	for _, id := range ids {
		if got[id].Error != nil || got[id].Name != engine.Unknown {
			t.Errorf("answer %s = %+v", id, got[id])
		}
		if _, _, err := gate.Get(context.Background(), id); err != nil {
			t.Errorf("result %s not stored: %v", id, err)
		}
	}
	if a := got["a"].Timings.StoreMS; a < 100 {
		t.Errorf("a's store time %.1f ms does not include the 100 ms it was held", a)
	}
	if n := counts(t, r.req); n.Visible+n.InFlight != 0 {
		t.Fatalf("request queue not empty: %+v", n)
	}
}

func TestWorkerKilledMidImageStopsExtendingVisibility(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, func(o *apptier.Options) { o.VisibilityTimeout = 300 * time.Millisecond })
	r.send(t, "a", "a.jpg", "exit", protocol.Recognize)
	died := make(chan struct{})
	go func() {
		defer close(died)
		_ = r.w.Run(context.Background())
	}()
	<-died
	// Nobody extends the dead delivery: it becomes visible again for another worker.
	for deadline := time.Now().Add(3 * time.Second); counts(t, r.req).Visible != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("request still invisible after its visibility timeout: %+v", counts(t, r.req))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// visRecorder is a queue double that records every visibility change in the
// order it took effect. An extension (d == the visibility timeout) takes 50 ms
// to reach the queue, like a slow SQS call, and releases extending on its first
// call.
type visRecorder struct {
	*memqueue.Queue
	full      time.Duration
	extending chan struct{}
	once      sync.Once
	mu        sync.Mutex
	changes   []time.Duration
}

func (v *visRecorder) ChangeVisibility(ctx context.Context, h string, d time.Duration) error {
	if d == v.full {
		v.once.Do(func() { close(v.extending) })
		time.Sleep(50 * time.Millisecond)
	}
	v.mu.Lock()
	v.changes = append(v.changes, d)
	v.mu.Unlock()
	return v.Queue.ChangeVisibility(ctx, h, d)
}

// failingBlob fails every write (a transient store error).
type failingBlob struct{ *memblob.Store }

func (failingBlob) Put(context.Context, string, []byte, string) (string, error) {
	return "", errors.New("store: connection reset")
}

func (failingBlob) PutIfAbsent(context.Context, string, []byte, string) (string, error) {
	return "", errors.New("store: connection reset")
}

func TestWorkerBackoffIsNotUndoneByTheExtender(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	const vis = 40 * time.Millisecond
	var rec *visRecorder
	var r *rig
	r = newRig(t, func(o *apptier.Options) {
		rec = &visRecorder{Queue: o.Requests.(*memqueue.Queue), full: vis, extending: make(chan struct{})}
		o.Requests, o.VisibilityTimeout, o.RetryBackoff = rec, vis, 5*time.Millisecond
		o.Outputs = failingBlob{memblob.New()}
	})
	r.send(t, "a", "a.jpg", "block", protocol.Recognize)
	msgs, err := rec.Receive(context.Background(), queue.ReceiveOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v %v", msgs, err)
	}
	go func() { <-rec.extending; r.eng.Release() }() // finish while an extension is on its way
	r.w.Handle(context.Background(), msgs[0])
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.changes); n < 2 || rec.changes[n-1] != 5*time.Millisecond {
		t.Fatalf("visibility changes %v: the last must be the 5ms retry backoff, not an extension", rec.changes)
	}
}

// keyRefusingBlob refuses result keys as a store with stricter key rules would.
type keyRefusingBlob struct{ *memblob.Store }

func (keyRefusingBlob) Put(_ context.Context, key string, _ []byte, _ string) (string, error) {
	return "", fmt.Errorf("store: key %q: %w", key, blob.ErrInvalidKey)
}

func (keyRefusingBlob) PutIfAbsent(_ context.Context, key string, _ []byte, _ string) (string, error) {
	return "", fmt.Errorf("store: key %q: %w", key, blob.ErrInvalidKey)
}

func TestWorkerStoreKeyErrorIsPermanent(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	r := newRig(t, func(o *apptier.Options) { o.Outputs = keyRefusingBlob{memblob.New()} })
	r.send(t, "a", "x.jpg", "face", protocol.Classify)
	runUntilIdle(t, r.w)
	got := r.responses(t)["a"]
	if got.Error == nil || got.Error.Code != protocol.CodeBadRequest || !strings.Contains(got.Error.Message, "x.jpg") {
		t.Fatalf("answer = %+v, want a bad_request error naming the file", got)
	}
	if n := r.eng.Calls(); n != 1 {
		t.Fatalf("engine ran %d times: a key the store refuses was retried as transient", n)
	}
	if n := counts(t, r.req); n.Visible+n.InFlight != 0 {
		t.Fatalf("request not deleted: %+v", n)
	}
	if n := counts(t, r.dlq); n.Visible != 0 {
		t.Fatalf("request dead-lettered: %+v", n)
	}
}

func TestWorkerAnswersOnTheRequestsReplyToQueue(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	other, err := memqueue.New(memqueue.Options{Name: "other", MaxMessageSize: protocol.MaxResponseBytes})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(o *apptier.Options) {
		o.ReplyQueue = func(addr string) (queue.Queue, error) {
			if addr == "other" {
				return other, nil
			}
			return nil, fmt.Errorf("unknown queue %q", addr)
		}
	})
	ctx := context.Background()
	etag, _ := r.in.Put(ctx, "b.jpg", []byte("face"), "image/png")
	body, err := protocol.EncodeRequest(protocol.Request{ID: "b", Key: "b.jpg", ETag: etag, Kind: protocol.Classify, ReplyTo: "other"})
	if err != nil {
		t.Fatal(err)
	}
	r.req.Send(ctx, body)
	r.send(t, "a", "a.jpg", "face", protocol.Classify) // no reply-to: the default queue
	runUntilIdle(t, r.w)
	if got := r.responses(t); len(got) != 1 || got["a"].ID != "a" {
		t.Fatalf("default response queue holds %v, want only a", got)
	}
	msgs, _ := other.Receive(ctx, queue.ReceiveOptions{MaxMessages: 10})
	if len(msgs) != 1 || !strings.Contains(msgs[0].Body, `"id":"b"`) {
		t.Fatalf("reply-to queue holds %v, want b's answer", msgs)
	}
}

// Drain, unlike a cancel, lets the receive in progress finish: a request that
// arrives during the long poll in which Drain was called is answered and
// deleted, never left invisible in a receive nobody reads; then Run returns,
// leaving the requests it did not receive on the queue.
func TestWorkerDrainFinishesTheReceiveInProgress(t *testing.T) {
	r := newRig(t, func(o *apptier.Options) { o.IdleTimeout = 0; o.WaitTime = time.Second })
	done := make(chan error, 1)
	go func() { done <- r.w.Run(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // in the long poll
	r.w.Drain()
	r.w.Drain() // twice is fine
	r.send(t, "x", "x.jpg", "face", protocol.Classify)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Drain")
	}
	r.send(t, "y", "y.jpg", "face", protocol.Classify)
	got := r.responses(t)
	if len(got) != 1 || got["x"].Name != "Unknown" {
		t.Fatalf("after drain got %+v; want the request received during the poll answered", got)
	}
	if n := counts(t, r.req); n.Visible != 1 || n.InFlight != 0 {
		t.Fatalf("request queue %+v; want only the later request, visible", n)
	}
}

// batchingBlob is a store like fileblob with its log: PutBatch makes objects
// readable at once and durable when durable returns, which waits for open
// and then reports fail. What it does not model, and the worker does not
// depend on: the log's group commit (one sync shared by several batches),
// checkpoints, replay, and write-behind's files appearing later.
type batchingBlob struct {
	*memblob.Store
	open    chan struct{}
	fail    error
	batches atomic.Int64
}

func (b *batchingBlob) PutBatch(ctx context.Context, objs []blob.Object) (func() error, error) {
	b.batches.Add(1)
	for _, o := range objs {
		if _, err := b.Put(ctx, o.Key, o.Data, o.ContentType); err != nil {
			return nil, err
		}
	}
	return func() error { <-b.open; return b.fail }, nil
}

// On a store whose writes become durable after they are readable, the answer
// goes out once the result is stored, and the request is deleted only once it
// is durable; when it cannot be made durable the request is left to be done
// again (and answered again: the web tier drops the second answer).
func TestWorkerAnswersWhenStoredDeletesWhenDurable(t *testing.T) {
	t.Parallel() // every test has its own rig (in-memory queues and stores)
	store := &batchingBlob{Store: memblob.New(), open: make(chan struct{})}
	r := newRig(t, func(o *apptier.Options) { o.Outputs = store })
	r.send(t, "a", "a.jpg", "face", protocol.Recognize)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); counts(t, r.resp).Visible == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no answer while the result is stored but not yet durable")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := counts(t, r.req); n.Visible+n.InFlight != 1 {
		t.Fatalf("request deleted before its result was durable: %+v", n)
	}
	if store.batches.Load() != 1 {
		t.Fatalf("%d batches, want the result and its record in one", store.batches.Load())
	}
	close(store.open)
	if err := <-done; err != nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want an idle stop", err, ctx.Err())
	}
	if n := counts(t, r.req); n.Visible+n.InFlight != 0 {
		t.Fatalf("request not deleted once durable: %+v", n)
	}

	failing := &batchingBlob{Store: memblob.New(), open: make(chan struct{}), fail: errors.New("log sync failed")}
	close(failing.open)
	r2 := newRig(t, func(o *apptier.Options) { o.Outputs = failing })
	r2.send(t, "b", "b.jpg", "face", protocol.Recognize)
	runUntilIdle(t, r2.w)
	// Answered on every receive, never deleted: after MaxReceiveCount (2) the
	// queue moves it to the dead-letter queue.
	if n := counts(t, r2.dlq); n.Visible != 1 {
		t.Fatalf("dead-letter queue %+v; want the request whose result never became durable", n)
	}
	if got := failing.batches.Load(); got != 2 {
		t.Fatalf("%d stores, want one per receive (2)", got)
	}
}
