package apptier_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
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

// fakeEngine interprets the image bytes as a script: "face" gives one face,
// "noface" none, "bad" an ImageError, "flaky" a transient error, "panic" panics,
// "slow:<ms>" sleeps first.
type fakeEngine struct {
	mu    sync.Mutex
	calls int
	block chan struct{} // when set, "block" waits for it
}

func (f *fakeEngine) Analyze(ctx context.Context, img []byte) (*engine.Result, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	s := string(img)
	if d, ok := strings.CutPrefix(s, "slow:"); ok {
		var n int
		fmt.Sscanf(d, "%d", &n)
		time.Sleep(time.Duration(n) * time.Millisecond)
		s = "face"
	}
	switch s {
	case "block":
		<-f.block
		s = "face"
	case "bad":
		return nil, &engine.ImageError{Kind: "format", Detail: "not an image"}
	case "flaky":
		return nil, fmt.Errorf("onnxruntime: out of memory")
	case "panic":
		panic("engine exploded")
	case "exit":
		runtime.Goexit() // the instance dies mid-image

	case "noface":
		return &engine.Result{Width: 10, Height: 10}, nil
	}
	return &engine.Result{Width: 100, Height: 100, Faces: []engine.Face{
		{Box: engine.Box{X: 1, Y: 1, W: 10, H: 10}, Score: 0.8, Descriptor: []float32{1, 2}},
		{Box: engine.Box{X: 20, Y: 20, W: 50, H: 50}, Score: 0.9, Descriptor: []float32{3, 4}},
	}}, nil
}

func (f *fakeEngine) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// nameMatcher labels every face with the gallery's content (a bare name).
type nameMatcher string

func (n nameMatcher) Label(res *engine.Result) string {
	if len(res.Faces) == 0 {
		return engine.NoFace
	}
	if n == "" {
		return engine.Unknown
	}
	for i := range res.Faces {
		res.Faces[i].Subject, res.Faces[i].Distance = string(n), 0.25
	}
	return string(n)
}

func loadNameGallery(data []byte) (apptier.Matcher, error) { return nameMatcher(data), nil }
