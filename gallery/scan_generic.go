//go:build !(goexperiment.simd && amd64)

package gallery

// scan is the first pass (see match.go); this build has no SIMD path.
func scan(q *[DescriptorLen]int8, data []int8, out []int32) { scanScalar(q, data, out) }

// ScanPath names the first pass this build uses (for benchmarks' reports).
const ScanPath = "scalar"
