//go:build goexperiment.simd && amd64

package gallery

import "simd/archsimd"

// ScanPath names the first pass this build uses (for benchmarks' reports).
const ScanPath = "avx2 when the CPU has it, else scalar"

// scan is the first pass (see match.go): with AVX2, each row's 128 bytes are
// widened to 16-bit lanes, the probe subtracted and VPMADDWD squares and pairs
// them into 32-bit sums: about 20x the scalar loop. Exactly the scalar loop's
// integers (no rounding anywhere), which TestScanPathsAgree checks.
func scan(q *[DescriptorLen]int8, data []int8, out []int32) {
	if !archsimd.X86.AVX2() {
		scanScalar(q, data, out)
		return
	}
	var q16 [DescriptorLen]int16
	for i, v := range q {
		q16[i] = int16(v)
	}
	q0 := archsimd.LoadInt16x16Slice(q16[0:16])
	q1 := archsimd.LoadInt16x16Slice(q16[16:32])
	q2 := archsimd.LoadInt16x16Slice(q16[32:48])
	q3 := archsimd.LoadInt16x16Slice(q16[48:64])
	q4 := archsimd.LoadInt16x16Slice(q16[64:80])
	q5 := archsimd.LoadInt16x16Slice(q16[80:96])
	q6 := archsimd.LoadInt16x16Slice(q16[96:112])
	q7 := archsimd.LoadInt16x16Slice(q16[112:128])
	var t [8]int32
	for r := range out {
		x := data[r*DescriptorLen : (r+1)*DescriptorLen : (r+1)*DescriptorLen]
		a := archsimd.LoadInt8x16Slice(x[0:16]).ExtendToInt16().Sub(q0)
		b := archsimd.LoadInt8x16Slice(x[16:32]).ExtendToInt16().Sub(q1)
		acc := a.DotProductPairs(a).Add(b.DotProductPairs(b))
		a = archsimd.LoadInt8x16Slice(x[32:48]).ExtendToInt16().Sub(q2)
		b = archsimd.LoadInt8x16Slice(x[48:64]).ExtendToInt16().Sub(q3)
		acc = acc.Add(a.DotProductPairs(a)).Add(b.DotProductPairs(b))
		a = archsimd.LoadInt8x16Slice(x[64:80]).ExtendToInt16().Sub(q4)
		b = archsimd.LoadInt8x16Slice(x[80:96]).ExtendToInt16().Sub(q5)
		acc = acc.Add(a.DotProductPairs(a)).Add(b.DotProductPairs(b))
		a = archsimd.LoadInt8x16Slice(x[96:112]).ExtendToInt16().Sub(q6)
		b = archsimd.LoadInt8x16Slice(x[112:128]).ExtendToInt16().Sub(q7)
		acc = acc.Add(a.DotProductPairs(a)).Add(b.DotProductPairs(b))
		acc.StoreSlice(t[:])
		out[r] = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7]
	}
}
