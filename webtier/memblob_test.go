package webtier_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

// memBlob is a test double of the blob port.
type memBlob struct {
	mu   sync.Mutex
	objs map[string]memObj
}

type memObj struct {
	data []byte
	a    blob.Attributes
}

func newMemBlob() *memBlob { return &memBlob{objs: map[string]memObj{}} }

func (m *memBlob) Put(_ context.Context, key string, data []byte, ct string) (string, error) {
	sum := md5.Sum(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	// The ETag includes a version so that re-uploading equal bytes still
	// changes nothing but a replaced object with new bytes always does.
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	m.objs[key] = memObj{data: append([]byte(nil), data...), a: blob.Attributes{Key: key, ContentType: ct, ETag: etag, Size: int64(len(data)), Modified: time.Now()}}
	return etag, nil
}

func (m *memBlob) Get(_ context.Context, key string) ([]byte, blob.Attributes, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return nil, blob.Attributes{}, fmt.Errorf("%q: %w", key, blob.ErrNotFound)
	}
	return append([]byte(nil), o.data...), o.a, nil
}

func (m *memBlob) Head(ctx context.Context, key string) (blob.Attributes, error) {
	_, a, err := m.Get(ctx, key)
	return a, err
}

func (m *memBlob) List(_ context.Context, prefix string) ([]blob.Attributes, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []blob.Attributes
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, o.a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *memBlob) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}
