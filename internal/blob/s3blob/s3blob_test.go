package s3blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/blobtest"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
)

var faux *awstest.Server

func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &faux)) }

func newStore(t *testing.T) *s3blob.Store {
	t.Helper()
	ctx := context.Background()
	c := awstest.NeedClients(t, faux)
	name := awstest.Unique(t, "b")
	if err := awstest.CreateBucket(ctx, c.S3(), name); err != nil {
		t.Fatal(err)
	}
	st, err := s3blob.New(c.S3(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRoundTrip(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	data := []byte("\x89PNG fake image bytes")
	tag, err := st.Put(ctx, "inputs/a.png", data, "image/png")
	if err != nil || tag == "" {
		t.Fatalf("Put = %q, %v", tag, err)
	}
	got, a, err := st.Get(ctx, "inputs/a.png")
	if err != nil || !bytes.Equal(got, data) || a.ContentType != "image/png" || a.ETag != tag || a.Size != int64(len(data)) || a.Modified.IsZero() {
		t.Fatalf("Get = %q, %+v, %v; want the bytes, image/png, etag %s", got, a, err, tag)
	}
	h, err := st.Head(ctx, "inputs/a.png")
	if err != nil || h.ETag != tag || h.Size != int64(len(data)) || h.ContentType != "image/png" {
		t.Fatalf("Head = %+v, %v", h, err)
	}
	tag2, err := st.Put(ctx, "inputs/a.png", []byte("other"), "text/plain")
	if err != nil || tag2 == tag {
		t.Fatalf("replacing Put = %q, %v; want a new etag", tag2, err)
	}
	if err := st.Delete(ctx, "inputs/a.png"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Get(ctx, "inputs/a.png"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
	}
	if _, err := st.Head(ctx, "inputs/a.png"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Head after Delete = %v; want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "inputs/a.png"); err != nil {
		t.Fatalf("deleting a missing key = %v; want nil", err)
	}
}

// TestListPaginates lists more keys than one ListObjectsV2 page (1000).
func TestListPaginates(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	st := newStore(t)
	ctx := context.Background()
	const n = 1005
	for i := n - 1; i >= 0; i-- {
		if _, err := st.Put(ctx, fmt.Sprintf("p/%04d", i), []byte{byte(i)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Put(ctx, "q/other", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	got, err := st.List(ctx, "p/")
	if err != nil || len(got) != n {
		t.Fatalf("List = %d items, %v; want %d", len(got), err, n)
	}
	for i, a := range got {
		if want := fmt.Sprintf("p/%04d", i); a.Key != want || a.Size != 1 {
			t.Fatalf("item %d = %+v; want %s of 1 byte", i, a, want)
		}
	}
}

func TestBadKeys(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	if _, err := st.Put(ctx, "", nil, ""); err == nil {
		t.Error("Put with an empty key succeeded")
	}
	if _, err := st.Head(ctx, string(make([]byte, 1025))); !errors.Is(err, blob.ErrInvalidKey) {
		t.Errorf("Head with a 1025-byte key = %v; want ErrInvalidKey", err)
	}
}

// TestConformance runs the blob port's suite against fauxqs, exactly as fileblob
// runs it on a folder.
func TestConformance(t *testing.T) {
	awstest.Need(t, faux)
	blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store { return newStore(t) }})
}
