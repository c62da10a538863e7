// Package blob is the port for an object store with S3 semantics. Adapters live in
// sub-packages (fileblob, s3blob) and all pass the conformance suite in blobtest.
package blob

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Attributes describe a stored object.
type Attributes struct {
	Key         string
	ContentType string
	// ETag changes whenever the content changes; compare it to detect a replaced object.
	ETag     string
	Size     int64
	Modified time.Time
}

// Store is the port.
type Store interface {
	// Put writes data under key atomically (readers see the old or the new object,
	// never a mix) and returns the new ETag.
	Put(ctx context.Context, key string, data []byte, contentType string) (string, error)
	// PutIfAbsent writes data under key only when no object has that key, and
	// returns the new ETag; when one does, nothing is written and the error wraps
	// ErrExists. Two concurrent PutIfAbsent calls on one key: exactly one wins
	// (S3: PutObject with If-None-Match: *).
	PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error)
	// Get returns the object; ErrNotFound when absent. The bytes are the
	// caller's: no adapter keeps or reuses them (the gallery keeps a loaded
	// snapshot's bytes in place).
	Get(ctx context.Context, key string) ([]byte, Attributes, error)
	// Head returns the attributes only; ErrNotFound when absent.
	Head(ctx context.Context, key string) (Attributes, error)
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Attributes, error)
	// Delete removes key; deleting a missing key is not an error (as in S3).
	Delete(ctx context.Context, key string) error
}

// Object is one write of a batch.
type Object struct {
	Key         string
	Data        []byte
	ContentType string
}

// Batcher is implemented by stores that make several writes durable together
// more cheaply than one by one (fileblob with its write-ahead log: one sync for
// the batch). PutBatch writes each object as Put does, readable at once, and
// returns durable, which returns once all of them would survive a machine
// crash, so a caller can answer first and wait after (the app tier deletes a
// request only once durable has returned). A batch is not atomic: after an
// error, objects before it may be stored. PutAll uses it when it is there.
type Batcher interface {
	PutBatch(ctx context.Context, objs []Object) (durable func() error, err error)
}

// PutAll writes objs and returns durable as Batcher does: with one PutBatch
// when s is a Batcher, else with one Put each, all at once (on a store that
// syncs, the waits overlap), and durable has nothing left to wait for. It
// returns the first error.
func PutAll(ctx context.Context, s Store, objs ...Object) (durable func() error, err error) {
	if b, ok := s.(Batcher); ok {
		return b.PutBatch(ctx, objs)
	}
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	for i, o := range objs {
		wg.Go(func() { _, errs[i] = s.Put(ctx, o.Key, o.Data, o.ContentType) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return func() error { return nil }, nil
}

// ErrNotFound is returned (wrapped) for a missing key.
var ErrNotFound = errors.New("blob: object not found")

// ErrExists is returned (wrapped) by PutIfAbsent when the key already holds an object.
var ErrExists = errors.New("blob: object already exists")

// ErrInvalidKey is returned (wrapped) for a key that ValidateKey rejects. Every
// adapter checks keys with ValidateKey before touching storage, so a key that
// fileblob refuses is refused by s3blob too.
var ErrInvalidKey = errors.New("blob: invalid key")

// DefaultContentType is what S3 stores when Put gets an empty content type.
const DefaultContentType = "application/octet-stream"

// MaxKeyLen is S3's key limit in bytes.
const MaxKeyLen = 1024

// ETagOf is the ETag of a single-part put of data: the content MD5 in hex, in
// double quotes, exactly as S3 returns it.
func ETagOf(data []byte) string {
	sum := md5.Sum(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// ValidateKey accepts keys that are safe as relative paths: 1..1024 bytes of valid
// UTF-8 without control characters or backslashes, split by "/" into non-empty
// segments none of which is "." or ".." (so no leading, trailing or doubled
// slash). It returns an error wrapping ErrInvalidKey that says what is wrong.
func ValidateKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("blob: key %q %s: %w", key, why, ErrInvalidKey) }
	switch {
	case key == "":
		return fmt.Errorf("blob: empty key: %w", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("blob: key of %d bytes exceeds %d: %w", len(key), MaxKeyLen, ErrInvalidKey)
	case !utf8.ValidString(key):
		return bad("is not valid UTF-8")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return bad("holds a control character or backslash")
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("has an empty path segment (leading, trailing or doubled slash)")
		case ".", "..":
			return bad("has a . or .. segment that could escape the store")
		}
	}
	return nil
}
