package memblob_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
)

// The blob port: Put returns S3's ETag (the content MD5), Get a missing key
// fails with blob.ErrNotFound on every adapter.
func Example() {
	ctx := context.Background()
	var s blob.Store = memblob.New()
	etag, _ := s.Put(ctx, "amy1", []byte("amy"), "text/plain")
	data, attrs, _ := s.Get(ctx, "amy1")
	fmt.Println(string(data), etag == attrs.ETag, etag == blob.ETagOf([]byte("amy")))
	_, _, err := s.Get(ctx, "nobody")
	fmt.Println(errors.Is(err, blob.ErrNotFound))
	// Output:
	// amy true true
	// true
}
