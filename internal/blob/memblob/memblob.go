// Package memblob is an in-memory adapter of the blob port: the same key rules,
// ETags and listing order as fileblob and s3blob (it passes blobtest), nothing on
// disk. For tests, and for data that need not outlive the process.
package memblob

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

// Store is safe for concurrent use. The zero value is not usable: call New.
type Store struct {
	mu   sync.RWMutex
	objs map[string]object
}

type object struct {
	data  []byte
	attrs blob.Attributes
}

// New returns an empty store.
func New() *Store { return &Store{objs: map[string]object{}} }

// Put stores a copy of data under key.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	return s.put(key, data, contentType, false)
}

// PutIfAbsent stores a copy of data under key unless an object has that key;
// then it stores nothing and returns an error wrapping blob.ErrExists. The check
// and the write happen under one lock, so of concurrent calls on a key exactly
// one succeeds.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	return s.put(key, data, contentType, true)
}

func (s *Store) put(key string, data []byte, contentType string, ifAbsent bool) (string, error) {
	if contentType == "" {
		contentType = blob.DefaultContentType
	}
	etag := blob.ETagOf(data)
	o := object{data: slices.Clone(data), attrs: blob.Attributes{
		Key: key, ContentType: contentType, ETag: etag, Size: int64(len(data)), Modified: time.Now().UTC(),
	}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[key]; ok && ifAbsent {
		return "", fmt.Errorf("memblob: %q: %w", key, blob.ErrExists)
	}
	s.objs[key] = o
	return etag, nil
}

// Get returns a copy of the object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, blob.Attributes, error) {
	o, err := s.lookup(ctx, key)
	if err != nil {
		return nil, blob.Attributes{}, err
	}
	return slices.Clone(o.data), o.attrs, nil
}

// Head returns the object's attributes.
func (s *Store) Head(ctx context.Context, key string) (blob.Attributes, error) {
	o, err := s.lookup(ctx, key)
	return o.attrs, err
}

func (s *Store) lookup(ctx context.Context, key string) (object, error) {
	if err := ctx.Err(); err != nil {
		return object{}, err
	}
	if err := blob.ValidateKey(key); err != nil {
		return object{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.objs[key]
	if !ok {
		return object{}, fmt.Errorf("memblob: %q: %w", key, blob.ErrNotFound)
	}
	return o, nil
}

// List returns the objects whose keys start with prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []blob.Attributes
	for k, o := range s.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, o.attrs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	return nil
}
