package memqueue_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/internal/queue/queuetest"
	"github.com/facefleet/facefleet/internal/testenv"
)

func TestConformance(t *testing.T) {
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T, cfg queuetest.Config) (queue.Queue, queue.Queue) {
			var dlq *memqueue.Queue
			if cfg.MaxReceiveCount > 0 {
				dlq = mustNew(t, memqueue.Options{Name: "dlq", MaxMessageSize: cfg.MaxMessageSize})
			}
			q := mustNew(t, memqueue.Options{
				Name:              "main",
				VisibilityTimeout: cfg.VisibilityTimeout,
				MaxMessageSize:    cfg.MaxMessageSize,
				DeadLetter:        dlq,
				MaxReceiveCount:   cfg.MaxReceiveCount,
			})
			if dlq == nil {
				return q, nil
			}
			return q, dlq
		},
	})
}

func mustNew(t *testing.T, o memqueue.Options) *memqueue.Queue {
	t.Helper()
	q, err := memqueue.New(o)
	if err != nil {
		t.Fatalf("memqueue.New(%+v): %v", o, err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func TestNewRejectsBadOptions(t *testing.T) {
	dlq := mustNew(t, memqueue.Options{})
	for _, o := range []memqueue.Options{
		{VisibilityTimeout: -time.Second},
		{VisibilityTimeout: 13 * time.Hour},
		{MaxMessageSize: -1},
		{DeadLetter: dlq},
		{DeadLetter: dlq, MaxReceiveCount: 1001},
	} {
		if _, err := memqueue.New(o); !errors.Is(err, queue.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want ErrInvalidArgument", o, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	q := mustNew(t, memqueue.Options{})
	ctx := context.Background()
	if _, err := q.Send(ctx, string(make([]byte, 1025))); !errors.Is(err, queue.ErrTooLarge) {
		t.Fatalf("default size limit: %v, want ErrTooLarge", err)
	}
	// Astral-plane runes are legal in SQS (fauxqs differs, so the suite skips them).
	if _, err := q.Send(ctx, "emoji 🙂 ok"); err != nil {
		t.Fatalf("Send with an emoji: %v", err)
	}
	if _, err := q.Send(ctx, "bad \xff utf8"); !errors.Is(err, queue.ErrInvalidBody) {
		t.Fatalf("invalid UTF-8: %v, want ErrInvalidBody", err)
	}
}

// With a fake clock the 30 s default visibility and the redrive run instantly.
func TestFakeClockVisibility(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	dlq := mustNew(t, memqueue.Options{Now: clock})
	q := mustNew(t, memqueue.Options{Now: clock, DeadLetter: dlq, MaxReceiveCount: 3})
	ctx := context.Background()
	id, err := q.Send(ctx, "tick")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		msgs, err := q.Receive(ctx, queue.ReceiveOptions{})
		if err != nil || len(msgs) != 1 || msgs[0].ReceiveCount != i {
			t.Fatalf("receive %d: %v %+v", i, err, msgs)
		}
		if !msgs[0].SentAt.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("SentAt = %v, want the fake clock's time", msgs[0].SentAt)
		}
		advance(29 * time.Second)
		if c, _ := q.Counts(ctx); c.InFlight != 1 {
			t.Fatalf("before the 30 s timeout: %+v", c)
		}
		advance(time.Second)
		if c, _ := q.Counts(ctx); c.Visible != 1 {
			t.Fatalf("at the 30 s timeout: %+v", c)
		}
	}
	if msgs, err := q.Receive(ctx, queue.ReceiveOptions{}); err != nil || len(msgs) != 0 {
		t.Fatalf("fourth receive: %v %+v, want the redrive", err, msgs)
	}
	msgs, err := dlq.Receive(ctx, queue.ReceiveOptions{})
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].ReceiveCount != 4 {
		t.Fatalf("dead-letter receive: %v %+v, want %s with count 4", err, msgs, id)
	}
}

// A message whose visibility ran out can still be deleted with its latest handle
// until someone receives it again.
func TestDeleteAfterExpiryBeforeRedelivery(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	q := mustNew(t, memqueue.Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	ctx := context.Background()
	if _, err := q.Send(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	msgs, _ := q.Receive(ctx, queue.ReceiveOptions{})
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if err := q.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if c, _ := q.Counts(ctx); c != (queue.Counts{}) {
		t.Fatalf("counts after delete: %+v", c)
	}
	if msgs, _ := q.Receive(ctx, queue.ReceiveOptions{}); len(msgs) != 0 {
		t.Fatalf("deleted message delivered: %+v", msgs)
	}
}

func TestCloseWakesWaitersAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	q, err := memqueue.New(memqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() {
			_, err := q.Receive(context.Background(), queue.ReceiveOptions{WaitTime: 20 * time.Second})
			errs <- err
		})
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v to release the waiters", d)
	}
	for err := range errs {
		if !errors.Is(err, memqueue.ErrClosed) {
			t.Fatalf("waiter returned %v, want ErrClosed", err)
		}
	}
	if _, err := q.Send(context.Background(), "x"); !errors.Is(err, memqueue.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	testenv.NoGoroutineLeak(t, before)
}

// A long poll wakes when an in-flight message's visibility runs out, without a send.
func TestLongPollWakesOnExpiry(t *testing.T) {
	q := mustNew(t, memqueue.Options{VisibilityTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	if _, err := q.Send(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := q.Receive(ctx, queue.ReceiveOptions{}); len(msgs) != 1 {
		t.Fatal("no first delivery")
	}
	start := time.Now()
	msgs, err := q.Receive(ctx, queue.ReceiveOptions{WaitTime: 10 * time.Second})
	if err != nil || len(msgs) != 1 || msgs[0].ReceiveCount != 2 {
		t.Fatalf("%v %+v", err, msgs)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("long poll took %v to see a 100 ms expiry", d)
	}
}

func BenchmarkSendReceiveDelete(b *testing.B) {
	q, err := memqueue.New(memqueue.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := q.Send(ctx, "benchmark body"); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.Receive(ctx, queue.ReceiveOptions{})
		if err != nil || len(msgs) != 1 {
			b.Fatal(err, len(msgs))
		}
		if err := q.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
			b.Fatal(err)
		}
	}
}
