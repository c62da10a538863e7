package s3blob_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
)

// scriptedS3 answers each PutObject with the next status of its script (the
// last one repeats) and records the If-None-Match header of every attempt. It
// stands in for S3 where no emulator can: moto never answers 409
// ConditionalRequestConflict and fauxqs ignores the condition. It models
// nothing else: no storage, no signatures, no other operation.
type scriptedS3 struct {
	mu          sync.Mutex
	script      []int
	ifNoneMatch []string
}

func (f *scriptedS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	f.mu.Lock()
	n := len(f.ifNoneMatch)
	f.ifNoneMatch = append(f.ifNoneMatch, r.Header.Get("If-None-Match"))
	code := f.script[min(n, len(f.script)-1)]
	f.mu.Unlock()
	if r.Method != http.MethodPut {
		code = http.StatusMethodNotAllowed
	}
	errCode := map[int]string{
		http.StatusPreconditionFailed: "PreconditionFailed",
		http.StatusConflict:           "ConditionalRequestConflict",
		http.StatusForbidden:          "AccessDenied",
		http.StatusMethodNotAllowed:   "MethodNotAllowed",
	}[code]
	if errCode == "" {
		w.Header().Set("ETag", `"`+strings.Repeat("0", 32)+`"`)
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(code)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>scripted</Message><RequestId>1</RequestId></Error>`, errCode)
}

func TestPutIfAbsentStatusMapping(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   []int
		attempts int
		want     func(string, error) bool
		wantText string
	}{
		{"created", []int{200}, 1, func(e string, err error) bool { return err == nil && e != "" }, "an ETag"},
		{"taken", []int{412}, 1, func(_ string, err error) bool { return errors.Is(err, blob.ErrExists) }, "ErrExists"},
		{"conflict then created", []int{409, 200}, 2, func(e string, err error) bool { return err == nil && e != "" }, "an ETag after one retry"},
		{"conflicts then taken", []int{409, 409, 412}, 3, func(_ string, err error) bool { return errors.Is(err, blob.ErrExists) }, "ErrExists after two retries"},
		{"conflict persists", []int{409}, 5, func(_ string, err error) bool {
			return err != nil && !errors.Is(err, blob.ErrExists) && strings.Contains(err.Error(), "after 5 attempts")
		}, "an error (not ErrExists) after 5 attempts"},
		{"denied", []int{403}, 1, func(_ string, err error) bool { return err != nil && !errors.Is(err, blob.ErrExists) }, "the AccessDenied error, not ErrExists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &scriptedS3{script: tc.script}
			srv := httptest.NewServer(f)
			defer srv.Close()
			ctx := context.Background()
			c, err := awsconfig.Load(ctx, awsconfig.Options{Region: "us-east-1", Endpoint: srv.URL, S3PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
			if err != nil {
				t.Fatal(err)
			}
			st, err := s3blob.New(c.S3(), "bucket")
			if err != nil {
				t.Fatal(err)
			}
			etag, err := st.PutIfAbsent(ctx, "journal/1", []byte("entry"), "text/plain")
			if !tc.want(etag, err) {
				t.Fatalf("PutIfAbsent = %q, %v; want %s", etag, err, tc.wantText)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.ifNoneMatch) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(f.ifNoneMatch), tc.attempts)
			}
			for i, h := range f.ifNoneMatch {
				if h != "*" {
					t.Fatalf("attempt %d sent If-None-Match %q, want *", i, h)
				}
			}
		})
	}
}
