// Package bigalloc allocates large slices that are about to be filled at
// once (a gallery snapshot read from the store, the gallery's columns).
//
// Why: a fresh large allocation is faulted in page by page as it is first
// written. On the virtual machines this service runs on, a 4 KiB fault costs
// around 15 µs, so reading a 270 MB snapshot spent over a second in faults
// (measured: os.ReadFile of it 1.1-1.6 s, `cat` 0.09 s). Asking Linux for
// transparent huge pages on the region (madvise MADV_HUGEPAGE, honoured when
// the system's THP mode is "madvise" or "always") makes that 130 faults of
// 2 MiB: the same read took 0.09-0.7 s. Elsewhere, and for small slices, it
// is a plain make.
package bigalloc

import "unsafe"

// Threshold is the smallest allocation, in bytes, worth the hint.
const Threshold = 4 << 20

// Slice returns make([]T, n), hinted to be backed by huge pages when large.
func Slice[T any](n int) []T {
	s := make([]T, n)
	var zero T
	if size := uintptr(n) * unsafe.Sizeof(zero); n > 0 && size >= Threshold {
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), size))
	}
	return s
}
