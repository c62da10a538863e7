package gallery

import (
	"container/heap"
	"math"
	"sort"

	"github.com/facefleet/facefleet/engine"
)

// Matching is exact and runs in two passes.
//
// Every row keeps an 8-bit copy of its descriptor, q = round(d / quantStep)
// clamped to ±127, and the norm of what rounding lost, qerr = |d - q·quantStep|.
// The probe is rounded the same way (its loss eq). By the triangle inequality
//
//	|p - d| ≥ quantStep·|qp - qd| - eq - qerr   and   |p - d| ≤ quantStep·|qp - qd| + eq + qerr,
//
// so the first pass, integer squared distances of the 8-bit copies (128 bytes a
// row: 64 MB for 500,000 faces, one streaming pass, 16 rows a step with SIMD
// where the CPU has it), bounds every row from both sides. The smallest upper
// bound (the k-th smallest per subject, for k neighbours) caps the answer; the
// rows whose lower bound does not exceed it are measured in full float32, the
// same arithmetic as Distance, and decide. No other row can be nearer, so the
// answer is the brute-force answer, bit for bit.
//
// quantStep is 1/200: descriptors from face-api and dlib stay well inside ±0.5,
// so ±127 steps (±0.635) cover them and the rounding loss of a whole row is at
// most maxQuantErr (0.028), small against the distances that matter (0.4-0.9).
// A row with a value outside the range (a hand-made gallery) has a larger loss;
// such rows are listed in rows.wide and always measured in full, so they cost
// time, never correctness.
const (
	quantStep   = 1.0 / 200
	maxQuantErr = 0.0282842712474619 // sqrt(128) * quantStep / 2
)

// quantize writes d's 8-bit copy into dst and returns the rounding loss
// (rounding half away from zero, clamped to ±127). Branch-free, two values a
// step: 3x the branching loop on real descriptors, whose signs are random
// (TestQuantizeMatchesReference keeps it equal to the plain definition).
func quantize(dst []int8, d []float32) float32 {
	dst, d = dst[:DescriptorLen:DescriptorLen], d[:DescriptorLen:DescriptorLen]
	var l0, l1 float64
	for i := 0; i < DescriptorLen; i += 2 {
		x0 := min(max(float64(d[i])*(1/quantStep), -127), 127)
		x1 := min(max(float64(d[i+1])*(1/quantStep), -127), 127)
		r0 := math.Trunc(x0 + math.Copysign(0.5, x0))
		r1 := math.Trunc(x1 + math.Copysign(0.5, x1))
		dst[i], dst[i+1] = int8(r0), int8(r1)
		e0, e1 := float64(d[i])-r0*quantStep, float64(d[i+1])-r1*quantStep
		l0 += e0 * e0
		l1 += e1 * e1
	}
	return float32(math.Sqrt(l0 + l1))
}

// Match returns the subject with the descriptor nearest to d and that distance.
// name is engine.Unknown when the gallery is empty or the distance exceeds
// threshold (threshold <= 0 means DefaultThreshold).
func (g *Gallery) Match(d []float32, threshold float64) (name string, distance float64) {
	if threshold <= 0 {
		threshold = DefaultThreshold
	}
	name, distance = g.Nearest(d)
	if name == "" || distance > threshold {
		return engine.Unknown, distance
	}
	return name, distance
}

// Nearest returns the nearest subject whatever the distance ("" and +Inf when
// the gallery is empty or d has the wrong length). Ties go to the smaller name so
// answers do not depend on the order of enrollment.
func (g *Gallery) Nearest(d []float32) (name string, distance float64) {
	n := g.NearestK(d, 1)
	if len(n) == 0 {
		return "", math.Inf(1)
	}
	return n[0].Subject, n[0].Distance
}

// Neighbour is a subject and its nearest face's distance.
type Neighbour struct {
	Subject  string
	Distance float64
}

// NearestK returns up to k subjects by their nearest face's distance to d,
// nearest first (ties by name), whatever the distance.
func (g *Gallery) NearestK(d []float32, k int) []Neighbour {
	if k <= 0 || checkDescriptor(d) != nil {
		return nil
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := g.r.len()
	if n == 0 {
		return nil
	}
	var qd [DescriptorLen]int8
	eq := float64(quantize(qd[:], d))
	sc := g.scratch(n)
	defer g.pool.Put(sc)
	dist := sc.d[:n]
	scan(&qd, g.r.q[:n*DescriptorLen], dist)

	// exact holds the full-precision squared distance of each measured subject.
	exact := map[int32]float32{}
	measure := func(row int) {
		sq := sqDist(d, g.r.descriptor(int32(row)))
		if o := g.r.owner[row]; !hasLess(exact, o, sq) {
			exact[o] = sq
		}
	}
	qerr := g.r.qerr[:n]

	// bound is an upper bound on the k-th nearest subject's distance.
	bound := math.Inf(1)
	if k == 1 {
		best, bestRow := int32(math.MaxInt32), -1
		for row, v := range dist {
			if v < best {
				best, bestRow = v, row
			}
		}
		bound = quantStep*math.Sqrt(float64(best)) + eq + float64(qerr[bestRow])
	} else {
		bound = g.kthUpper(dist, eq, k, sc)
	}
	// Slack for float32 rounding in the full-precision distances.
	bound = bound*(1+1e-5) + 1e-6
	// Integer pre-filter for rows whose loss is at most maxQuantErr:
	// quantStep·sqrt(D) - eq - maxQuantErr <= bound. Wide rows (larger loss)
	// skip it and meet only their own lower bound.
	lim := (bound + eq + maxQuantErr) / quantStep
	var t int32 = math.MaxInt32
	if lim*lim < math.MaxInt32 {
		t = int32(lim*lim) + 1
	}
	for row, v := range dist {
		if v > t && qerr[row] <= maxQuantErr {
			continue
		}
		if quantStep*math.Sqrt(float64(v))-eq-float64(qerr[row]) > bound {
			continue
		}
		measure(row)
	}
	out := make([]Neighbour, 0, len(exact))
	for o, sq := range exact {
		out = append(out, Neighbour{Subject: g.subs[o].name, Distance: math.Sqrt(float64(sq))})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Distance != out[j].Distance {
			return out[i].Distance < out[j].Distance
		}
		return out[i].Subject < out[j].Subject
	})
	return out[:min(k, len(out))]
}

// NearestExhaustive is Nearest by measuring every face in full: the
// reference the two-pass search is checked against, and the baseline
// benchmarks compare it with.
func (g *Gallery) NearestExhaustive(d []float32) (name string, distance float64) {
	if checkDescriptor(d) != nil {
		return "", math.Inf(1)
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	best, bestSq := "", float32(math.Inf(1))
	for row := range g.r.len() {
		sq := sqDist(d, g.r.descriptor(int32(row)))
		if n := g.subs[g.r.owner[row]].name; sq < bestSq || sq == bestSq && n < best {
			best, bestSq = n, sq
		}
	}
	if best == "" {
		return "", math.Inf(1)
	}
	return best, math.Sqrt(float64(bestSq))
}

func hasLess(m map[int32]float32, o int32, sq float32) bool {
	v, ok := m[o]
	return ok && v <= sq
}

// kthUpper bounds the k-th nearest subject's distance from above: the k-th
// smallest, over subjects, of their best row's upper bound (rows with a loss
// above maxQuantErr are left out of it; they are measured anyway).
func (g *Gallery) kthUpper(dist []int32, eq float64, k int, sc *scratch) float64 {
	best := sc.subjects(len(g.subs))
	for row, v := range dist {
		if o := g.r.owner[row]; v < best[o] && g.r.qerr[row] <= maxQuantErr {
			best[o] = v
		}
	}
	h := &maxHeap{}
	for _, v := range best {
		if v == math.MaxInt32 {
			continue
		}
		if h.Len() < k {
			heap.Push(h, v)
		} else if v < (*h)[0] {
			(*h)[0] = v
			heap.Fix(h, 0)
		}
	}
	if h.Len() < k {
		return math.Inf(1)
	}
	return quantStep*math.Sqrt(float64((*h)[0])) + eq + maxQuantErr
}

type maxHeap []int32

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(int32)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// scratch is one search's working memory, pooled per gallery so a search
// allocates nothing proportional to the gallery.
type scratch struct {
	d    []int32
	subj []int32
}

func (g *Gallery) scratch(n int) *scratch {
	sc, _ := g.pool.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	if cap(sc.d) < n {
		sc.d = make([]int32, n)
	}
	return sc
}

// subjects returns a per-subject slice filled with MaxInt32.
func (sc *scratch) subjects(n int) []int32 {
	if cap(sc.subj) < n {
		sc.subj = make([]int32, n)
	}
	s := sc.subj[:n]
	for i := range s {
		s[i] = math.MaxInt32
	}
	return s
}

// scanScalar is the portable first pass: out[r] = Σ (q - row r)².
func scanScalar(q *[DescriptorLen]int8, data []int8, out []int32) {
	for r := range out {
		x := data[r*DescriptorLen : (r+1)*DescriptorLen : (r+1)*DescriptorLen]
		var s0, s1, s2, s3 int32
		for i := 0; i < DescriptorLen; i += 4 {
			d0 := int32(q[i]) - int32(x[i])
			d1 := int32(q[i+1]) - int32(x[i+1])
			d2 := int32(q[i+2]) - int32(x[i+2])
			d3 := int32(q[i+3]) - int32(x[i+3])
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		out[r] = s0 + s1 + s2 + s3
	}
}

// sqDist32 is the squared distance of two 32-value blocks (four accumulators,
// combined in a fixed order, so every caller gets the same bits).
func sqDist32(a, b []float32) float32 {
	a, b = a[:32:32], b[:32:32]
	var s0, s1, s2, s3 float32
	for i := 0; i < 32; i += 4 {
		x0, x1, x2, x3 := a[i]-b[i], a[i+1]-b[i+1], a[i+2]-b[i+2], a[i+3]-b[i+3]
		s0 += x0 * x0
		s1 += x1 * x1
		s2 += x2 * x2
		s3 += x3 * x3
	}
	return (s0 + s1) + (s2 + s3)
}

// sqDist is the squared distance of two descriptors, summed block by block.
func sqDist(a, b []float32) float32 {
	var s float32
	for c := 0; c < DescriptorLen; c += 32 {
		s += sqDist32(a[c:c+32], b[c:c+32])
	}
	return s
}

// Distance is the Euclidean distance between two descriptors of equal length.
func Distance(a, b []float32) float64 {
	if len(a) == DescriptorLen && len(b) == DescriptorLen {
		return math.Sqrt(float64(sqDist(a, b))) // the same bits as matching
	}
	var s float32
	for i := range a {
		x := a[i] - b[i]
		s += x * x
	}
	return math.Sqrt(float64(s))
}
