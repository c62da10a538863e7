// Package queuetest is the conformance suite of the queue port. Every adapter
// (memqueue in process, sqsqueue against fauxqs or SQS) runs it from its own tests:
//
//	queuetest.Run(t, queuetest.Harness{New: func(t *testing.T, cfg queuetest.Config) (q, dlq queue.Queue) { ... }})
//
// Timings are whole seconds (SQS's unit) with tolerances for a real server over
// loopback; subtests run in parallel on their own queues, so the suite takes a few
// seconds per adapter. It asserts only behaviour that SQS and fauxqs share.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/queue"
)

// Config is the queue pair a subtest asks for.
type Config struct {
	// VisibilityTimeout is the queue's default, a whole number of seconds >= 1.
	VisibilityTimeout time.Duration
	// MaxReceiveCount > 0 asks for a redrive policy to a fresh dead-letter queue
	// with this maxReceiveCount; 0 asks for no dead-letter queue.
	MaxReceiveCount int
	// MaxMessageSize is the queue's maximum body in bytes (always 1024 here, the
	// smallest SQS allows).
	MaxMessageSize int
}

// Harness adapts an implementation to the suite.
type Harness struct {
	// New returns a fresh, empty queue configured as cfg, and its dead-letter
	// queue (nil when cfg.MaxReceiveCount is 0). It is called concurrently from
	// parallel subtests; clean up with t.Cleanup.
	New func(t *testing.T, cfg Config) (q, dlq queue.Queue)
	// StaleHandleAccepted: the backend accepts ChangeVisibility with a receipt
	// handle superseded by a later receive (moto 5.2.1 does; SQS and fauxqs
	// refuse it), so the suite skips that one check. docs/emulators.md.
	StaleHandleAccepted bool
}

// Timing margins for a server over loopback.
const (
	slack   = 700 * time.Millisecond // lateness tolerated on top of a wait
	early   = 150 * time.Millisecond // clock skew tolerated before a deadline
	pollFor = 3 * time.Second        // how long approximate counts may take to settle
)

// Run runs every conformance test against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("queuetest: Harness.New is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"SendReceiveDelete", testSendReceiveDelete},
		{"BodyRoundTrip", testBodyRoundTrip},
		{"BodyLimits", testBodyLimits},
		{"ReceiveEmptyNoWait", testReceiveEmptyNoWait},
		{"LongPollWakesOnSend", testLongPollWakesOnSend},
		{"LongPollTimesOut", testLongPollTimesOut},
		{"ReceiveHonoursContext", testReceiveHonoursContext},
		{"MaxMessages", testMaxMessages},
		{"InvalidReceiveOptions", testInvalidReceiveOptions},
		{"VisibilityTimeoutRedelivery", testVisibilityRedelivery},
		{"ReceiveVisibilityOverride", testReceiveVisibilityOverride},
		{"ChangeVisibilityZero", testChangeVisibilityZero},
		{"ChangeVisibilityExtends", testChangeVisibilityExtends},
		{"ChangeVisibilityInvalid", testChangeVisibilityInvalid},
		{"DeleteInFlight", testDeleteInFlight},
		{"DeleteIdempotent", testDeleteIdempotent},
		{"Counts", testCounts},
		{"DeadLetterAfterMaxReceives", testDeadLetter},
		{"ConcurrentReceiversExclusive", testConcurrentReceivers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

func cfg(vis time.Duration, maxReceive int) Config {
	return Config{VisibilityTimeout: vis, MaxReceiveCount: maxReceive, MaxMessageSize: 1024}
}

func newQueue(t *testing.T, h Harness, c Config) (queue.Queue, queue.Queue) {
	t.Helper()
	q, dlq := h.New(t, c)
	if q == nil {
		t.Fatal("Harness.New returned a nil queue")
	}
	if c.MaxReceiveCount > 0 && dlq == nil {
		t.Fatal("Harness.New returned no dead-letter queue although MaxReceiveCount > 0")
	}
	return q, dlq
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func send(t *testing.T, q queue.Queue, body string) string {
	t.Helper()
	id, err := q.Send(ctxT(t), body)
	if err != nil {
		t.Fatalf("Send(%.40q): %v", body, err)
	}
	if id == "" {
		t.Fatal("Send returned an empty message ID")
	}
	return id
}

func receive(t *testing.T, q queue.Queue, opts queue.ReceiveOptions) []queue.Message {
	t.Helper()
	msgs, err := q.Receive(ctxT(t), opts)
	if err != nil {
		t.Fatalf("Receive(%+v): %v", opts, err)
	}
	return msgs
}

// receiveOne long-polls until one message arrives or wait passes.
func receiveOne(t *testing.T, q queue.Queue, wait time.Duration) queue.Message {
	t.Helper()
	deadline := time.Now().Add(wait + slack)
	for time.Now().Before(deadline) {
		w := time.Until(deadline).Truncate(time.Second)
		if w < time.Second {
			w = time.Second
		}
		msgs := receive(t, q, queue.ReceiveOptions{WaitTime: w})
		if len(msgs) > 1 {
			t.Fatalf("Receive with MaxMessages 0 returned %d messages, want at most 1", len(msgs))
		}
		if len(msgs) == 1 {
			return msgs[0]
		}
	}
	t.Fatalf("no message received within %v", wait+slack)
	return queue.Message{}
}

func expectEmpty(t *testing.T, q queue.Queue, wait time.Duration, why string) {
	t.Helper()
	msgs := receive(t, q, queue.ReceiveOptions{WaitTime: wait, MaxMessages: 10})
	if len(msgs) > 0 {
		t.Fatalf("%s: received %d message(s) (first %q, count %d), want none", why, len(msgs), msgs[0].Body, msgs[0].ReceiveCount)
	}
}

func waitCounts(t *testing.T, q queue.Queue, want queue.Counts) {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	var got queue.Counts
	for {
		var err error
		got, err = q.Counts(ctxT(t))
		if err != nil {
			t.Fatalf("Counts: %v", err)
		}
		if got.Visible == want.Visible && got.InFlight == want.InFlight {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Counts = %+v, want Visible %d InFlight %d (waited %v)", got, want.Visible, want.InFlight, pollFor)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testSendReceiveDelete(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	before := time.Now()
	id := send(t, q, "hello")
	m := receiveOne(t, q, 2*time.Second)
	if m.ID != id || m.Body != "hello" {
		t.Fatalf("received ID %q body %q, want %q %q", m.ID, m.Body, id, "hello")
	}
	if m.ReceiptHandle == "" {
		t.Fatal("received message has no receipt handle")
	}
	if m.ReceiveCount != 1 {
		t.Fatalf("ReceiveCount = %d on first delivery, want 1", m.ReceiveCount)
	}
	// SentTimestamp has millisecond resolution and the server's clock is ours.
	if m.SentAt.Before(before.Add(-time.Second)) || m.SentAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("SentAt = %v, want between %v and now", m.SentAt, before)
	}
	if err := q.Delete(ctxT(t), m.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitCounts(t, q, queue.Counts{})
	expectEmpty(t, q, 0, "after Delete")
}

func testBodyRoundTrip(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	// Astral-plane characters (emoji) are legal in SQS but fauxqs rejects them, so
	// the shared suite stays in the Basic Multilingual Plane.
	bodies := []string{
		`{"id":"r-1","key":"uploads/a b/ü.jpg","n":[1,2,3]}`,
		"Grüße, 世界! ¿Qué? Ωμέγα — ‘quotes’ «guillemets»",
		"tabs\tand\nnewlines\r\nkept  ",
		`<xml attr="1">&amp; &lt;tags&gt; %20 + = ? # \ </xml>`,
		strings.Repeat("é", 512), // exactly 1024 bytes
	}
	want := make(map[string]string, len(bodies))
	for _, b := range bodies {
		want[send(t, q, b)] = b
	}
	got := make(map[string]string)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(bodies) && time.Now().Before(deadline) {
		for _, m := range receive(t, q, queue.ReceiveOptions{MaxMessages: 10, WaitTime: time.Second}) {
			got[m.ID] = m.Body
		}
	}
	for id, b := range want {
		if got[id] != b {
			t.Errorf("message %s: body %q, want %q", id, got[id], b)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("received %d distinct messages, want %d", len(got), len(want))
	}
}

func testBodyLimits(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	ctx := ctxT(t)
	if _, err := q.Send(ctx, strings.Repeat("x", 1024)); err != nil {
		t.Fatalf("Send of exactly 1024 bytes: %v", err)
	}
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"1025 bytes", strings.Repeat("x", 1025), queue.ErrTooLarge},
		{"1025 bytes in 2-byte runes", strings.Repeat("é", 512) + "x", queue.ErrTooLarge},
		{"empty", "", queue.ErrInvalidBody},
		{"NUL", "a\x00b", queue.ErrInvalidBody},
		{"control char", "a\x01b", queue.ErrInvalidBody},
	} {
		if _, err := q.Send(ctx, tc.body); !errors.Is(err, tc.want) {
			t.Errorf("Send(%s) error = %v, want %v", tc.name, err, tc.want)
		}
	}
	waitCounts(t, q, queue.Counts{Visible: 1})
}

func testReceiveEmptyNoWait(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	start := time.Now()
	expectEmpty(t, q, 0, "empty queue")
	if d := time.Since(start); d > slack {
		t.Fatalf("Receive without wait on an empty queue took %v", d)
	}
}

func testLongPollWakesOnSend(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	type result struct {
		msgs []queue.Message
		err  error
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		msgs, err := q.Receive(ctxT(t), queue.ReceiveOptions{WaitTime: 5 * time.Second})
		done <- result{msgs, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond) // let the poll start waiting
	sentAt := time.Now()
	id := send(t, q, "wake up")
	r := <-done
	if r.err != nil {
		t.Fatalf("Receive: %v", r.err)
	}
	if len(r.msgs) != 1 || r.msgs[0].ID != id {
		t.Fatalf("long poll returned %d messages, want the one sent (%s)", len(r.msgs), id)
	}
	if d := r.at.Sub(sentAt); d > 2*time.Second {
		t.Fatalf("long poll returned %v after the send; it should wake at once, not at the 5 s wait", d)
	}
}

func testLongPollTimesOut(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	start := time.Now()
	expectEmpty(t, q, time.Second, "long poll on an empty queue")
	d := time.Since(start)
	if d < time.Second-early || d > time.Second+slack+time.Second {
		t.Fatalf("1 s long poll on an empty queue returned after %v", d)
	}
}

func testReceiveHonoursContext(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	msgs, err := q.Receive(ctx, queue.ReceiveOptions{WaitTime: 5 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive with a cancelled context: %d messages, error %v; want context.Canceled", len(msgs), err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Receive took %v to notice the cancelled context (wait was 5 s)", d)
	}
	if _, err := q.Send(ctx, "late"); err == nil {
		t.Fatal("Send with a cancelled context succeeded")
	}
}

func testMaxMessages(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	const n = 15
	for i := range n {
		send(t, q, fmt.Sprintf("m%02d", i))
	}
	waitCounts(t, q, queue.Counts{Visible: n})
	// MaxMessages 0 means one.
	first := receive(t, q, queue.ReceiveOptions{WaitTime: time.Second})
	if len(first) != 1 {
		t.Fatalf("Receive with MaxMessages 0 returned %d messages, want 1", len(first))
	}
	seen := map[string]bool{first[0].ID: true}
	largest := 0
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		msgs := receive(t, q, queue.ReceiveOptions{MaxMessages: 10, WaitTime: time.Second})
		if len(msgs) > 10 {
			t.Fatalf("Receive with MaxMessages 10 returned %d", len(msgs))
		}
		largest = max(largest, len(msgs))
		for _, m := range msgs {
			if seen[m.ID] {
				t.Fatalf("message %s delivered twice within its visibility timeout", m.ID)
			}
			seen[m.ID] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("received %d distinct messages, want %d", len(seen), n)
	}
	if largest < 2 {
		t.Fatalf("no batch held more than one message although %d were visible", n-1)
	}
	waitCounts(t, q, queue.Counts{InFlight: n})
}

func testInvalidReceiveOptions(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	ctx := ctxT(t)
	for _, o := range []queue.ReceiveOptions{
		{MaxMessages: 11},
		{MaxMessages: -1},
		{WaitTime: 21 * time.Second},
		{WaitTime: -time.Second},
		{VisibilityTimeout: -time.Second},
	} {
		if _, err := q.Receive(ctx, o); !errors.Is(err, queue.ErrInvalidArgument) {
			t.Errorf("Receive(%+v) error = %v, want ErrInvalidArgument", o, err)
		}
	}
}

func testVisibilityRedelivery(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(time.Second, 0))
	id := send(t, q, "again")
	m1 := receiveOne(t, q, time.Second)
	got1 := time.Now()
	expectEmpty(t, q, 0, "while the first delivery is invisible")
	m2 := receiveOne(t, q, 2*time.Second)
	if d := time.Since(got1); d < time.Second-early-300*time.Millisecond {
		t.Fatalf("message came back %v after the first receive, before its 1 s visibility timeout", d)
	}
	if m2.ID != id || m2.Body != "again" {
		t.Fatalf("redelivered %q/%q, want %q/%q", m2.ID, m2.Body, id, "again")
	}
	if m1.ReceiveCount != 1 || m2.ReceiveCount != 2 {
		t.Fatalf("receive counts %d then %d, want 1 then 2", m1.ReceiveCount, m2.ReceiveCount)
	}
	if m2.ReceiptHandle == m1.ReceiptHandle {
		t.Fatal("redelivery reused the receipt handle; each receive must get a new one")
	}
	// The first handle is stale: changing its visibility fails in SQS and fauxqs.
	if err := q.ChangeVisibility(ctxT(t), m1.ReceiptHandle, 5*time.Second); !h.StaleHandleAccepted && !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Fatalf("ChangeVisibility with a stale handle: %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(ctxT(t), m2.ReceiptHandle); err != nil {
		t.Fatalf("Delete with the latest handle: %v", err)
	}
	waitCounts(t, q, queue.Counts{})
}

func testReceiveVisibilityOverride(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	send(t, q, "short")
	m1 := receive(t, q, queue.ReceiveOptions{WaitTime: time.Second, VisibilityTimeout: time.Second})
	if len(m1) != 1 {
		t.Fatalf("first receive returned %d messages", len(m1))
	}
	m2 := receiveOne(t, q, 2*time.Second) // the queue default (30 s) would never return it
	if m2.ID != m1[0].ID || m2.ReceiveCount != 2 {
		t.Fatalf("redelivered %s count %d, want %s count 2", m2.ID, m2.ReceiveCount, m1[0].ID)
	}
}

func testChangeVisibilityZero(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	send(t, q, "release me")
	m1 := receiveOne(t, q, time.Second)
	if err := q.ChangeVisibility(ctxT(t), m1.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	start := time.Now()
	m2 := receiveOne(t, q, time.Second)
	if d := time.Since(start); d > slack {
		t.Fatalf("message released with visibility 0 took %v to come back", d)
	}
	if m2.ID != m1.ID || m2.ReceiveCount != 2 {
		t.Fatalf("got %s count %d, want %s count 2", m2.ID, m2.ReceiveCount, m1.ID)
	}
	// Shorten the remaining 30 s to 1 s.
	if err := q.ChangeVisibility(ctxT(t), m2.ReceiptHandle, time.Second); err != nil {
		t.Fatalf("ChangeVisibility(1s): %v", err)
	}
	m3 := receiveOne(t, q, 2*time.Second)
	if m3.ID != m1.ID || m3.ReceiveCount != 3 {
		t.Fatalf("got %s count %d, want %s count 3", m3.ID, m3.ReceiveCount, m1.ID)
	}
}

func testChangeVisibilityExtends(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(time.Second, 0))
	send(t, q, "busy")
	m := receiveOne(t, q, time.Second)
	// A worker busy with a long image extends its lease before it runs out.
	if err := q.ChangeVisibility(ctxT(t), m.ReceiptHandle, 4*time.Second); err != nil {
		t.Fatalf("ChangeVisibility(4s): %v", err)
	}
	expectEmpty(t, q, 2*time.Second, "after extending the visibility to 4 s")
	if err := q.Delete(ctxT(t), m.ReceiptHandle); err != nil {
		t.Fatalf("Delete after extending: %v", err)
	}
	waitCounts(t, q, queue.Counts{})
}

func testChangeVisibilityInvalid(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	ctx := ctxT(t)
	send(t, q, "x")
	m := receiveOne(t, q, time.Second)
	if err := q.ChangeVisibility(ctx, m.ReceiptHandle, -time.Second); !errors.Is(err, queue.ErrInvalidArgument) {
		t.Errorf("ChangeVisibility(-1s) = %v, want ErrInvalidArgument", err)
	}
	if err := q.ChangeVisibility(ctx, m.ReceiptHandle, 13*time.Hour); !errors.Is(err, queue.ErrInvalidArgument) {
		t.Errorf("ChangeVisibility(13h) = %v, want ErrInvalidArgument", err)
	}
	if err := q.Delete(ctx, m.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := q.ChangeVisibility(ctx, m.ReceiptHandle, time.Second); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility of a deleted message = %v, want ErrInvalidReceipt", err)
	}
	if err := q.ChangeVisibility(ctx, "", time.Second); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility with an empty handle = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(ctx, ""); !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Errorf("Delete with an empty handle = %v, want ErrInvalidReceipt", err)
	}
}

func testDeleteInFlight(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(time.Second, 0))
	send(t, q, "one")
	send(t, q, "two")
	var msgs []queue.Message
	deadline := time.Now().Add(3 * time.Second)
	for len(msgs) < 2 && time.Now().Before(deadline) {
		msgs = append(msgs, receive(t, q, queue.ReceiveOptions{MaxMessages: 2, WaitTime: time.Second})...)
	}
	if len(msgs) != 2 {
		t.Fatalf("received %d messages, want 2", len(msgs))
	}
	if err := q.Delete(ctxT(t), msgs[0].ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// Only the undeleted one comes back after the 1 s visibility timeout.
	back := receiveOne(t, q, 2*time.Second)
	if back.ID != msgs[1].ID {
		t.Fatalf("redelivered %s (%q), want the undeleted %s", back.ID, back.Body, msgs[1].ID)
	}
	if err := q.Delete(ctxT(t), back.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitCounts(t, q, queue.Counts{})
}

func testDeleteIdempotent(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(time.Second, 0))
	ctx := ctxT(t)
	send(t, q, "once")
	m1 := receiveOne(t, q, time.Second)
	m2 := receiveOne(t, q, 2*time.Second) // redelivered: m1's handle is now stale
	// A stale handle is accepted without error (SQS and fauxqs agree), whatever it did.
	if err := q.Delete(ctx, m1.ReceiptHandle); err != nil {
		t.Fatalf("Delete with a stale handle: %v", err)
	}
	if err := q.Delete(ctx, m2.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := q.Delete(ctx, m2.ReceiptHandle); err != nil {
		t.Fatalf("second Delete of the same handle: %v", err)
	}
	waitCounts(t, q, queue.Counts{})
}

func testCounts(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	waitCounts(t, q, queue.Counts{})
	for i := range 3 {
		send(t, q, fmt.Sprint("c", i))
	}
	waitCounts(t, q, queue.Counts{Visible: 3})
	var msgs []queue.Message
	deadline := time.Now().Add(3 * time.Second)
	for len(msgs) < 2 && time.Now().Before(deadline) {
		msgs = append(msgs, receive(t, q, queue.ReceiveOptions{MaxMessages: 2 - len(msgs), WaitTime: time.Second})...)
	}
	if len(msgs) != 2 {
		t.Fatalf("received %d messages, want 2", len(msgs))
	}
	waitCounts(t, q, queue.Counts{Visible: 1, InFlight: 2})
	if err := q.Delete(ctxT(t), msgs[0].ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	waitCounts(t, q, queue.Counts{Visible: 1, InFlight: 1})
	if err := q.ChangeVisibility(ctxT(t), msgs[1].ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	waitCounts(t, q, queue.Counts{Visible: 2})
}

func testDeadLetter(t *testing.T, h Harness) {
	const maxReceive = 2
	q, dlq := newQueue(t, h, cfg(30*time.Second, maxReceive))
	const body = `{"poison":"ünïcode body survives the redrive"}`
	id := send(t, q, body)
	send(t, q, "healthy")
	poisonSeen := 0
	deadline := time.Now().Add(8 * time.Second)
	// Receive both until the poison message stops coming: release it each time
	// (visibility 0), as a failing worker would, and delete the healthy one.
	for time.Now().Before(deadline) {
		msgs := receive(t, q, queue.ReceiveOptions{MaxMessages: 10, WaitTime: time.Second})
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if m.ID != id {
				if err := q.Delete(ctxT(t), m.ReceiptHandle); err != nil {
					t.Fatalf("Delete healthy: %v", err)
				}
				continue
			}
			poisonSeen++
			if m.ReceiveCount != poisonSeen {
				t.Fatalf("poison delivery %d has ReceiveCount %d", poisonSeen, m.ReceiveCount)
			}
			if poisonSeen > maxReceive {
				t.Fatalf("poison message delivered %d times with maxReceiveCount %d", poisonSeen, maxReceive)
			}
			if err := q.ChangeVisibility(ctxT(t), m.ReceiptHandle, 0); err != nil {
				t.Fatalf("ChangeVisibility(0): %v", err)
			}
		}
	}
	if poisonSeen != maxReceive {
		t.Fatalf("poison message delivered %d times, want exactly maxReceiveCount = %d", poisonSeen, maxReceive)
	}
	m := receiveOne(t, dlq, 2*time.Second)
	if m.ID != id || m.Body != body {
		t.Fatalf("dead-letter queue holds %s %q, want %s %q", m.ID, m.Body, id, body)
	}
	if m.ReceiveCount < 1 {
		t.Fatalf("dead-letter delivery has ReceiveCount %d", m.ReceiveCount)
	}
	waitCounts(t, q, queue.Counts{})
	waitCounts(t, dlq, queue.Counts{InFlight: 1})
}

func testConcurrentReceivers(t *testing.T, h Harness) {
	q, _ := newQueue(t, h, cfg(30*time.Second, 0))
	const n, workers = 24, 6
	want := make(map[string]bool, n)
	for i := range n {
		want[send(t, q, fmt.Sprint("job-", i))] = true
	}
	var (
		mu    sync.Mutex
		got   = make(map[string]int)
		total int
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(8 * time.Second)
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				mu.Lock()
				finished := total >= n
				mu.Unlock()
				if finished {
					return
				}
				msgs, err := q.Receive(ctxT(t), queue.ReceiveOptions{MaxMessages: 3, WaitTime: time.Second})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, m := range msgs {
					got[m.ID]++
					total++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Receive: %v", err)
	}
	for id, c := range got {
		if c > 1 {
			t.Errorf("message %s delivered %d times while invisible", id, c)
		}
		if !want[id] {
			t.Errorf("received unknown message %s", id)
		}
	}
	if len(got) != n {
		t.Fatalf("received %d distinct messages, want %d", len(got), n)
	}
}
