package webtier_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/webtier"
)

func timeoutOptions(t *testing.T, vis time.Duration, maxReceives int, lim webtier.Limits) (webtier.Options, *memqueue.Queue) {
	t.Helper()
	dlq, _ := memqueue.New(memqueue.Options{Name: "dlq"})
	req, err := memqueue.New(memqueue.Options{Name: "req", VisibilityTimeout: vis, DeadLetter: dlq, MaxReceiveCount: maxReceives})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := memqueue.New(memqueue.Options{Name: "resp"})
	return webtier.Options{Requests: req, Responses: resp, RequestDLQ: dlq, Inputs: memblob.New(), Outputs: memblob.New(),
		Limits: lim, MaxReceives: maxReceives, Visibility: vis, PollWait: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, req
}

// The defaults of old (visibility 30 s, 3 receives, request timeout 60 s) hid a
// crash-looping request for 90 s: its caller got 504, not 502. Such settings
// are now refused at start-up, and an unset timeout is derived.
func TestRequestTimeoutConsistentWithTheQueue(t *testing.T) {
	o, _ := timeoutOptions(t, 30*time.Second, 3, webtier.Limits{RequestTimeout: 60 * time.Second})
	o.PollWait = 10 * time.Second
	if _, err := webtier.New(o); err == nil || !strings.Contains(err.Error(), "504 instead of 502") || !strings.Contains(err.Error(), "1m45s") {
		t.Fatalf("New with a 60s timeout, 3 × 30s visibility = %v; want a refusal naming the 1m45s minimum", err)
	}
	o.Limits.RequestTimeout = 0
	s, err := webtier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.RequestTimeout(), webtier.MinRequestTimeout(3, 30*time.Second, 10*time.Second); got != want || want != 105*time.Second {
		t.Fatalf("derived request timeout %s, want %s = 3 × 30s + 10s + 5s", got, want)
	}
	o.Limits.RequestTimeout = 2 * time.Minute // longer is fine
	if s, err := webtier.New(o); err != nil || s.RequestTimeout() != 2*time.Minute {
		t.Fatalf("New with a longer timeout: %v", err)
	}
}

// With a derived timeout a request whose worker dies every time gets its 502
// from the dead-letter queue, never a 504.
func TestCrashLoopingRequestGets502WithDerivedTimeout(t *testing.T) {
	const vis = 300 * time.Millisecond
	o, req := timeoutOptions(t, vis, 3, webtier.Limits{})
	s, err := webtier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = s.Serve(ctx, ln) })
	wg.Go(func() { // a worker that dies with every image: receives, never answers
		for ctx.Err() == nil {
			_, _ = req.Receive(ctx, queue.ReceiveOptions{WaitTime: 50 * time.Millisecond})
		}
	})
	body, ct := multipartBody(t, "inputFile", "crash.png", pngBytes(t, 8, 8))
	start := time.Now()
	res, err := httpPost("http://"+ln.Addr().String()+"/", ct, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.code != 502 || !strings.Contains(res.body, "after 3 attempts") {
		t.Fatalf("crash-looping request: %d %q after %s (timeout %s), want 502", res.code, res.body, time.Since(start), s.RequestTimeout())
	}
	if d := time.Since(start); d < 3*vis {
		t.Fatalf("answered after %s, before three visibility timeouts", d)
	}
}
