package bigalloc

import "syscall"

// madvHugepage is MADV_HUGEPAGE (include/uapi/asm-generic/mman-common.h).
const madvHugepage = 14

// adviseHuge asks for huge pages on the whole 2 MiB pages inside b; a
// refusal (THP off, old kernel) leaves ordinary pages, which only costs time.
func adviseHuge(b []byte) {
	const page = 2 << 20
	start := (uintptrOf(b) + page - 1) &^ (page - 1)
	end := (uintptrOf(b) + uintptr(len(b))) &^ (page - 1)
	if end <= start {
		return
	}
	off := int(start - uintptrOf(b))
	_ = syscall.Madvise(b[off:off+int(end-start)], madvHugepage)
}
