package engine_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"runtime"
	"testing"

	"github.com/facefleet/facefleet/engine"
)

// Any image, any shape, costs bounded memory. A 6 KB PNG of 400000x16 grey
// pixels passes every limit; with no face found, the framed retry once asked
// for a frame a third of the longer side on every edge (533 GB) and the
// process died with "fatal error: out of memory". Each case here must finish
// as NoFace with at most a few times the decoded image's bytes allocated.
func TestAnalyzeBoundedMemory(t *testing.T) {
	e := newEngine(t, engine.Options{})
	for _, c := range []struct{ w, h int }{
		{400000, 16}, // the reported strip
		{16, 400000}, // and the other way
		{6000, 1500}, // wide, 4:1: framed after shrinking
		{3000, 3000}, // large square: framed after shrinking
		{700, 700},   // just over the frame limit
		{1, 1},
	} {
		var b bytes.Buffer
		img := image.NewGray(image.Rect(0, 0, c.w, c.h))
		for i := range img.Pix {
			img.Pix[i] = 200
		}
		img.Set(0, 0, color.Gray{Y: 10})
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res, err := e.Analyze(context.Background(), b.Bytes())
		runtime.ReadMemStats(&after)
		if err != nil {
			var ie *engine.ImageError
			if !asImageError(err, &ie) {
				t.Fatalf("%dx%d: %v", c.w, c.h, err)
			}
			continue // rejected by a limit: also bounded
		}
		if len(res.Faces) != 0 {
			t.Errorf("%dx%d flat grey: %d faces, want none", c.w, c.h, len(res.Faces))
		}
		decoded := uint64(c.w * c.h * 3)
		if got, limit := after.TotalAlloc-before.TotalAlloc, 4*decoded+64<<20; got > limit {
			t.Errorf("%dx%d (%d bytes of PNG): allocated %d MB, want at most %d MB", c.w, c.h, b.Len(), got>>20, limit>>20)
		}
	}
}

func asImageError(err error, target **engine.ImageError) bool {
	ie, ok := err.(*engine.ImageError)
	if ok {
		*target = ie
	}
	return ok
}
