package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
	"github.com/facefleet/facefleet/internal/enginetest"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/test/e2ekit"
	"github.com/facefleet/facefleet/webtier"
)

// faultRig is a web tier and a supervisor that restarts crashed workers, wired
// by hand so a test controls every worker's life.
type faultRig struct {
	url            string
	eng            *enginetest.Engine
	req, resp, dlq *memqueue.Queue
	out            *fileblob.Store
	crashes        atomic.Int64
	web            *webtier.Server
}

const faultVisibility = 300 * time.Millisecond

func newFaultRig(t *testing.T, workers int) *faultRig {
	t.Helper()
	r := &faultRig{eng: enginetest.New()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	r.dlq, _ = memqueue.New(memqueue.Options{Name: "dlq"})
	r.req, _ = memqueue.New(memqueue.Options{Name: "req", VisibilityTimeout: faultVisibility, DeadLetter: r.dlq, MaxReceiveCount: 3})
	r.resp, _ = memqueue.New(memqueue.Options{Name: "resp", MaxMessageSize: protocol.MaxResponseBytes})
	in, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r.out, err = fileblob.New(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	g := gallery.New()
	for p := range 3 {
		if err := g.Add(name(p), enginetest.Descriptor(p)); err != nil {
			t.Fatal(err)
		}
	}
	gb, _ := g.Marshal()
	if _, err := r.out.Put(context.Background(), "gallery/gallery.json", gb, "application/json"); err != nil {
		t.Fatal(err)
	}
	r.web, err = webtier.New(webtier.Options{Requests: r.req, Responses: r.resp, RequestDLQ: r.dlq, Inputs: in, Outputs: r.out,
		MaxReceives: 3, PollWait: time.Second,
		Limits: webtier.Limits{RequestTimeout: 20 * time.Second}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.web.Serve(ctx, ln) })
	for i := range workers {
		wg.Go(func() {
			for gen := 0; ctx.Err() == nil; gen++ {
				w, err := apptier.New(apptier.Options{ID: fmt.Sprintf("w%d.%d", i, gen), Requests: r.req, Responses: r.resp,
					Inputs: in, Outputs: r.out, Analyzer: r.eng,
					WaitTime: 100 * time.Millisecond, VisibilityTimeout: faultVisibility, RetryBackoff: 50 * time.Millisecond, Logger: log})
				if err != nil {
					t.Error(err)
					return
				}
				done := make(chan bool, 1)
				go func() {
					returned := false
					defer func() { done <- returned }()
					_ = w.Run(ctx)
					returned = true
				}()
				if !<-done {
					r.crashes.Add(1) // the goroutine died mid-request: a killed instance
				}
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func (r *faultRig) assertQueuesEmpty(t *testing.T) {
	t.Helper()
	for qn, q := range map[string]queue.Queue{"requests": r.req, "responses": r.resp, "dead-letter": r.dlq} {
		e2ekit.WaitFor(t, qn+" queue to drain", 5*time.Second, func() bool {
			n, err := q.Counts(context.Background())
			return err == nil && n.Visible+n.InFlight+n.Delayed == 0
		})
	}
}

func (r *faultRig) metric(t *testing.T, line string) bool {
	t.Helper()
	res, err := httpGet(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(res, line+"\n")
}

func TestKilledWorkerIsRedeliveredAndAnsweredOnce(t *testing.T) {
	r := newFaultRig(t, 2)
	img := randomPNG(t, 1)
	var n atomic.Int64
	r.eng.On(img, func(context.Context) (*engine.Result, error) {
		if n.Add(1) == 1 {
			runtime.Goexit() // the instance dies mid-request: no answer, no delete, no more visibility extension
		}
		return &engine.Result{Width: 32, Height: 32, Faces: []engine.Face{{Box: engine.Box{W: 9, H: 9}, Score: 1, Descriptor: enginetest.Descriptor(1)}}}, nil
	})
	start := time.Now()
	code, body := post(t, "POST", r.url+"/", "inputFile", "killed.png", img)
	if code != 200 || body != "killed:"+name(1) {
		t.Fatalf("got %d %q, want 200 killed:%s", code, body, name(1))
	}
	if d := time.Since(start); d < faultVisibility {
		t.Fatalf("answered in %s, before the visibility timeout: the killed delivery was not the first", d)
	}
	if c := r.eng.CallsFor(img); c != 2 {
		t.Fatalf("engine saw the image %d times, want 2 (killed + redelivered)", c)
	}
	if r.crashes.Load() != 1 {
		t.Fatalf("%d crashes, want 1", r.crashes.Load())
	}
	r.assertQueuesEmpty(t)
	if !r.metric(t, `facefleet_responses_total{outcome="delivered"} 1`) || !r.metric(t, `facefleet_responses_total{outcome="duplicate"} 0`) {
		t.Fatal("want exactly one delivered answer and no duplicate")
	}
}

func TestPoisonRequestDeadLettersPromptly(t *testing.T) {
	r := newFaultRig(t, 2)
	poison, good := randomPNG(t, 2), randomPNG(t, 3)
	r.eng.On(poison, func(context.Context) (*engine.Result, error) { runtime.Goexit(); return nil, nil })
	r.eng.Face(good, 2)

	var wg sync.WaitGroup
	wg.Go(func() {
		// The fleet keeps serving other requests while one keeps crashing it.
		time.Sleep(100 * time.Millisecond)
		if code, body := post(t, "POST", r.url+"/", "inputFile", "good.png", good); code != 200 || body != "good:"+name(2) {
			t.Errorf("good image: %d %q", code, body)
		}
	})
	start := time.Now()
	code, body := post(t, "POST", r.url+"/", "inputFile", "poison.png", poison)
	elapsed := time.Since(start)
	wg.Wait()
	if code != 502 || !strings.Contains(body, "after 3 attempts") {
		t.Fatalf("poison: %d %q, want 502 naming 3 attempts", code, body)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("the caller waited %s; a dead-lettered request must fail promptly, not at the 20 s timeout", elapsed)
	}
	if c := r.eng.CallsFor(poison); c != 3 {
		t.Fatalf("engine saw the poison %d times, want 3 (max receives)", c)
	}
	if recs, err := r.out.List(context.Background(), "failed/poison/"); err != nil || len(recs) != 1 {
		t.Fatalf("failure records under failed/poison/: %v, %v", recs, err)
	}
	r.assertQueuesEmpty(t)
}

func TestUndecodableImagesGet4xxAtOnce(t *testing.T) {
	r := newFaultRig(t, 1)
	// A PNG signature with garbage after it: the web tier cannot read its header.
	broken := append([]byte("\x89PNG\r\n\x1a\n"), strings.Repeat("x", 64)...)
	code, body := post(t, "POST", r.url+"/", "inputFile", "broken.png", broken)
	if code != 422 || !strings.Contains(body, "cannot be decoded") {
		t.Fatalf("broken header: %d %q", code, body)
	}
	// A readable header over undecodable pixels: the engine says so, once.
	img := randomPNG(t, 4)
	truncated := img[:len(img)-40]
	start := time.Now()
	code, body = post(t, "POST", r.url+"/", "inputFile", "truncated.png", truncated)
	if code != 422 || !strings.Contains(body, "bad image") {
		t.Fatalf("truncated: %d %q", code, body)
	}
	if time.Since(start) > faultVisibility {
		t.Fatalf("a permanent image error was retried (took %s)", time.Since(start))
	}
	if c := r.eng.CallsFor(truncated); c != 1 {
		t.Fatalf("engine saw the bad image %d times, want 1", c)
	}
	r.assertQueuesEmpty(t)
}
