package protocol

import (
	"strings"
	"testing"
	"time"
)

// FuzzDecodeRequest: any queue message body either decodes to a request that
// passes every check a worker relies on, and re-encodes to the same request,
// or is refused with an error; never a panic.
func FuzzDecodeRequest(f *testing.F) {
	at := time.Date(2026, 12, 1, 20, 0, 0, 123456789, time.UTC)
	for _, r := range []Request{
		{ID: "abc", Key: "test_00.jpg", ETag: `"e1"`, Kind: Classify, SentAt: at},
		{ID: "x", Key: "é😀.png", ETag: "e", Kind: Describe, Gallery: `"g7"`, SentAt: at},
		{ID: "y", Key: strings.Repeat("a", 200), ETag: "e", Kind: Recognize},
	} {
		body, err := EncodeRequest(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, s := range []string{"", "{}", "null", "[]", `{"v":1}`, `{"v":1,"id":"a","key":"..","etag":"e","kind":"classify"}`,
		`{"v":1,"id":"a","key":"a\u0000b","etag":"e","kind":"classify"}`, `{"v":2,"id":"a","key":"k","etag":"e","kind":"classify"}`,
		`{"v":1,"id":"a","key":"k","etag":"e","kind":"classify","sent_at":"not a time"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, err := DecodeRequest(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if r.V != Version || r.ID == "" || r.ETag == "" || !r.Kind.valid() || ValidKey(r.Key) != nil {
			t.Fatalf("accepted an invalid request %+v from %q", r, body)
		}
		enc, err := EncodeRequest(r)
		if err != nil {
			// Re-encoding may escape more (json.Marshal writes < as \u003c):
			// only the size limit may refuse it.
			if !strings.Contains(err.Error(), "byte limit") {
				t.Fatalf("re-encoding %+v: %v", r, err)
			}
			return
		}
		back, err := DecodeRequest(enc)
		if err != nil {
			t.Fatalf("round trip of %+v: %v", r, err)
		}
		if back.ID != r.ID || back.Key != r.Key || back.ETag != r.ETag || back.Kind != r.Kind || back.Gallery != r.Gallery || !back.SentAt.Equal(r.SentAt) {
			t.Fatalf("round trip changed %+v into %+v", r, back)
		}
	})
}

// FuzzDecodeResponse: any response queue body decodes to a response with a
// version and an ID, or is refused; never a panic.
func FuzzDecodeResponse(f *testing.F) {
	for _, r := range []Response{
		{ID: "a", Key: "k.jpg", Stem: "k", Name: "amy", Faces: []Face{{Box: Box{1, 2, 3, 4}, Subject: "amy", Distance: 0.3, Score: 0.9}}},
		{ID: "b", Error: &Error{Code: CodeBadImage, Message: "bad image (empty)"}},
		{ID: "c", Descriptor: []float32{0.1, -0.2, 3e-5}},
	} {
		body, err := EncodeResponse(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	for _, s := range []string{"", "{}", `{"v":1}`, `{"v":1,"id":"a","faces":null}`, `{"v":1,"id":"a","descriptor":[1e999]}`, `{"v":1,"id":"a","error":{}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, err := DecodeResponse(body)
		if err != nil {
			return
		}
		if r.V != Version || r.ID == "" {
			t.Fatalf("accepted %+v", r)
		}
		if _, err := EncodeResponse(r); err != nil && !strings.Contains(err.Error(), "byte limit") {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
	})
}
