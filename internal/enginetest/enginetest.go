// Package enginetest is the one engine double for tests of what runs above the
// engine (apptier, the embedded service, the web tier behind real workers, the
// e2e tests): Engine implements apptier.Analyzer without models or ONNX Runtime.
// Only tests import it.
//
// What an image gives is decided by its exact bytes, first match wins:
//
//  1. bytes given to On: that function's answer;
//  2. bytes given to Face: one face whose descriptor is Descriptor(person);
//  3. a script word, the whole of the bytes: "face" two faces, the larger one
//     second (Descriptor(0), Descriptor(1), or those SetFaceDescriptors
//     gives); "noface" none; "bad" an
//     *engine.ImageError; "flaky" a plain (transient) error; "panic" panics;
//     "exit" ends the calling goroutine (runtime.Goexit: an instance dying
//     mid-image); "block" waits for Release or ctx, then "face";
//     "slow:<ms>" sleeps that long, then "face";
//  4. any other bytes: an *engine.ImageError of kind "format", as the engine
//     answers bytes it cannot decode.
//
// Every face has 68 landmarks inside its box, a score in the detector's range
// and a unit descriptor of gallery.DescriptorLen, as the engine's have.
//
// What the double does not model, though the code above the engine depends on
// it (tests of these need the real engine: engine/, test/e2e
// TestEndToEndRealEngine, test/hostile, test/cloude2e):
//   - decoding: no format check, no pixel or JPEG-scan limits
//     (engine.Options' MaxPixels, MaxJPEGScans), no EXIF orientation; Width and
//     Height are made up, never the image's. The web tier's own sniffing
//     (engine/imagefmt) still runs in front of it.
//   - descriptors: they are whatever the test chose (Descriptor(person) is
//     one-hot: two people are √2 apart), never a photo's; the tight-crop
//     fallback and the non-face second opinion are never exercised, and a
//     threshold is only tested at the distances the test set up.
//   - cost: an answer comes at once (SetDelay, "slow", "block" add waiting, not
//     work): no CPU, memory or ONNX Runtime threads, so nothing about
//     throughput, memory bounds or the scaler's view of real service times.
//   - cancellation: only "block" and SetDelay's wait honour ctx; the engine
//     checks ctx between stages.
package enginetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/pause"
)

// Engine is the double; the zero value is not usable, call New. It is safe
// for concurrent use.
type Engine struct {
	mu      sync.Mutex
	people  map[[32]byte]int
	hooks   map[[32]byte]func(context.Context) (*engine.Result, error)
	calls   map[[32]byte]int
	total   int
	delay   time.Duration
	release chan struct{}
	freed   bool
	small   []float32 // the script word "face"'s descriptors
	large   []float32
}

// New returns an Engine that knows only the script words.
func New() *Engine {
	return &Engine{
		people:  map[[32]byte]int{},
		hooks:   map[[32]byte]func(context.Context) (*engine.Result, error){},
		calls:   map[[32]byte]int{},
		release: make(chan struct{}),
		small:   Descriptor(0),
		large:   Descriptor(1),
	}
}

// SetFaceDescriptors sets the descriptors of the script word "face"'s two
// faces: the small one, then the large one.
func (e *Engine) SetFaceDescriptors(small, large []float32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.small, e.large = small, large
}

// Face makes img show one face of person (its descriptor is Descriptor(person)).
func (e *Engine) Face(img []byte, person int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.people[sha256.Sum256(img)] = person
}

// On makes f answer img (it may also sleep, panic or runtime.Goexit).
func (e *Engine) On(img []byte, f func(context.Context) (*engine.Result, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hooks[sha256.Sum256(img)] = f
}

// SetDelay makes every later Analyze wait d (or until ctx ends) first.
func (e *Engine) SetDelay(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.delay = d
}

// Release lets every "block" image, waiting or to come, go on.
func (e *Engine) Release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.freed {
		e.freed = true
		close(e.release)
	}
}

// Calls is how many times Analyze was called.
func (e *Engine) Calls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total
}

// CallsFor is how many times Analyze was called with img.
func (e *Engine) CallsFor(img []byte) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[sha256.Sum256(img)]
}

// Descriptor is person's descriptor: the unit vector on axis person (modulo
// gallery.DescriptorLen).
func Descriptor(person int) []float32 {
	d := make([]float32, gallery.DescriptorLen)
	d[person%gallery.DescriptorLen] = 1
	return d
}

// NewFace is a face in box b with 68 landmarks spread over it, score 0.9 and
// Descriptor(person).
func NewFace(b engine.Box, person int) engine.Face {
	lm := make([]engine.Point, 68)
	for i := range lm {
		lm[i] = engine.Point{X: b.X + b.W*float64(i%8+1)/9, Y: b.Y + b.H*float64(i/8+1)/10}
	}
	return engine.Face{Box: b, Score: 0.9, Landmarks: lm, Descriptor: Descriptor(person)}
}

// Analyze answers img as the package comment says.
func (e *Engine) Analyze(ctx context.Context, img []byte) (*engine.Result, error) {
	sum := sha256.Sum256(img)
	e.mu.Lock()
	e.total++
	e.calls[sum]++
	hook, hooked := e.hooks[sum]
	person, known := e.people[sum]
	delay, release, small, large := e.delay, e.release, e.small, e.large
	e.mu.Unlock()
	if delay > 0 {
		if err := pause.For(ctx, delay); err != nil {
			return nil, err
		}
	}
	switch {
	case hooked:
		return hook(ctx)
	case known:
		return &engine.Result{Width: 32, Height: 32, Faces: []engine.Face{NewFace(engine.Box{X: 4, Y: 4, W: 20, H: 20}, person)}}, nil
	}
	word := string(img)
	if ms, ok := strings.CutPrefix(word, "slow:"); ok {
		n, err := strconv.Atoi(ms)
		if err != nil {
			return nil, fmt.Errorf("enginetest: script %q: %w", word, err)
		}
		time.Sleep(time.Duration(n) * time.Millisecond)
		word = "face"
	}
	switch word {
	case "block":
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return twoFaces(small, large), nil
	case "face":
		return twoFaces(small, large), nil
	case "noface":
		return &engine.Result{Width: 10, Height: 10, Faces: []engine.Face{}}, nil
	case "bad":
		return nil, &engine.ImageError{Kind: engine.KindFormat, Detail: "not an image (enginetest script \"bad\")"}
	case "flaky":
		return nil, errors.New("onnxruntime: out of memory (enginetest script \"flaky\")")
	case "panic":
		panic("enginetest: the engine exploded (script \"panic\")")
	case "exit":
		runtime.Goexit()
	}
	return nil, &engine.ImageError{Kind: engine.KindFormat, Detail: "enginetest does not know these bytes"}
}

// twoFaces: a small face, then a larger one (the course answer names the larger).
func twoFaces(small, large []float32) *engine.Result {
	s, l := NewFace(engine.Box{X: 1, Y: 1, W: 10, H: 10}, 0), NewFace(engine.Box{X: 20, Y: 20, W: 50, H: 50}, 1)
	s.Descriptor, l.Descriptor = small, large
	return &engine.Result{Width: 100, Height: 100, Faces: []engine.Face{s, l}}
}
