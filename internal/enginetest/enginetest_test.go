package enginetest_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/enginetest"
)

// The double stands where the engine does.
var _ apptier.Analyzer = (*enginetest.Engine)(nil)

func TestScriptWords(t *testing.T) {
	e := enginetest.New()
	ctx := context.Background()
	res, err := e.Analyze(ctx, []byte("face"))
	if err != nil || len(res.Faces) != 2 || res.Faces[1].Box.W <= res.Faces[0].Box.W {
		t.Fatalf("face = %+v, %v; want two faces, the larger second", res, err)
	}
	for _, f := range res.Faces {
		if len(f.Landmarks) != 68 || len(f.Descriptor) != gallery.DescriptorLen || f.Score < 0.3 {
			t.Fatalf("face %+v is not shaped like the engine's", f)
		}
		for _, p := range f.Landmarks {
			if p.X < f.Box.X || p.X > f.Box.X+f.Box.W || p.Y < f.Box.Y || p.Y > f.Box.Y+f.Box.H {
				t.Fatalf("landmark %+v outside box %+v", p, f.Box)
			}
		}
	}
	if res, err := e.Analyze(ctx, []byte("noface")); err != nil || res.Faces == nil || len(res.Faces) != 0 {
		t.Fatalf("noface = %+v, %v; want an empty, non-nil face list as the engine gives", res, err)
	}
	var ie *engine.ImageError
	for _, img := range [][]byte{[]byte("bad"), []byte("\x89PNG unknown bytes")} {
		if _, err := e.Analyze(ctx, img); !errors.As(err, &ie) || ie.Kind != engine.KindFormat {
			t.Fatalf("%q: %v, want an ImageError of kind format", img, err)
		}
	}
	if _, err := e.Analyze(ctx, []byte("flaky")); err == nil || errors.As(err, &ie) {
		t.Fatalf("flaky: %v, want a plain (transient) error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic did not panic")
			}
		}()
		_, _ = e.Analyze(ctx, []byte("panic"))
	}()
	done := make(chan struct{})
	go func() { defer close(done); _, _ = e.Analyze(ctx, []byte("exit")); t.Error("exit returned") }()
	<-done
	start := time.Now()
	if _, err := e.Analyze(ctx, []byte("slow:30")); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("slow:30 = %v after %v", err, time.Since(start))
	}
	if _, err := e.Analyze(ctx, []byte("slow:x")); err == nil {
		t.Fatal("a malformed slow script was accepted")
	}
	if n := e.Calls(); n != 9 {
		t.Fatalf("Calls = %d, want 9", n)
	}
}

func TestBlockWaitsForReleaseOrContext(t *testing.T) {
	e := enginetest.New()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.Analyze(ctx, []byte("block")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("block with an ending context: %v", err)
	}
	got := make(chan error, 1)
	go func() { _, err := e.Analyze(context.Background(), []byte("block")); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("block returned before Release: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	e.Release()
	e.Release() // twice is fine
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestRegisteredImagesComeFirst(t *testing.T) {
	e := enginetest.New()
	ctx := context.Background()
	amy, hooked := []byte("amy's photo"), []byte("face")
	e.Face(amy, 3)
	e.On(hooked, func(context.Context) (*engine.Result, error) {
		return &engine.Result{Width: 7, Faces: []engine.Face{}}, nil
	})
	res, err := e.Analyze(ctx, amy)
	if err != nil || len(res.Faces) != 1 || res.Faces[0].Descriptor[3] != 1 {
		t.Fatalf("registered face = %+v, %v", res, err)
	}
	if res, err := e.Analyze(ctx, hooked); err != nil || res.Width != 7 {
		t.Fatalf("On did not take precedence over the script word: %+v, %v", res, err)
	}
	if e.CallsFor(amy) != 1 || e.CallsFor(hooked) != 1 || e.CallsFor([]byte("other")) != 0 {
		t.Fatal("CallsFor counts wrong")
	}
	e.SetFaceDescriptors([]float32{1}, []float32{2})
	if res, err := e.Analyze(ctx, []byte("slow:1")); err != nil || res.Faces[0].Descriptor[0] != 1 || res.Faces[1].Descriptor[0] != 2 {
		t.Fatalf("SetFaceDescriptors not used: %+v, %v", res, err)
	}
	e.SetDelay(time.Hour)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := e.Analyze(short, amy); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetDelay ignored the context: %v", err)
	}
}

func TestDescriptorsAreUnitAndDistinct(t *testing.T) {
	a, b := enginetest.Descriptor(0), enginetest.Descriptor(1)
	var na, dot, dist float64
	for i := range a {
		na += float64(a[i] * a[i])
		dot += float64(a[i] * b[i])
		dist += float64((a[i] - b[i]) * (a[i] - b[i]))
	}
	if na != 1 || dot != 0 || math.Abs(math.Sqrt(dist)-math.Sqrt2) > 1e-9 {
		t.Fatalf("|a|²=%v a·b=%v |a-b|=%v", na, dot, math.Sqrt(dist))
	}
}
