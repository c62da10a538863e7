package webtier_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/webtier"
)

func fuzzMultipart(field, name string, data []byte) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile(field, name)
	fw.Write(data)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// FuzzUpload feeds arbitrary Content-Type headers and bodies to the upload
// handler (multipart parsing, file name and image checks) through the Fiber
// app in memory. No worker answers, so an upload that passes every check
// waits out a 10 ms request timeout (504). Whatever the bytes, the answer is
// one of the documented statuses with a JSON error naming the problem, never
// a 500 or a panic.
func FuzzUpload(f *testing.F) {
	var img bytes.Buffer
	png.Encode(&img, image.NewGray(image.Rect(0, 0, 20, 20)))
	for _, c := range []struct {
		field, name string
		data        []byte
	}{
		{"image", "a.png", img.Bytes()}, {"image", "a.png", []byte("text")}, {"image", "", img.Bytes()},
		{"inputFile", "a.png", img.Bytes()}, {"image", "../x.png", img.Bytes()}, {"image", "a\x00.png", nil},
	} {
		ct, body := fuzzMultipart(c.field, c.name, c.data)
		f.Add(ct, body)
	}
	f.Add("multipart/form-data", []byte("--x\r\n"))
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n--x--\r\n"))
	f.Add("text/plain", []byte("hello"))
	f.Add("", []byte{})

	dlq, _ := memqueue.New(memqueue.Options{Name: "dlq"})
	req, _ := memqueue.New(memqueue.Options{Name: "req", DeadLetter: dlq, MaxReceiveCount: 3})
	resp, _ := memqueue.New(memqueue.Options{Name: "resp", MaxMessageSize: protocol.MaxResponseBytes})
	s, err := webtier.New(webtier.Options{
		Requests: req, Responses: resp, RequestDLQ: dlq, Inputs: memblob.New(), Outputs: memblob.New(),
		Limits: webtier.Limits{MaxBodyBytes: 1 << 20, RequestTimeout: 10 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	allowed := map[int]bool{400: true, 413: true, 415: true, 422: true, 503: true, 504: true}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		r := httptest.NewRequest("POST", "/v1/recognize", bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		res, err := s.App().Test(r, 5000)
		if err != nil {
			// Only a header net/http itself cannot send.
			t.Skipf("request not sent: %v", err)
		}
		defer res.Body.Close()
		out, _ := io.ReadAll(res.Body)
		if !allowed[res.StatusCode] {
			t.Fatalf("status %d for Content-Type %q: %s", res.StatusCode, ctype, out)
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("status %d without a JSON error: %q", res.StatusCode, out)
		}
	})
}
