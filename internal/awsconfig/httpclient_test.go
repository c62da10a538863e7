package awsconfig

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

type recordingClient struct{ body io.ReadCloser }

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	c.body = r.Body
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(""))}, nil
}

// writerToCloser is what smithy-go hands net/http: a body with WriteTo.
type writerToCloser struct{ *bytes.Reader }

func (writerToCloser) Close() error { return nil }

// The wrapper must hide WriteTo (see NewHTTPClient) and keep the bytes.
func TestBodyHidesWriteTo(t *testing.T) {
	rec := &recordingClient{}
	c := wrapHTTPClient(rec)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", nil)
	req.Body = writerToCloser{bytes.NewReader([]byte("Action=DescribeInstances"))}
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.body.(io.WriterTo); ok {
		t.Fatal("the request body still exposes WriteTo")
	}
	if b, _ := io.ReadAll(rec.body); string(b) != "Action=DescribeInstances" {
		t.Fatalf("body = %q", b)
	}
	if wrapHTTPClient(c) != c {
		t.Fatal("wrapping twice")
	}
	req2, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := c.Do(req2); err != nil || rec.body != nil {
		t.Fatalf("a request without a body got %v, %v", rec.body, err)
	}
}
