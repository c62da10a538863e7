package blob_test

import (
	"context"
	"errors"
	"testing"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
)

// PutAll on a store without PutBatch writes every object and reports an error.
func TestPutAllWithoutBatcher(t *testing.T) {
	ctx := context.Background()
	s := memblob.New()
	if _, ok := blob.Store(s).(blob.Batcher); ok {
		t.Skip("memblob batches now; this test needs a store that does not")
	}
	durable, err := blob.PutAll(ctx, s, blob.Object{Key: "a", Data: []byte("1")}, blob.Object{Key: "b/c", Data: []byte("2"), ContentType: "text/plain"})
	if err != nil || durable() != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"a": "1", "b/c": "2"} {
		if got, _, err := s.Get(ctx, k); err != nil || string(got) != v {
			t.Errorf("%s = %q, %v", k, got, err)
		}
	}
	if _, err := blob.PutAll(ctx, s, blob.Object{Key: "ok", Data: []byte("1")}, blob.Object{Key: "", Data: []byte("2")}); !errors.Is(err, blob.ErrInvalidKey) {
		t.Errorf("PutAll with an empty key: %v", err)
	}
}
