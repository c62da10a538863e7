package apptier_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
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
