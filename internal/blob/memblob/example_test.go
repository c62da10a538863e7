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

// PutIfAbsent appends to a journal that several writers share: each tries the
// next sequence number and, when another writer took it (blob.ErrExists), the
// one after, so no entry overwrites another.
func ExampleStore_PutIfAbsent() {
	ctx := context.Background()
	var s blob.Store = memblob.New()
	appendEntry := func(entry string) string {
		for seq := 1; ; seq++ {
			key := fmt.Sprintf("gallery/journal/%08d", seq)
			_, err := s.PutIfAbsent(ctx, key, []byte(entry), "text/plain")
			if errors.Is(err, blob.ErrExists) {
				continue // taken: try the next number
			}
			if err != nil {
				return err.Error()
			}
			return key
		}
	}
	fmt.Println(appendEntry("enroll amy"))
	fmt.Println(appendEntry("enroll bob"))
	_, err := s.PutIfAbsent(ctx, "gallery/journal/00000001", []byte("lost update"), "text/plain")
	data, _, _ := s.Get(ctx, "gallery/journal/00000001")
	fmt.Println(errors.Is(err, blob.ErrExists), string(data))
	// Output:
	// gallery/journal/00000001
	// gallery/journal/00000002
	// true enroll amy
}
