package apptier_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
)

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
		{Box: engine.Box{X: 1, Y: 1, W: 10, H: 10}, Score: 0.8, Descriptor: smallFace()},
		{Box: engine.Box{X: 20, Y: 20, W: 50, H: 50}, Score: 0.9, Descriptor: bigFace()},
	}}, nil
}

func (f *fakeEngine) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// smallFace and bigFace are the descriptors of fakeEngine's two faces.
func smallFace() []float32 { return oneHot(0, 0.1) }
func bigFace() []float32   { return oneHot(1, 0.3) }

func oneHot(i int, v float32) []float32 {
	d := make([]float32, gallery.DescriptorLen)
	d[i] = v
	return d
}

// setGallery makes the shared gallery in out hold name with both of
// fakeEngine's faces ("" empties it) and returns its journal position, what a
// web tier puts in its requests.
func setGallery(t *testing.T, out blob.Store, name string) uint64 {
	t.Helper()
	st, err := gallery.OpenStore(context.Background(), out, "", gallery.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := gallery.New()
	if name != "" {
		if err := g.Add(name, bigFace(), smallFace()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.Apply(context.Background(), gallery.Edit{Op: gallery.OpReplace, Faces: g})
	if err != nil {
		t.Fatal(err)
	}
	return res.Seq
}
