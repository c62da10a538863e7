// Package e2e_test drives facefleet through real HTTP on 127.0.0.1: the embedded
// service with the real engine (TestEndToEndRealEngine), the same flow with an
// engine double (fast), and fault tests that kill and crash workers.
package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// post sends data as a multipart file and returns status and body; a transport
// error fails the test (from any goroutine) and answers 0, "".
func post(t testing.TB, method, url, field, filename string, data []byte) (int, string) {
	t.Helper()
	code, body, err := e2ekit.Upload(http.DefaultClient, method, url, field, filename, data)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, ""
	}
	return code, body
}

// randomPNG is a small noise image, distinct per seed.
func randomPNG(t testing.TB, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewGray(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	img.Set(0, 0, color.Gray{Y: uint8(seed)})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fakeEngine returns one face whose descriptor identifies the person the test
// registered for those exact bytes; unregistered bytes get an ImageError, and
// hooks can replace the behaviour for specific images.
type fakeEngine struct {
	mu     sync.Mutex
	people map[[32]byte]int
	hooks  map[[32]byte]func() (*engine.Result, error)
	calls  map[[32]byte]int
	delay  time.Duration
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{people: map[[32]byte]int{}, hooks: map[[32]byte]func() (*engine.Result, error){}, calls: map[[32]byte]int{}}
}

func (f *fakeEngine) register(img []byte, person int) {
	f.mu.Lock()
	f.people[sha256.Sum256(img)] = person
	f.mu.Unlock()
}

func (f *fakeEngine) hook(img []byte, h func() (*engine.Result, error)) {
	f.mu.Lock()
	f.hooks[sha256.Sum256(img)] = h
	f.mu.Unlock()
}

func (f *fakeEngine) callsFor(img []byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[sha256.Sum256(img)]
}

func descriptorFor(person int) []float32 {
	d := make([]float32, gallery.DescriptorLen)
	d[person%gallery.DescriptorLen] = 1
	return d
}

func (f *fakeEngine) Analyze(ctx context.Context, img []byte) (*engine.Result, error) {
	sum := sha256.Sum256(img)
	f.mu.Lock()
	f.calls[sum]++
	h, hooked := f.hooks[sum]
	p, ok := f.people[sum]
	delay := f.delay
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if hooked {
		return h()
	}
	if !ok {
		return nil, &engine.ImageError{Kind: "format", Detail: "the fake engine does not know these bytes"}
	}
	return &engine.Result{Width: 32, Height: 32, Faces: []engine.Face{{
		Box: engine.Box{X: 4, Y: 4, W: 20, H: 20}, Score: 0.9, Descriptor: descriptorFor(p),
	}}}, nil
}

func name(person int) string { return fmt.Sprintf("person%d", person) }

func httpGet(url string) (string, error) {
	res, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
