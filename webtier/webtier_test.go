package webtier_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/webtier"
)

// pngBytes is a real (tiny) PNG whose first pixel encodes tag, so different
// uploads differ.
func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func multipartBody(t testing.TB, field, filename string, data []byte) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if field != "" {
		fw, err := mw.CreateFormFile(field, filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	} else {
		mw.WriteField("other", "x")
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

// storedGallery is the shared gallery as a new reader sees it.
func (e *env) storedGallery() *gallery.Gallery {
	e.t.Helper()
	st, err := gallery.OpenStore(context.Background(), e.out, "", gallery.StoreOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	return st.Gallery()
}

// storedJSON is storedGallery in the JSON format, for comparisons.
func (e *env) storedJSON() string {
	e.t.Helper()
	b, err := e.storedGallery().Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

type env struct {
	t              *testing.T
	req, resp, dlq *memqueue.Queue
	in, out        *memblob.Store
	s              *webtier.Server
	url            string
	adminKey       string
	nudges         int
	mu             sync.Mutex
	// script decides how the fake app tier treats a request; nil answers
	// "<name from key prefix>".
	script func(e *env, r protocol.Request, m queue.Message)
}

// newEnvWith is newEnv with any option changed by set.
func newEnvWith(t *testing.T, lim webtier.Limits, set func(*webtier.Options)) *env {
	t.Helper()
	return newEnv(t, lim, set)
}

// newEnvAuth is newEnv with auth settings.
func newEnvAuth(t *testing.T, lim webtier.Limits, auth webtier.AuthOptions) *env {
	t.Helper()
	return newEnv(t, lim, func(o *webtier.Options) { o.Auth = auth })
}

// newEnv serves a web tier with a fake app tier; e.adminKey is an admin key in
// the output store, sent on /v1/subjects routes by do.
func newEnv(t *testing.T, lim webtier.Limits, mods ...func(*webtier.Options)) *env {
	t.Helper()
	e := &env{t: t, in: memblob.New(), out: memblob.New()}
	var err error
	if e.adminKey, _, err = apikeys.NewStore(e.out, apikeys.Options{}).Create(context.Background(), apikeys.Admin, "tests", 1e6, 1e6); err != nil {
		t.Fatal(err)
	}
	e.dlq, _ = memqueue.New(memqueue.Options{Name: "dlq"})
	e.req, err = memqueue.New(memqueue.Options{Name: "req", DeadLetter: e.dlq, MaxReceiveCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.resp, _ = memqueue.New(memqueue.Options{Name: "resp", MaxMessageSize: protocol.MaxResponseBytes})
	if lim.RequestTimeout == 0 {
		lim.RequestTimeout = 5 * time.Second
	}
	o := webtier.Options{
		Requests: e.req, Responses: e.resp, RequestDLQ: e.dlq, Inputs: e.in, Outputs: e.out,
		Limits: lim, MaxReceives: 3, PollWait: 100 * time.Millisecond,
		Nudge:  func() { e.mu.Lock(); e.nudges++; e.mu.Unlock() },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mods {
		m(&o)
	}
	e.s, err = webtier.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	wg.Go(func() {
		if err := e.s.Serve(ctx, ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	wg.Go(func() { e.appTier(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

// appTier is a fake worker: it answers each request with the key's prefix
// before "_" as the name, unless script says otherwise.
func (e *env) appTier(ctx context.Context) {
	for ctx.Err() == nil {
		msgs, err := e.req.Receive(ctx, queue.ReceiveOptions{WaitTime: 100 * time.Millisecond})
		if err != nil {
			continue
		}
		for _, m := range msgs {
			r, err := protocol.DecodeRequest(m.Body)
			if err != nil {
				e.t.Errorf("web tier sent an invalid request: %v", err)
				continue
			}
			if e.script != nil {
				e.script(e, r, m)
				continue
			}
			e.answer(r, strings.SplitN(r.Key, "_", 2)[0])
			e.req.Delete(ctx, m.ReceiptHandle)
		}
	}
}

func (e *env) answer(r protocol.Request, name string) {
	resp := protocol.Response{ID: r.ID, Key: r.Key, Stem: protocol.Stem(r.Key), Name: name,
		Faces:   []protocol.Face{{Box: protocol.Box{X: 1, Y: 2, W: 3, H: 4}, Subject: name, Distance: 0.3, Score: 0.9}},
		Timings: protocol.Timings{QueuedMS: 1, InferenceMS: 2}}
	if r.Kind == protocol.Describe {
		resp.Descriptor = make([]float32, 128) // a real descriptor's length
		resp.Descriptor[0] = float32(len(r.Key))
	}
	body, err := protocol.EncodeResponse(resp)
	if err != nil {
		e.t.Error(err)
	}
	e.resp.Send(context.Background(), body)
}

func (e *env) do(method, path, field, filename string, data []byte) (int, string, http.Header) {
	e.t.Helper()
	var req *http.Request
	if field == "-" {
		req, _ = http.NewRequest(method, e.url+path, nil)
	} else {
		body, ct := multipartBody(e.t, field, filename, data)
		req, _ = http.NewRequest(method, e.url+path, body)
		req.Header.Set("Content-Type", ct)
		// As curl does for large bodies: the server can refuse one that is too
		// large before it is sent, instead of resetting the connection mid-write.
		req.Header.Set("Expect", "100-continue")
	}
	if strings.HasPrefix(path, "/v1/subjects") {
		req.Header.Set("Authorization", "Bearer "+e.adminKey)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// doOversized sends a body the server will refuse by its Content-Length, as curl
// does: headers with "Expect: 100-continue", the body once the server says
// "100 Continue" (unless its final answer comes first), then the answer. The
// server reads and discards a refused body up to a bound before it answers, so
// the client reads the answer rather than a connection reset.
func (e *env) doOversized(method, path, field, filename string, data []byte) (int, string, http.Header) {
	e.t.Helper()
	body, ct := multipartBody(e.t, field, filename, data)
	u, err := url.Parse(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		method, u.RequestURI(), u.Host, ct, body.Len())
	br := bufio.NewReader(conn)
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		if res.StatusCode == http.StatusContinue {
			go conn.Write(body.Bytes()) // a refusal may come before it is all sent
			continue
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
}

func TestClassifyCourseContract(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			name := []string{"amy", "penny", "howard"}[i%3]
			file := fmt.Sprintf("%s_%02d.png", name, i)
			code, body, h := e.do("POST", "/", "inputFile", file, pngBytes(t, 8, 8))
			if want := fmt.Sprintf("%s_%02d:%s", name, i, name); code != 200 || body != want {
				t.Errorf("POST / %s = %d %q, want 200 %q", file, code, body, want)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("content type %q", ct)
			}
		})
	}
	wg.Wait()
	e.mu.Lock()
	if e.nudges != 30 {
		t.Errorf("nudged %d times, want 30", e.nudges)
	}
	e.mu.Unlock()
	// The input store holds the upload under its file name.
	if _, _, err := e.in.Get(context.Background(), "amy_00.png"); err != nil {
		t.Fatal(err)
	}
}

func TestRecognizeJSON(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	code, body, _ := e.do("POST", "/v1/recognize", "image", "leonard_1.png", pngBytes(t, 8, 8))
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var r webtier.RecognizeResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.Name != "leonard" || len(r.Faces) != 1 || r.Faces[0].Box.W != 3 || r.Faces[0].Subject != "leonard" ||
		r.Timings.QueuedMS != 1 || r.Timings.InferenceMS != 2 || r.Timings.TotalMS <= 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, webtier.Limits{MaxBodyBytes: 64 << 10, MaxPixels: 100 * 100})
	cases := []struct {
		name, field, file string
		data              []byte
		code              int
		msg               string
	}{
		{"too large", "inputFile", "big.png", bytes.Repeat([]byte{0x89}, 100<<10), 413, "limit"},
		{"not an image", "inputFile", "notes.png", []byte("hello, I am text"), 415, "not an image"},
		{"missing field", "", "", nil, 400, "inputFile"},
		{"wrong field", "image", "a.png", pngBytes(t, 8, 8), 400, "inputFile"},
		{"empty", "inputFile", "a.png", nil, 400, "empty"},
		{"undecodable", "inputFile", "broken.png", append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 50)...), 422, "cannot be decoded"},
		{"too many pixels", "inputFile", "huge.png", pngBytes(t, 200, 200), 413, "pixel"},
	}
	for _, c := range cases {
		do := e.do
		if c.code == 413 && len(c.data) > 64<<10 {
			do = e.doOversized
		}
		code, body, _ := do("POST", "/", c.field, c.file, c.data)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, code, body, c.code, c.msg)
		}
	}
	// On /v1 the error is JSON.
	code, body, _ := e.do("POST", "/v1/recognize", "image", "notes.png", []byte("plain text"))
	var je struct{ Error protocol.Error }
	if code != 415 || json.Unmarshal([]byte(body), &je) != nil || je.Error.Code != "not_an_image" {
		t.Errorf("/v1/recognize text: %d %s", code, body)
	}
	// None of them reached the queue.
	if n, _ := e.req.Counts(context.Background()); n.Visible+n.InFlight != 0 {
		t.Errorf("rejected uploads were queued: %+v", n)
	}
}

func TestTimeoutAndMaxPending(t *testing.T) {
	e := newEnv(t, webtier.Limits{MaxPending: 2, RequestTimeout: 300 * time.Millisecond, RetryAfter: 3 * time.Second})
	e.script = func(*env, protocol.Request, queue.Message) {} // a stuck app tier
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for i := range 2 {
		wg.Go(func() {
			code, _, _ := e.do("POST", "/", "inputFile", fmt.Sprintf("x_%d.png", i), pngBytes(t, 8, 8))
			codes <- code
		})
	}
	time.Sleep(100 * time.Millisecond)
	code, body, h := e.do("POST", "/", "inputFile", "third.png", pngBytes(t, 8, 8))
	if code != 503 || h.Get("Retry-After") != "3" || !strings.Contains(body, "retry") {
		t.Errorf("third request: %d %q Retry-After=%q, want 503 with Retry-After 3", code, body, h.Get("Retry-After"))
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 504 {
			t.Errorf("stuck request answered %d, want 504", c)
		}
	}
}

func TestDeadLetteredRequestFailsPromptly(t *testing.T) {
	e := newEnv(t, webtier.Limits{RequestTimeout: 20 * time.Second})
	e.script = func(e *env, r protocol.Request, m queue.Message) {
		// A worker that always crashes: never answers, the message comes back.
		e.req.ChangeVisibility(context.Background(), m.ReceiptHandle, 0)
	}
	start := time.Now()
	code, body, _ := e.do("POST", "/", "inputFile", "poison.png", pngBytes(t, 8, 8))
	if code != 502 || !strings.Contains(body, "after 3 attempts") {
		t.Fatalf("poison: %d %q, want 502 naming 3 attempts", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dead-lettered caller waited %s", d)
	}
	recs, err := e.out.List(context.Background(), "failed/poison/")
	if err != nil || len(recs) != 1 {
		t.Fatalf("failure records under failed/poison/: %v, %v", recs, err)
	}
	data, _, err := e.out.Get(context.Background(), recs[0].Key)
	if err != nil || !strings.Contains(string(data), "poison.png") {
		t.Fatalf("failure record %q, %v", data, err)
	}
	time.Sleep(200 * time.Millisecond)
	for name, q := range map[string]*memqueue.Queue{"req": e.req, "dlq": e.dlq, "resp": e.resp} {
		if n, _ := q.Counts(context.Background()); n.Visible+n.InFlight != 0 {
			t.Errorf("%s queue left with %+v", name, n)
		}
	}
}

func TestWorkerErrorsMapToStatus(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	e.script = func(e *env, r protocol.Request, m queue.Message) {
		code := strings.SplitN(r.Key, ".", 2)[0]
		body, _ := protocol.EncodeResponse(protocol.Response{ID: r.ID, Key: r.Key, Error: &protocol.Error{Code: code, Message: "because " + code}})
		e.resp.Send(context.Background(), body)
		e.req.Delete(context.Background(), m.ReceiptHandle)
	}
	for code, status := range map[string]int{protocol.CodeBadImage: 422, protocol.CodeSuperseded: 409, protocol.CodeInputMissing: 500} {
		got, body, _ := e.do("POST", "/", "inputFile", code+".png", pngBytes(t, 8, 8))
		if got != status || !strings.Contains(body, "because "+code) {
			t.Errorf("%s: %d %q, want %d", code, got, body, status)
		}
	}
}

func TestDuplicateLateAndForeignAnswersNeverMisroute(t *testing.T) {
	// The timeout is generous for the 20 prompt requests (a loaded CI machine
	// once took over 400 ms to read one upload); the late answer comes 1 s
	// after it.
	const timeout = 2 * time.Second
	e := newEnv(t, webtier.Limits{RequestTimeout: timeout})
	e.script = func(e *env, r protocol.Request, m queue.Message) {
		switch {
		case strings.HasPrefix(r.Key, "late_"):
			go func() { time.Sleep(timeout + time.Second); e.answer(r, "late") }()
		default:
			// A foreign answer (an ID this web tier never issued) and a
			// duplicate answer surround the real one.
			foreign := r
			foreign.ID = "not-ours-" + r.ID
			e.answer(foreign, "intruder")
			e.answer(r, strings.SplitN(r.Key, "_", 2)[0])
			e.answer(r, "duplicate")
		}
		e.req.Delete(context.Background(), m.ReceiptHandle)
	}
	if code, body, _ := e.do("POST", "/", "inputFile", "late_1.png", pngBytes(t, 8, 8)); code != 504 {
		t.Fatalf("late: %d %q", code, body)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			name := []string{"amy", "penny"}[i%2]
			code, body, _ := e.do("POST", "/", "inputFile", fmt.Sprintf("%s_%d.png", name, i), pngBytes(t, 8, 8))
			if want := fmt.Sprintf("%s_%d:%s", name, i, name); code != 200 || body != want {
				t.Errorf("got %d %q, want %q", code, body, want)
			}
		})
	}
	wg.Wait()
	time.Sleep(1500 * time.Millisecond) // the late answer arrives
	_, metrics, _ := e.do("GET", "/metrics", "-", "", nil)
	for _, want := range []string{
		`facefleet_responses_total{outcome="delivered"} 20`,
		`facefleet_responses_total{outcome="duplicate"} 20`,
		`facefleet_responses_total{outcome="foreign"} 20`,
		`facefleet_responses_total{outcome="late"} 1`,
		`facefleet_timeouts_total 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	if n, _ := e.resp.Counts(context.Background()); n.Visible+n.InFlight != 0 {
		t.Errorf("response queue left with %+v", n)
	}
}

func TestSubjects(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	for _, m := range []string{"PUT", "POST"} {
		code, body, _ := e.do(m, "/v1/subjects/amy/faces", "image", "amy1.png", pngBytes(t, 8, 8))
		if code != 201 || !strings.Contains(body, `"subject":"amy"`) {
			t.Fatalf("%s enroll: %d %s", m, code, body)
		}
	}
	e.do("PUT", "/v1/subjects/penny/faces", "image", "p.png", pngBytes(t, 8, 8))
	code, body, _ := e.do("GET", "/v1/subjects", "-", "", nil)
	if code != 200 || body != `{"subjects":[{"name":"amy","faces":2},{"name":"penny","faces":1}]}` {
		t.Fatalf("subjects: %d %s", code, body)
	}
	if code, _, _ := e.do("DELETE", "/v1/subjects/amy", "-", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := e.do("DELETE", "/v1/subjects/amy", "-", "", nil); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	if code, _, _ := e.do("PUT", "/v1/subjects/Unknown/faces", "image", "u.png", pngBytes(t, 8, 8)); code != 400 {
		t.Fatalf("reserved name: %d", code)
	}
	if g := e.storedGallery(); g.Len() != 1 || g.FaceCount("penny") != 1 {
		t.Fatalf("stored gallery: %v", g.Names())
	}
	// Enrollment uploads do not linger in the input store.
	if objs, _ := e.in.List(context.Background(), ""); len(objs) != 0 {
		t.Fatalf("input store holds %d enrollment uploads", len(objs))
	}
}

func TestStatusHealthPage(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	code, body, _ := e.do("GET", "/v1/status", "-", "", nil)
	var st webtier.Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Queues["requests"] == nil || st.Queues["dead_letter"] == nil {
		t.Fatalf("status %d %s", code, body)
	}
	if code, body, _ := e.do("GET", "/healthz", "-", "", nil); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if code, body, h := e.do("GET", "/", "-", "", nil); code != 200 || !strings.Contains(body, `name="inputFile"`) || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("page %d", code)
	}
	if _, body, _ := e.do("GET", "/metrics", "-", "", nil); !strings.Contains(body, "# TYPE facefleet_queue_messages gauge") {
		t.Fatalf("metrics:\n%s", body)
	}
}

func TestHostileFileNames(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	img := pngBytes(t, 8, 8)
	for _, tc := range []struct {
		name, file string
		code       int
		want       string // the answer (200) or a part of the error message
	}{
		{"dot dot", "..", 400, "empty file name"},
		{"dot stem", "..png", 400, "no name before its extension"},
		{"dots stem", "...png", 400, "no name before its extension"},
		{"300 bytes", strings.Repeat("a", 296) + ".png", 400, "longer than 200"},
		{"multi-byte past 200", strings.Repeat("a", 195) + "é.png", 400, "longer than 200"},
		{"multi-byte at 200", strings.Repeat("a", 194) + "é.png", 200, strings.Repeat("a", 194) + "é:" + strings.Repeat("a", 194) + "é.png"},
		{"slash only", "/", 400, "empty file name"},
		{"backslash only", `\`, 400, "empty file name"},
		{"path", "../../etc/passwd.png", 200, "passwd:passwd.png"},
		{"windows path", `C:\Users\amy\amy_01.png`, 200, "amy_01:amy"},
		{"script", "<script>alert(1)<\\script>.png", 200, "script>:script>.png"}, // everything before the last backslash is a client path
		{"markup", `<img src=x onerror="alert(1)">.png`, 200, `<img src=x onerror="alert(1)">:<img src=x onerror="alert(1)">.png`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := e.do("POST", "/", "inputFile", tc.file, img)
			if code != tc.code {
				t.Fatalf("%q: %d %q, want %d", tc.file, code, body, tc.code)
			}
			if code == 200 && body != tc.want || code != 200 && !strings.Contains(body, tc.want) {
				t.Fatalf("%q: body %q, want %q", tc.file, body, tc.want)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("%q answered as %q, want text/plain", tc.file, ct)
			}
			// Enrollment refuses the same names the same way.
			code, body, _ = e.do("PUT", "/v1/subjects/amy/faces", "image", tc.file, img)
			if want := map[int]int{200: 201}[tc.code]; want == 0 && code != tc.code || want != 0 && code != want {
				t.Fatalf("enroll with file %q: %d %q", tc.file, code, body)
			}
		})
	}
	// Only what a worker can store was ever stored.
	objs, _ := e.in.List(context.Background(), "")
	for _, o := range objs {
		if protocol.ValidKey(o.Key) != nil {
			t.Errorf("input store holds %q", o.Key)
		}
	}
}

func TestHostileSubjectNames(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	img := pngBytes(t, 8, 8)
	for _, tc := range []struct {
		name, subject string // subject as it appears in the path (escaped)
		code          int
	}{
		{"dot dot", "%2E%2E", 400},
		{"dot", "%2E", 400},
		{"300 bytes", strings.Repeat("a", 300), 400},
		{"multi-byte past 64", strings.Repeat("a", 63) + "%C3%A9", 400},
		{"multi-byte at 64", strings.Repeat("a", 62) + "%C3%A9", 201},
		{"slash", "a%2Fb", 400},
		{"backslash", "a%5Cb", 400},
		{"script", "%3Cscript%3E", 400},
		{"quote", "a%22b", 400},
		{"colon", "a:b", 400},
		{"control", "a%01b", 400},
		{"bad utf-8", "a%C3", 400},
		{"padded", "%20amy", 400},
		{"apostrophe", "O'Brien", 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := e.do("PUT", "/v1/subjects/"+tc.subject+"/faces", "image", "f.png", img)
			if code != tc.code {
				t.Fatalf("subject %q: %d %q, want %d", tc.subject, code, body, tc.code)
			}
			if code == 400 && !strings.Contains(body, `"code":"bad_subject"`) {
				t.Fatalf("subject %q: %q does not say what is wrong", tc.subject, body)
			}
			if code == 400 {
				if c, _, _ := e.do("DELETE", "/v1/subjects/"+tc.subject, "-", "", nil); c != 400 {
					t.Fatalf("delete subject %q: %d, want 400", tc.subject, c)
				}
			}
		})
	}
}

// A file name whose enrollment key would be cut inside a character is enrolled,
// not refused as a store failure (503).
func TestEnrollKeyCutOnCharacterBoundary(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	// "enroll-<12 hex>-" is 20 bytes: the 200-byte cut falls inside the é.
	for _, file := range []string{strings.Repeat("a", 179) + "é.png", strings.Repeat("a", 178) + "€.png", "日本語.png"} {
		code, body, _ := e.do("PUT", "/v1/subjects/amy/faces", "image", file, pngBytes(t, 8, 8))
		if code != 201 {
			t.Fatalf("enroll with %q: %d %q", file, code, body)
		}
	}
}
