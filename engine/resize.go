package engine

import "math"

// rect is an integer pixel rectangle of the source image.
type rect struct{ x, y, w, h int }

// padResize writes into dst (n*n*3 float32, NHWC without the batch axis) what
// face-api computes with padToSquare + tf.image.resizeBilinear(alignCorners=false,
// halfPixelCenters=false): the crop r of img is placed in an s x s canvas of zeros
// (s = the crop's longer side) at offset (ox, oy), and the canvas is resized to
// n x n. The canvas is never materialised: out-of-crop samples read as 0.
//
// The arithmetic follows tfjs's kernel exactly (float32; top = tl + (tr-tl)*fx,
// bottom likewise, out = top + (bottom-top)*fy), interpolating horizontally once
// per source row used.
func padResize(img *RGB, r rect, ox, oy, n int, dst []float32, scratch *resizeScratch) {
	s := max(r.w, r.h)
	scale := float32(s) / float32(n)
	sc := scratch.prepare(n)
	// Column taps, as image columns (-1 = padding, reads 0).
	for c := 0; c < n; c++ {
		sx := float32(c) * scale
		x0 := int(math.Floor(float64(sx)))
		x1 := min(s-1, int(math.Ceil(float64(sx))))
		sc.fx[c] = sx - float32(x0)
		sc.x0[c] = colIndex(x0-ox, r)
		sc.x1[c] = colIndex(x1-ox, r)
	}
	sc.lo, sc.hi = 0, n
	for sc.lo < n && (sc.x0[sc.lo] < 0 || sc.x1[sc.lo] < 0) {
		sc.lo++
	}
	for sc.hi > sc.lo && (sc.x0[sc.hi-1] < 0 || sc.x1[sc.hi-1] < 0) {
		sc.hi--
	}
	for c := sc.lo; c < sc.hi; c++ {
		if sc.x0[c] < 0 || sc.x1[c] < 0 { // a padding gap inside: never for one crop
			sc.hi = sc.lo
			break
		}
	}
	rowY := [2]int{-2, -2} // canvas rows held in sc.rows[0], sc.rows[1]
	hrow := func(y int) []float32 {
		for i := 0; i < 2; i++ {
			if rowY[i] == y {
				return sc.rows[i]
			}
		}
		// Evict the row that is not the other one needed now: rows advance
		// monotonically, so the older (smaller y) goes.
		i := 0
		if rowY[1] < rowY[0] {
			i = 1
		}
		rowY[i] = y
		buf := sc.rows[i]
		iy := y - oy
		if iy < 0 || iy >= r.h {
			clear(buf)
			return buf
		}
		src := img.Pix[((r.y+iy)*img.W+r.x)*3 : ((r.y+iy)*img.W+r.x+r.w)*3]
		// Columns [lo, hi) have both taps inside the crop: no branches there.
		for c := 0; c < sc.lo; c++ {
			lerpPadded(buf, src, sc, c)
		}
		x0, x1, fx := sc.x0[sc.lo:sc.hi], sc.x1[sc.lo:sc.hi], sc.fx[sc.lo:sc.hi]
		out := buf[3*sc.lo : 3*sc.hi]
		for i := range x0 {
			a, b, f := int(x0[i]), int(x1[i]), fx[i]
			p, q := src[a:a+3:a+3], src[b:b+3:b+3]
			o := out[3*i : 3*i+3 : 3*i+3]
			t0, t1, t2 := float32(p[0]), float32(p[1]), float32(p[2])
			o[0] = t0 + (float32(q[0])-t0)*f
			o[1] = t1 + (float32(q[1])-t1)*f
			o[2] = t2 + (float32(q[2])-t2)*f
		}
		for c := sc.hi; c < n; c++ {
			lerpPadded(buf, src, sc, c)
		}
		return buf
	}
	for row := 0; row < n; row++ {
		sy := float32(row) * scale
		y0 := int(math.Floor(float64(sy)))
		y1 := min(s-1, int(math.Ceil(float64(sy))))
		fy := sy - float32(y0)
		out := dst[row*n*3 : (row+1)*n*3]
		if outside(y0-oy, r.h) && outside(y1-oy, r.h) {
			clear(out) // both source rows are padding
			continue
		}
		top := hrow(y0)
		bot := hrow(y1)
		if fy == 0 {
			// tfjs computes top + (bottom-top)*0, which is top exactly.
			copy(out, top)
			continue
		}
		top, bot = top[:len(out)], bot[:len(out)]
		for i := range out {
			t := top[i]
			out[i] = t + (bot[i]-t)*fy
		}
	}
}

// colIndex maps a crop-relative column to a byte offset in the crop's row, or -1
// for padding.
func colIndex(x int, r rect) int32 {
	if x < 0 || x >= r.w {
		return -1
	}
	return int32(3 * x)
}

func outside(y, h int) bool { return y < 0 || y >= h }

// lerpPadded is one output column of the horizontal pass where a tap may be
// padding (reads 0).
func lerpPadded(buf []float32, src []uint8, sc *resizeScratch, c int) {
	a, b, f := sc.x0[c], sc.x1[c], sc.fx[c]
	var tl0, tl1, tl2, tr0, tr1, tr2 float32
	if a >= 0 {
		tl0, tl1, tl2 = float32(src[a]), float32(src[a+1]), float32(src[a+2])
	}
	if b >= 0 {
		tr0, tr1, tr2 = float32(src[b]), float32(src[b+1]), float32(src[b+2])
	}
	o := buf[3*c : 3*c+3 : 3*c+3]
	o[0] = tl0 + (tr0-tl0)*f
	o[1] = tl1 + (tr1-tl1)*f
	o[2] = tl2 + (tr2-tl2)*f
}

// resizeScratch holds per-call buffers so repeated resizes do not allocate.
type resizeScratch struct {
	fx     []float32
	x0, x1 []int32
	lo, hi int
	rows   [2][]float32
}

func (s *resizeScratch) prepare(n int) *resizeScratch {
	if cap(s.fx) < n {
		s.fx = make([]float32, n)
		s.x0 = make([]int32, n)
		s.x1 = make([]int32, n)
		s.rows[0] = make([]float32, 3*n)
		s.rows[1] = make([]float32, 3*n)
	}
	s.fx, s.x0, s.x1 = s.fx[:n], s.x0[:n], s.x1[:n]
	s.rows[0], s.rows[1] = s.rows[0][:3*n], s.rows[1][:3*n]
	return s
}

// centredOffset is face-api's padToSquare(isCenterImage=true) for a w x h crop:
// Math.round(diff/2) zero columns/rows go after the image, the rest before.
func centredOffset(w, h int) (ox, oy int) {
	diff := w - h
	if diff < 0 {
		diff = -diff
	}
	before := diff - int(math.Floor(float64(diff)/2+0.5))
	if w < h {
		return before, 0
	}
	return 0, before
}

// DetectorInput is the exact tensor ([1, n, n, 3] NHWC, row-major) the engine
// feeds the tiny detector for img at input size n; benchmarks use it to time the
// model alone on the same data.
func DetectorInput(img *RGB, n int) []float32 {
	dst := make([]float32, n*n*3)
	var sc resizeScratch
	padResize(img, rect{0, 0, img.W, img.H}, 0, 0, n, dst, &sc)
	return dst
}
