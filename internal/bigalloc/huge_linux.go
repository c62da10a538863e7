package bigalloc

import (
	"syscall"
	"unsafe"
)

// madvHugepage is MADV_HUGEPAGE (include/uapi/asm-generic/mman-common.h).
const madvHugepage = 14

// adviseHuge asks for huge pages on the whole 2 MiB pages inside b; a
// refusal (THP off, old kernel) leaves ordinary pages, which only costs time.
func adviseHuge(b []byte) {
	const page = 2 << 20
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (base + page - 1) &^ (page - 1)
	end := (base + uintptr(len(b))) &^ (page - 1)
	if end <= start {
		return
	}
	off := int(start - base)
	_ = syscall.Madvise(b[off:off+int(end-start)], madvHugepage)
}
