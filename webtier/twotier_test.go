package webtier_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/enginetest"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/webtier"
)

// Two web tiers share the request queue, its dead-letter queue and a pool of
// real workers, each tier with its own response queue: every caller gets its
// own answer, and a dead-lettered request's 502 reaches the tier that sent it.
func TestTwoWebTiersShareTheRequestQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	in, out := memblob.New(), memblob.New()
	dlq, _ := memqueue.New(memqueue.Options{Name: "dlq"})
	req, err := memqueue.New(memqueue.Options{Name: "req", VisibilityTimeout: 2 * time.Second, DeadLetter: dlq, MaxReceiveCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	queues := map[string]*memqueue.Queue{}
	for _, n := range []string{"resp-a", "resp-b"} {
		queues[n], _ = memqueue.New(memqueue.Options{Name: n, MaxMessageSize: protocol.MaxResponseBytes})
	}
	resolve := func(addr string) (queue.Queue, error) {
		if q, ok := queues[addr]; ok {
			return q, nil
		}
		return nil, fmt.Errorf("no queue %q", addr)
	}
	// The engine double finds in a pngBytes(t, w, 8) image one face of person w,
	// enrolled as p<w>; a 1-pixel-wide image fails (transiently) every time, so
	// its request ends in the dead-letter queue.
	eng, people := enginetest.New(), gallery.New()
	for w := 10; w < 90; w++ {
		eng.Face(pngBytes(t, w, 8), w)
		people.Add(fmt.Sprintf("p%d", w), enginetest.Descriptor(w))
	}
	eng.On(pngBytes(t, 1, 8), func(context.Context) (*engine.Result, error) { return nil, errors.New("engine crashed") })
	st, err := gallery.OpenStore(ctx, out, "", gallery.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, gallery.Edit{Op: gallery.OpReplace, Faces: people}); err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	for _, n := range []string{"resp-a", "resp-b"} {
		s, err := webtier.New(webtier.Options{
			Requests: req, Responses: queues[n], RequestDLQ: dlq, Inputs: in, Outputs: out,
			ReplyTo: n, ReplyQueue: resolve,
			Limits: webtier.Limits{RequestTimeout: 15 * time.Second}, MaxReceives: 3, PollWait: 100 * time.Millisecond, Logger: discard,
		})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		urls[n] = "http://" + ln.Addr().String()
		wg.Go(func() { _ = s.Serve(ctx, ln) })
	}
	for i := range 4 {
		// Every worker's default response queue is tier a's, as a single
		// -response-queue-url would make it.
		w, err := apptier.New(apptier.Options{
			ID: fmt.Sprintf("w%d", i), Requests: req, Responses: queues["resp-a"], ReplyQueue: resolve,
			Inputs: in, Outputs: out, Analyzer: eng,
			WaitTime: 50 * time.Millisecond, VisibilityTimeout: 2 * time.Second, RetryBackoff: 10 * time.Millisecond, Logger: discard,
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = w.Run(ctx) })
	}

	const n = 80
	type result struct {
		code int
		body string
	}
	got := make([]result, n)
	var calls sync.WaitGroup
	for i := range n {
		calls.Go(func() {
			tier, width := "resp-a", 10+i
			if i%2 == 1 {
				tier = "resp-b"
			}
			if i%20 == 7 || i%20 == 8 { // a poison request on each tier
				width = 1
			}
			body, ct := multipartBody(t, "inputFile", fmt.Sprintf("f%03d.png", i), pngBytes(t, width, 8))
			res, err := httpPost(urls[tier]+"/", ct, body)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = result{res.code, res.body}
		})
	}
	calls.Wait()
	poison := 0
	for i, r := range got {
		switch {
		case i%20 == 7 || i%20 == 8:
			poison++
			if r.code != 502 || !strings.Contains(r.body, "after 3 attempts") {
				t.Errorf("poison request %d: %d %q, want a prompt 502", i, r.code, r.body)
			}
		default:
			if want := fmt.Sprintf("f%03d:p%d", i, 10+i); r.code != 200 || r.body != want {
				t.Errorf("request %d on tier %d: %d %q, want %q", i, i%2, r.code, r.body, want)
			}
		}
	}
	recs, _ := out.List(context.Background(), "failed/")
	if len(recs) != poison {
		t.Errorf("%d failure records for %d dead-lettered requests", len(recs), poison)
	}
	for name, q := range map[string]*memqueue.Queue{"req": req, "dlq": dlq, "resp-a": queues["resp-a"], "resp-b": queues["resp-b"]} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, _ := q.Counts(context.Background())
			if c.Visible+c.InFlight+c.Delayed == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("queue %s does not drain: %+v", name, c)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type httpResult struct {
	code int
	body string
}

func httpPost(url, contentType string, body io.Reader) (httpResult, error) {
	res, err := http.Post(url, contentType, body)
	if err != nil {
		return httpResult{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return httpResult{res.StatusCode, string(b)}, err
}
