package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refPadResize is tfjs's resizeBilinear (alignCorners=false,
// halfPixelCenters=false) written plainly over an explicit zero-padded canvas.
func refPadResize(img *RGB, r rect, ox, oy, n int) []float32 {
	s := max(r.w, r.h)
	canvas := make([]float32, s*s*3)
	for y := 0; y < r.h; y++ {
		for x := 0; x < r.w; x++ {
			for c := 0; c < 3; c++ {
				canvas[((y+oy)*s+x+ox)*3+c] = float32(img.Pix[((r.y+y)*img.W+r.x+x)*3+c])
			}
		}
	}
	scale := float32(s) / float32(n)
	out := make([]float32, n*n*3)
	for row := 0; row < n; row++ {
		sy := float32(row) * scale
		y0 := int(math.Floor(float64(sy)))
		y1 := min(s-1, int(math.Ceil(float64(sy))))
		fy := sy - float32(y0)
		for col := 0; col < n; col++ {
			sx := float32(col) * scale
			x0 := int(math.Floor(float64(sx)))
			x1 := min(s-1, int(math.Ceil(float64(sx))))
			fx := sx - float32(x0)
			for c := 0; c < 3; c++ {
				tl, tr := canvas[(y0*s+x0)*3+c], canvas[(y0*s+x1)*3+c]
				bl, br := canvas[(y1*s+x0)*3+c], canvas[(y1*s+x1)*3+c]
				top := tl + (tr-tl)*fx
				bot := bl + (br-bl)*fx
				out[(row*n+col)*3+c] = top + (bot-top)*fy
			}
		}
	}
	return out
}

func randomRGB(w, h int) *RGB {
	r := rand.New(rand.NewPCG(3, 4))
	img := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	return img
}

func TestPadResizeMatchesReference(t *testing.T) {
	img := randomRGB(97, 61)
	var sc resizeScratch
	for _, c := range []struct {
		r rect
		n int
	}{
		{rect{0, 0, 97, 61}, 160},  // upscale, pad bottom
		{rect{0, 0, 97, 61}, 32},   // downscale
		{rect{10, 5, 40, 51}, 112}, // crop, pad sides
		{rect{3, 2, 60, 33}, 150},
		{rect{0, 0, 61, 61}, 61}, // identity
	} {
		ox, oy := centredOffset(c.r.w, c.r.h)
		if c.n == 160 || c.n == 32 {
			ox, oy = 0, 0 // the detector pads bottom/right
		}
		got := make([]float32, c.n*c.n*3)
		padResize(img, c.r, ox, oy, c.n, got, &sc)
		want := refPadResize(img, c.r, ox, oy, c.n)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%+v -> %d: value %d = %v, want %v", c.r, c.n, i, got[i], want[i])
			}
		}
	}
}

func TestCentredOffset(t *testing.T) {
	// face-api: Math.round(diff/2) after the image, the rest before.
	for _, c := range []struct{ w, h, ox, oy int }{{10, 15, 2, 0}, {10, 16, 3, 0}, {15, 10, 0, 2}, {7, 7, 0, 0}} {
		if ox, oy := centredOffset(c.w, c.h); ox != c.ox || oy != c.oy {
			t.Errorf("%dx%d: got (%d,%d) want (%d,%d)", c.w, c.h, ox, oy, c.ox, c.oy)
		}
	}
}

func TestDecodeTinyAndNMS(t *testing.T) {
	// One 2x2 grid (input 64): two overlapping strong boxes in cell (0,0) and one
	// weak box; NMS keeps the stronger of the pair.
	data := make([]float32, 2*2*25)
	for i := range data {
		data[i] = -10 // sigmoid ~ 0: no box
	}
	set := func(row, col, a int, tx, ty, tw, th, score float32) {
		copy(data[(row*2+col)*25+a*5:], []float32{tx, ty, tw, th, score})
	}
	set(0, 0, 0, 0, 0, 0, 0, 3)       // score 0.953
	set(0, 0, 2, 0, 0, -0.5, -0.5, 2) // overlaps the first, score 0.881
	set(1, 1, 0, 0, 0, 0, 0, -0.2)    // score 0.45: below 0.5
	dets, err := decodeTiny(data, []int64{1, 2, 2, 25}, 64, 64, 64, 0.5, 0.4)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 || math.Abs(dets[0].score-1/(1+math.Exp(-3))) > 1e-9 {
		t.Fatalf("got %+v", dets)
	}
	// centre (0+0.5)/2 of 64 px = 16; width exp(0)*1.603231/2*64.
	b := dets[0].box
	if math.Abs(b.X+b.W/2-16) > 1e-9 || math.Abs(b.W-1.603231/2*64) > 1e-9 {
		t.Fatalf("box %+v", b)
	}
	// A model gone wrong (NaN score or box) yields no box, never a NaN one.
	set(1, 0, 1, 0, 0, 0, 0, float32(math.NaN()))
	set(0, 1, 1, float32(math.Inf(1)), 0, float32(math.Inf(1)), 0, 5)
	if dets, _ := decodeTiny(data, []int64{1, 2, 2, 25}, 64, 64, 64, 0.5, 0.4); len(dets) != 1 {
		t.Fatalf("non-finite outputs gave boxes: %+v", dets)
	}
	if r := clipBox(Box{X: math.NaN(), W: 10, H: 10}, 64, 64); r.w != 0 || r.h != 0 {
		t.Fatalf("NaN box clipped to %+v", r)
	}
	if _, err := decodeTiny(data, []int64{1, 3, 3, 25}, 64, 64, 64, 0.5, 0.4); err == nil {
		t.Fatal("wrong shape accepted")
	}
}

func BenchmarkPadResizeDetector(b *testing.B) {
	img := randomRGB(1920, 1280)
	dst := make([]float32, 512*512*3)
	var sc resizeScratch
	for b.Loop() {
		padResize(img, rect{0, 0, 1920, 1280}, 0, 0, 512, dst, &sc)
	}
}

func BenchmarkPadResizeFace(b *testing.B) {
	img := randomRGB(1920, 1280)
	dst := make([]float32, 150*150*3)
	var sc resizeScratch
	for b.Loop() {
		padResize(img, rect{500, 300, 290, 300}, 5, 0, 150, dst, &sc)
	}
}
