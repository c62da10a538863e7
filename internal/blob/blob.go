// Package blob is the port for an object store with S3 semantics. Adapters live in
// sub-packages (fileblob, s3blob) and all pass the conformance suite in blobtest.
package blob

import (
	"context"
	"errors"
	"time"
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
	// Get returns the object; ErrNotFound when absent.
	Get(ctx context.Context, key string) ([]byte, Attributes, error)
	// Head returns the attributes only; ErrNotFound when absent.
	Head(ctx context.Context, key string) (Attributes, error)
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Attributes, error)
	// Delete removes key; deleting a missing key is not an error (as in S3).
	Delete(ctx context.Context, key string) error
}

// ErrNotFound is returned (wrapped) for a missing key.
var ErrNotFound = errors.New("blob: object not found")
