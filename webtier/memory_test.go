package webtier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/webtier"
)

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// streamUpload builds a POST of a PNG padded to size bytes without holding it
// in memory: a valid header (all the web tier reads) followed by zeros.
func streamUpload(t testing.TB, ctx context.Context, url, file string, size int) *http.Request {
	t.Helper()
	head := fmt.Sprintf("--XB\r\nContent-Disposition: form-data; name=\"inputFile\"; filename=%q\r\nContent-Type: image/png\r\n\r\n", file)
	img := pngBytes(t, 8, 8)
	const tail = "\r\n--XB--\r\n"
	body := io.MultiReader(strings.NewReader(head), strings.NewReader(string(img)), io.LimitReader(zeros{}, int64(size-len(img))), strings.NewReader(tail))
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(head) + size + len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=XB")
	return req
}

func send(req *http.Request) (int, string, http.Header, error) {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header, nil
}

// gatedStore holds every Put until open is closed, and tells entered when one
// is waiting; it keeps no data (the bytes are the web tier's alone). Uploads
// are stored with Put only; PutIfAbsent goes to the memblob underneath.
type gatedStore struct {
	*memblob.Store
	entered chan string
	open    chan struct{}
}

func (g *gatedStore) Put(ctx context.Context, key string, data []byte, _ string) (string, error) {
	g.entered <- key
	<-g.open
	return blob.ETagOf(data), nil
}

func TestUploadBytesAreBudgeted(t *testing.T) {
	gate := &gatedStore{Store: memblob.New(), entered: make(chan string, 10), open: make(chan struct{})}
	e := newEnv(t, webtier.Limits{MaxBodyBytes: 4 << 20, MaxInflightBytes: 3 << 20, RetryAfter: 2 * time.Second},
		func(o *webtier.Options) { o.Inputs = gate })
	first := make(chan int, 1)
	go func() {
		code, _, _, _ := send(streamUpload(t, context.Background(), e.url, "amy_1.png", 2<<20))
		first <- code
	}()
	<-gate.entered // amy_1's 2 MiB are held until stored
	code, body, h, err := send(streamUpload(t, context.Background(), e.url, "amy_2.png", 2<<20))
	if err != nil || code != 503 || h.Get("Retry-After") != "2" || !strings.Contains(body, "bytes of uploads") {
		t.Fatalf("second upload over the byte budget: %d %q Retry-After %q %v; want 503 with Retry-After 2", code, body, h.Get("Retry-After"), err)
	}
	close(gate.open)
	if code := <-first; code != 200 {
		t.Fatalf("first upload: %d", code)
	}
	// Stored and answered: its bytes are back in the budget.
	if code, body, _, err := send(streamUpload(t, context.Background(), e.url, "amy_3.png", 2<<20)); code != 200 || err != nil {
		t.Fatalf("upload after the budget was freed: %d %q %v", code, body, err)
	}
	// A body over the limit is refused by its Content-Length, before it is read.
	if code, body, _, err := send(streamUpload(t, context.Background(), e.url, "amy_4.png", 5<<20)); code != 413 || err != nil {
		t.Fatalf("oversized upload: %d %q %v", code, body, err)
	}
}

// discardStore keeps no bytes, so the heap shows what the web tier holds.
// Uploads are stored with Put only; PutIfAbsent goes to the memblob underneath.
type discardStore struct{ *memblob.Store }

func (discardStore) Put(_ context.Context, _ string, data []byte, _ string) (string, error) {
	return blob.ETagOf(data), nil
}

// Callers waiting for their answer hold none of their upload's bytes: neither
// the request body, nor a parsed multipart copy, nor the image.
func TestWaitingCallersHoldNoUploadBytes(t *testing.T) {
	const n, size = 12, 4 << 20
	release := make(chan struct{})
	var held sync.WaitGroup
	held.Add(n)
	e := newEnv(t, webtier.Limits{MaxBodyBytes: 8 << 20, RequestTimeout: 30 * time.Second},
		func(o *webtier.Options) { o.Inputs = discardStore{memblob.New()} })
	e.script = func(e *env, r protocol.Request, m queue.Message) {
		go func() {
			held.Done()
			<-release
			e.answer(r, "amy")
			e.req.Delete(context.Background(), m.ReceiptHandle)
		}()
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var calls sync.WaitGroup
	for i := range n {
		calls.Go(func() {
			if code, body, _, err := send(streamUpload(t, context.Background(), e.url, fmt.Sprintf("amy_%d.png", i), size)); code != 200 || err != nil {
				t.Errorf("upload %d: %d %q %v", i, code, body, err)
			}
		})
	}
	held.Wait() // every request is queued: every upload is stored and waiting
	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	close(release)
	calls.Wait()
	grown := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	if grown > n*size/4 {
		t.Fatalf("heap grew by %d MiB while %d callers of %d MiB uploads waited: the uploads are still held", grown>>20, n, size>>20)
	}
	t.Logf("heap growth while %d × %d MiB uploads waited: %.1f MiB", n, size>>20, float64(grown)/(1<<20))
}

// A caller that goes away while waiting frees its slot at once.
func TestCallerThatGoesAwayFreesItsSlot(t *testing.T) {
	e := newEnv(t, webtier.Limits{RequestTimeout: 20 * time.Second, ClientCheckEvery: 50 * time.Millisecond})
	queued := make(chan struct{}, 1)
	e.script = func(e *env, r protocol.Request, m queue.Message) { queued <- struct{}{} } // never answers
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _, _ = send(streamUpload(t, ctx, e.url, "amy_1.png", 1<<10))
	}()
	<-queued
	pending := func() int {
		_, body, _ := e.do("GET", "/v1/status", "-", "", nil)
		var st webtier.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st.Pending
	}
	if p := pending(); p != 1 {
		t.Fatalf("pending = %d while the caller waits, want 1", p)
	}
	cancel() // the client hangs up
	<-done
	deadline := time.Now().Add(2 * time.Second)
	for pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slot of a caller that went away is still held")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
