// Package blobtest is the conformance suite of the blob port. Every adapter
// (memblob, fileblob on a folder, s3blob against fauxqs, moto or S3) runs it
// from its own tests:
//
//	blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store { ... }})
//
// Subtests run in parallel, each on a fresh empty store (folder or bucket). The
// suite asserts only what S3 and the local store share; List's ContentType is not
// checked because S3's ListObjectsV2 does not return content types.
package blobtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
)

// Harness adapts an implementation to the suite.
type Harness struct {
	// New returns a fresh, empty store. It is called concurrently from parallel
	// subtests; clean up with t.Cleanup.
	New func(t *testing.T) blob.Store
	// Skip names subtests this backend cannot run, each with the reason (an
	// emulator's documented deviation from AWS, see docs/emulators.md); they
	// are reported as skipped, never silently dropped.
	Skip map[string]string
}

// Run runs every conformance test against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("blobtest: Harness.New is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, blob.Store)
	}{
		{"PutGetHead", testPutGetHead},
		{"EmptyAndBinary", testEmptyAndBinary},
		{"DefaultContentType", testDefaultContentType},
		{"UnicodeKeys", testUnicodeKeys},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"KeyAndPrefixCoexist", testKeyAndPrefixCoexist},
		{"InvalidKeys", testInvalidKeys},
		{"ListPrefix", testListPrefix},
		{"ConcurrentPutsOneKey", testConcurrentPuts},
		{"PutIfAbsentNew", testPutIfAbsentNew},
		{"PutIfAbsentTaken", testPutIfAbsentTaken},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"PutIfAbsentAfterDelete", testPutIfAbsentAfterDelete},
		{"CancelledContext", testCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.Skip[tc.name]; ok {
				t.Skip("backend deviation: " + why)
			}
			t.Parallel()
			s := h.New(t)
			if s == nil {
				t.Fatal("Harness.New returned nil")
			}
			tc.fn(t, s)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func md5ETag(data []byte) string {
	sum := md5.Sum(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func put(t *testing.T, s blob.Store, key string, data []byte, ct string) string {
	t.Helper()
	etag, err := s.Put(ctxT(t), key, data, ct)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if want := md5ETag(data); etag != want {
		t.Fatalf("Put(%q) ETag = %s, want the quoted content MD5 %s", key, etag, want)
	}
	return etag
}

func get(t *testing.T, s blob.Store, key string) ([]byte, blob.Attributes) {
	t.Helper()
	data, a, err := s.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return data, a
}

// checkAttrs compares what both backends report for a just-written object.
func checkAttrs(t *testing.T, what string, a blob.Attributes, key, ct string, data []byte, before time.Time) {
	t.Helper()
	if a.Key != key || a.ETag != md5ETag(data) || a.Size != int64(len(data)) {
		t.Fatalf("%s: attributes %+v, want key %q ETag %s size %d", what, a, key, md5ETag(data), len(data))
	}
	if ct != "" && a.ContentType != ct {
		t.Fatalf("%s: content type %q, want %q", what, a.ContentType, ct)
	}
	// S3's Last-Modified has whole-second resolution.
	if a.Modified.Before(before.Add(-2*time.Second)) || a.Modified.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("%s: Modified %v, want about %v", what, a.Modified, before)
	}
}

func testPutGetHead(t *testing.T, s blob.Store) {
	before := time.Now()
	data := []byte(`{"faces":[{"name":"alice","box":[1,2,3,4]}]}`)
	const key, ct = "results/2026/req-1.json", "application/json"
	put(t, s, key, data, ct)
	got, a := get(t, s, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, want %q", got, data)
	}
	checkAttrs(t, "Get", a, key, ct, data, before)
	h, err := s.Head(ctxT(t), key)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	checkAttrs(t, "Head", h, key, ct, data, before)
	if h.ETag != a.ETag || h.Size != a.Size || h.ContentType != a.ContentType {
		t.Fatalf("Head %+v disagrees with Get %+v", h, a)
	}
}

func testEmptyAndBinary(t *testing.T, s blob.Store) {
	before := time.Now()
	put(t, s, "empty", nil, "text/plain")
	got, a := get(t, s, "empty")
	if len(got) != 0 {
		t.Fatalf("empty object read back as %d bytes", len(got))
	}
	checkAttrs(t, "empty", a, "empty", "text/plain", nil, before)

	bin := make([]byte, 300<<10)
	if _, err := rand.Read(bin); err != nil {
		t.Fatal(err)
	}
	bin[0], bin[1], bin[2] = 0xFF, 0xD8, 0xFF // a JPEG's start, plus NULs and newlines anywhere
	put(t, s, "uploads/photo.jpg", bin, "image/jpeg")
	got, a = get(t, s, "uploads/photo.jpg")
	if !bytes.Equal(got, bin) {
		t.Fatalf("binary round trip differs (%d bytes back, want %d)", len(got), len(bin))
	}
	checkAttrs(t, "binary", a, "uploads/photo.jpg", "image/jpeg", bin, before)
}

func testDefaultContentType(t *testing.T, s blob.Store) {
	put(t, s, "noct", []byte("x"), "")
	a, err := s.Head(ctxT(t), "noct")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if a.ContentType != blob.DefaultContentType {
		t.Fatalf("content type of a Put without one = %q, want %q", a.ContentType, blob.DefaultContentType)
	}
}

func testUnicodeKeys(t *testing.T, s blob.Store) {
	keys := []string{"uploads/Grüße aus Köln/photo 1.jpg", "名前/写真.png", "a+b=c&d?e#f%20g.txt", "dots.in.name/x.y.z", ".hidden/.tmp-looking"}
	for i, k := range keys {
		put(t, s, k, []byte(fmt.Sprint("v", i)), "text/plain")
	}
	for i, k := range keys {
		got, a := get(t, s, k)
		if string(got) != fmt.Sprint("v", i) || a.Key != k {
			t.Fatalf("Get(%q) = %q key %q", k, got, a.Key)
		}
	}
	l, err := s.List(ctxT(t), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if got := listKeys(l); !slices.Equal(got, want) {
		t.Fatalf("List keys = %q, want %q", got, want)
	}
}

func testNotFound(t *testing.T, s blob.Store) {
	put(t, s, "dir/sub/obj", []byte("x"), "")
	for _, k := range []string{"missing", "dir", "dir/sub", "dir/sub/obj/deeper", "dir/sub/ob"} {
		if _, _, err := s.Get(ctxT(t), k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", k, err)
		}
		if _, err := s.Head(ctxT(t), k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Head(%q) = %v, want ErrNotFound", k, err)
		}
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	e1 := put(t, s, "k", []byte("version one"), "text/plain")
	e2 := put(t, s, "k", []byte("version two!"), "application/json")
	if e1 == e2 {
		t.Fatalf("overwrite kept ETag %s although the content changed", e1)
	}
	got, a := get(t, s, "k")
	if string(got) != "version two!" || a.ETag != e2 || a.ContentType != "application/json" || a.Size != 12 {
		t.Fatalf("after overwrite: %q %+v", got, a)
	}
	if e3 := put(t, s, "k", []byte("version two!"), "application/json"); e3 != e2 {
		t.Fatalf("same content gave ETag %s, then %s", e2, e3)
	}
	l, err := s.List(ctxT(t), "")
	if err != nil || len(l) != 1 {
		t.Fatalf("List after overwrites: %v %+v, want one object", err, l)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	put(t, s, "a/b/c", []byte("c"), "")
	put(t, s, "a/b/d", []byte("d"), "")
	ctx := ctxT(t)
	if err := s.Delete(ctx, "a/b/c"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := s.Get(ctx, "a/b/c"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if got, _ := get(t, s, "a/b/d"); string(got) != "d" {
		t.Fatalf("sibling changed: %q", got)
	}
	for _, k := range []string{"a/b/c", "never", "a", "a/b"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q) of a missing key = %v, want nil", k, err)
		}
	}
	if got, _ := get(t, s, "a/b/d"); string(got) != "d" {
		t.Fatalf("deleting prefixes changed a/b/d: %q", got)
	}
	if err := s.Delete(ctx, "a/b/d"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("List after deleting all: %v %+v", err, l)
	}
	// The key can be written again after its folders were pruned.
	put(t, s, "a/b/c", []byte("again"), "")
}

func testKeyAndPrefixCoexist(t *testing.T, s blob.Store) {
	// S3 has no folders: "a" and "a/b" are independent keys.
	put(t, s, "a", []byte("file a"), "")
	put(t, s, "a/b", []byte("file a/b"), "")
	put(t, s, "a.d/x", []byte("suffix lookalike"), "")
	put(t, s, "a.obj/y", []byte("another lookalike"), "")
	for k, want := range map[string]string{"a": "file a", "a/b": "file a/b", "a.d/x": "suffix lookalike", "a.obj/y": "another lookalike"} {
		if got, _ := get(t, s, k); string(got) != want {
			t.Fatalf("Get(%q) = %q, want %q", k, got, want)
		}
	}
	if err := s.Delete(ctxT(t), "a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, s, "a/b"); string(got) != "file a/b" {
		t.Fatalf("a/b after deleting a: %q", got)
	}
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := ctxT(t)
	for _, k := range []string{"", "..", "../escape", "a/../../escape", "/abs", "a//b", "a/./b", "a/", "./a", "a\x00b", "a\nb", `a\b`, strings.Repeat("k", 1025)} {
		if _, err := s.Put(ctx, k, []byte("x"), ""); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.PutIfAbsent(ctx, k, []byte("x"), ""); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("PutIfAbsent(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, _, err := s.Get(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Head(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Head(%q) = %v, want ErrInvalidKey", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("invalid keys left objects: %v %+v", err, l)
	}
}

func listKeys(l []blob.Attributes) []string {
	keys := make([]string, len(l))
	for i, a := range l {
		keys[i] = a.Key
	}
	return keys
}

func testListPrefix(t *testing.T, s blob.Store) {
	before := time.Now()
	keys := []string{"photos/a1.jpg", "photos/ab/c.jpg", "photos/b.jpg", "photosx", "a-b", "a/b", "a0", "results/r1.json", "photos"}
	data := map[string][]byte{}
	for i, k := range keys {
		data[k] = bytes.Repeat([]byte{byte('a' + i)}, i+1)
		put(t, s, k, data[k], "application/octet-stream")
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		// S3 orders keys by their UTF-8 bytes: '-' < '/' < '0'.
		{"", []string{"a-b", "a/b", "a0", "photos", "photos/a1.jpg", "photos/ab/c.jpg", "photos/b.jpg", "photosx", "results/r1.json"}},
		{"photos/", []string{"photos/a1.jpg", "photos/ab/c.jpg", "photos/b.jpg"}},
		{"photos/a", []string{"photos/a1.jpg", "photos/ab/c.jpg"}},
		{"photos", []string{"photos", "photos/a1.jpg", "photos/ab/c.jpg", "photos/b.jpg", "photosx"}},
		{"photos/ab/", []string{"photos/ab/c.jpg"}},
		{"a", []string{"a-b", "a/b", "a0"}},
		{"results/r1.json", []string{"results/r1.json"}},
		{"nothing/", nil},
		{"photos/zzz/", nil},
	} {
		l, err := s.List(ctxT(t), tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if got := listKeys(l); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for _, a := range l {
			checkAttrs(t, "List("+tc.prefix+")", a, a.Key, "", data[a.Key], before)
		}
	}
}

func testConcurrentPuts(t *testing.T, s blob.Store) {
	const key, writers, size = "hot/key.bin", 6, 64 << 10
	versions := make(map[string][]byte, writers) // ETag -> content
	for i := range writers {
		v := bytes.Repeat([]byte{byte(i + 1)}, size)
		v[size-1] = byte(0xF0 + i)
		versions[md5ETag(v)] = v
	}
	put(t, s, key, bytes.Repeat([]byte{0xEE}, size), "")
	var wg sync.WaitGroup
	errs := make(chan error, 4*writers)
	for _, v := range versions {
		wg.Go(func() {
			for range 3 {
				if _, err := s.Put(ctxT(t), key, v, "application/octet-stream"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Readers meanwhile must only ever see a whole version with its own ETag.
	for range 2 {
		wg.Go(func() {
			for range 10 {
				data, a, err := s.Get(ctxT(t), key)
				if err != nil {
					errs <- err
					return
				}
				if md5ETag(data) != a.ETag || int64(len(data)) != a.Size {
					errs <- fmt.Errorf("read %d bytes with MD5 %s under ETag %s size %d: a torn write", len(data), md5ETag(data), a.ETag, a.Size)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent access: %v", err)
	}
	data, a := get(t, s, key)
	if v, ok := versions[a.ETag]; !ok || !bytes.Equal(v, data) {
		t.Fatalf("after concurrent puts the object (%d bytes, ETag %s) is none of the written versions", len(data), a.ETag)
	}
	l, err := s.List(ctxT(t), "hot/")
	if err != nil || len(l) != 1 || l[0].ETag != a.ETag {
		t.Fatalf("List after concurrent puts: %v %+v, want exactly the final version", err, l)
	}
}

func testCancelled(t *testing.T, s blob.Store) {
	put(t, s, "k", []byte("x"), "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "k2", []byte("x"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.PutIfAbsent(ctx, "k3", []byte("x"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("PutIfAbsent with a cancelled context = %v, want context.Canceled", err)
	}
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = %v, want context.Canceled", err)
	}
}

func putIfAbsent(t *testing.T, s blob.Store, key string, data []byte, ct string) string {
	t.Helper()
	etag, err := s.PutIfAbsent(ctxT(t), key, data, ct)
	if err != nil {
		t.Fatalf("PutIfAbsent(%q) of an absent key: %v", key, err)
	}
	if want := md5ETag(data); etag != want {
		t.Fatalf("PutIfAbsent(%q) ETag = %s, want the quoted content MD5 %s", key, etag, want)
	}
	return etag
}

func testPutIfAbsentNew(t *testing.T, s blob.Store) {
	before := time.Now()
	data := []byte(`{"seq":1,"op":"enroll","name":"amy"}`)
	const key, ct = "gallery/journal/00000001.json", "application/json"
	etag := putIfAbsent(t, s, key, data, ct)
	got, a := get(t, s, key)
	if !bytes.Equal(got, data) || a.ETag != etag {
		t.Fatalf("Get after PutIfAbsent = %q ETag %s, want %q ETag %s", got, a.ETag, data, etag)
	}
	checkAttrs(t, "Get after PutIfAbsent", a, key, ct, data, before)
	// A sibling and an empty object with the default content type.
	putIfAbsent(t, s, "gallery/journal/00000002.json", nil, "")
	h, err := s.Head(ctxT(t), "gallery/journal/00000002.json")
	if err != nil || h.Size != 0 || h.ContentType != blob.DefaultContentType {
		t.Fatalf("Head of an empty PutIfAbsent without content type = %+v, %v; want 0 bytes of %s", h, err, blob.DefaultContentType)
	}
	l, err := s.List(ctxT(t), "gallery/")
	if err != nil || len(l) != 2 {
		t.Fatalf("List after two PutIfAbsent = %+v, %v; want the two objects", l, err)
	}
}

func testPutIfAbsentTaken(t *testing.T, s blob.Store) {
	const key = "gallery/journal/7"
	first := []byte("written by Put")
	e := put(t, s, key, first, "text/plain")
	for i, v := range [][]byte{[]byte("a second writer"), first, nil} {
		if etag, err := s.PutIfAbsent(ctxT(t), key, v, "application/json"); !errors.Is(err, blob.ErrExists) {
			t.Fatalf("PutIfAbsent #%d on a key Put wrote = %q, %v; want ErrExists", i, etag, err)
		}
	}
	got, a := get(t, s, key)
	if !bytes.Equal(got, first) || a.ETag != e || a.ContentType != "text/plain" {
		t.Fatalf("after refused PutIfAbsent calls the object is %q %+v, want %q text/plain ETag %s unchanged", got, a, first, e)
	}
	// A key PutIfAbsent wrote is taken just the same.
	e2 := putIfAbsent(t, s, "gallery/journal/8", []byte("eight"), "text/plain")
	if _, err := s.PutIfAbsent(ctxT(t), "gallery/journal/8", []byte("EIGHT"), "text/plain"); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("second PutIfAbsent on one key = %v, want ErrExists", err)
	}
	if got, a := get(t, s, "gallery/journal/8"); string(got) != "eight" || a.ETag != e2 {
		t.Fatalf("after a refused PutIfAbsent: %q %+v, want \"eight\"", got, a)
	}
	// Refused writes leave nothing behind that List would show.
	l, err := s.List(ctxT(t), "")
	if err != nil || !slices.Equal(listKeys(l), []string{"gallery/journal/7", "gallery/journal/8"}) {
		t.Fatalf("List after refused PutIfAbsent calls = %q, %v; want the two objects", listKeys(l), err)
	}
	// Put still replaces an object whatever wrote it.
	put(t, s, "gallery/journal/8", []byte("replaced"), "text/plain")
	if got, _ := get(t, s, "gallery/journal/8"); string(got) != "replaced" {
		t.Fatalf("Put over a PutIfAbsent object: %q", got)
	}
}

func testPutIfAbsentRace(t *testing.T, s blob.Store) {
	const key, writers = "gallery/journal/race", 8
	for round := range 3 {
		k := fmt.Sprintf("%s-%d", key, round)
		type result struct {
			data []byte
			etag string
			err  error
		}
		results := make([]result, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			results[i].data = fmt.Appendf(nil, "writer %d of round %d: %s", i, round, bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1)))
			wg.Go(func() {
				<-start
				results[i].etag, results[i].err = s.PutIfAbsent(ctxT(t), k, results[i].data, "text/plain")
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, r := range results {
			switch {
			case r.err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both won PutIfAbsent on one key", round, winner, i)
			case r.err == nil:
				winner = i
			case !errors.Is(r.err, blob.ErrExists):
				t.Fatalf("round %d: a losing writer got %v, want ErrExists", round, r.err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: none of %d writers won PutIfAbsent on an absent key", round, writers)
		}
		got, a := get(t, s, k)
		if w := results[winner]; !bytes.Equal(got, w.data) || a.ETag != w.etag {
			t.Fatalf("round %d: the object (%d bytes, ETag %s) is not the winner's (writer %d, %d bytes, ETag %s)", round, len(got), a.ETag, winner, len(w.data), w.etag)
		}
	}
}

func testPutIfAbsentAfterDelete(t *testing.T, s blob.Store) {
	const key = "gallery/journal/lease"
	putIfAbsent(t, s, key, []byte("first"), "")
	if err := s.Delete(ctxT(t), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// The folders were pruned (fileblob) and the key is free again.
	e := putIfAbsent(t, s, key, []byte("second"), "")
	if got, a := get(t, s, key); string(got) != "second" || a.ETag != e {
		t.Fatalf("after Delete and PutIfAbsent: %q %+v, want \"second\"", got, a)
	}
	if _, err := s.PutIfAbsent(ctxT(t), key, []byte("third"), ""); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("PutIfAbsent on the re-created key = %v, want ErrExists", err)
	}
}
