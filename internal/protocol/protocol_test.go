package protocol

import (
	"strings"
	"testing"
	"time"
)

func TestRequestRoundTripAndSize(t *testing.T) {
	r := Request{ID: "0123456789abcdef0123456789abcdef", Key: "test_00.jpg", ETag: `"d41d8cd98f00b204e9800998ecf8427e"`, Kind: Classify, SentAt: time.Now().UTC()}
	s, err := EncodeRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) >= MaxRequestBytes {
		t.Fatalf("request is %d bytes", len(s))
	}
	got, err := DecodeRequest(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || got.Key != r.Key || got.ETag != r.ETag || got.Kind != r.Kind || !got.SentAt.Equal(r.SentAt) || got.V != Version {
		t.Fatalf("round trip: %+v != %+v", got, r)
	}
	// The longest key ValidKey allows still fits, with the longest reply-to, a
	// gallery ETag and characters JSON would escape.
	r.ReplyTo = "https://sqs.us-east-1.amazonaws.com/123456789012/" + strings.Repeat("q", MaxReplyToBytes-49)
	r.Gallery = r.ETag
	for _, k := range []string{strings.Repeat("k", 200), strings.Repeat("<", 200), strings.Repeat(`"`, 200)} {
		r.Key = k
		s, err := EncodeRequest(r)
		if err != nil {
			t.Fatalf("200-byte key %.10q: %v", k, err)
		}
		if got, err := DecodeRequest(s); err != nil || got.Key != k || got.ReplyTo != r.ReplyTo {
			t.Fatalf("round trip of key %.10q: %+v, %v", k, got, err)
		}
	}
}

func TestRequestRejects(t *testing.T) {
	good := Request{ID: "a", Key: "x.jpg", ETag: "e", Kind: Recognize}
	for name, mut := range map[string]func(*Request){
		"no id":     func(r *Request) { r.ID = "" },
		"no etag":   func(r *Request) { r.ETag = "" },
		"kind":      func(r *Request) { r.Kind = "dance" },
		"slash key": func(r *Request) { r.Key = "../x.jpg" },
		"empty key": func(r *Request) { r.Key = "" },
		"ctrl key":  func(r *Request) { r.Key = "a\nb" },
		"huge":      func(r *Request) { r.ETag = strings.Repeat("e", 2000) },
		"dot stem":  func(r *Request) { r.Key = "..jpg" },
		"dots stem": func(r *Request) { r.Key = "...jpg" },
		"long key":  func(r *Request) { r.Key = strings.Repeat("k", 201) },
		"id slash":  func(r *Request) { r.ID = "a/b" },
		"long id":   func(r *Request) { r.ID = strings.Repeat("a", 65) },
		"reply sp":  func(r *Request) { r.ReplyTo = "a b" },
		"reply big": func(r *Request) { r.ReplyTo = strings.Repeat("q", 257) },
	} {
		r := good
		mut(&r)
		if _, err := EncodeRequest(r); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	for _, body := range []string{"", "not json", `{"v":2,"id":"a","key":"x","etag":"e","kind":"classify"}`, `{"v":1,"key":"x","etag":"e","kind":"classify"}`} {
		if _, err := DecodeRequest(body); err == nil {
			t.Errorf("decoded %q", body)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	r := Response{ID: "a", Key: "x.jpg", Stem: "x", Name: "amy", Faces: []Face{{Box: Box{1, 2, 3, 4}, Subject: "amy", Distance: 0.3, Score: 0.9}}, Error: nil}
	s, err := EncodeResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResponse(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "amy" || len(got.Faces) != 1 || got.Faces[0].Subject != "amy" || got.Faces[0].Box.W != 3 {
		t.Fatalf("got %+v", got)
	}
	if _, err := DecodeResponse(`{"v":1}`); err == nil {
		t.Fatal("response without id decoded")
	}
	if _, err := EncodeResponse(Response{ID: "a", Descriptor: make([]float32, MaxResponseBytes)}); err == nil {
		t.Fatal("oversized response encoded")
	}
}

func TestStem(t *testing.T) {
	for in, want := range map[string]string{"test_00.jpg": "test_00", "a.b.png": "a.b", "noext": "noext", ".hidden": ".hidden"} {
		if got := Stem(in); got != want {
			t.Errorf("Stem(%q) = %q, want %q", in, got, want)
		}
	}
}
