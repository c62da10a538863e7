package gallery

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// littleEndian reports whether float32s are stored in the binary format's byte
// order, so whole columns can be copied instead of converted value by value.
func littleEndian() bool {
	var x uint16 = 1
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// appendFloats appends vs in little-endian order.
func appendFloats(b []byte, vs []float32) []byte {
	if len(vs) == 0 {
		return b
	}
	if littleEndian() {
		return append(b, unsafe.Slice((*byte)(unsafe.Pointer(&vs[0])), 4*len(vs))...)
	}
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// readFloats fills dst from little-endian raw (len(raw) == 4*len(dst)).
func readFloats(dst []float32, raw []byte) {
	if len(dst) == 0 {
		return
	}
	if littleEndian() {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), raw)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
}

// eachRowRange runs f over [0, n) split into one range per CPU (loading half a
// million faces is otherwise bound by one core).
func eachRowRange(n int, f func(lo, hi int)) {
	parts := min(runtime.GOMAXPROCS(0), max(1, n/4096))
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// floatsIn returns raw's float32s in place when the caller owns raw and it can
// be read as float32s directly (little-endian, 4-byte aligned); nil when it
// must be copied. The slice's capacity ends with raw, so an append moves it.
func floatsIn(raw []byte, owned bool) []float32 {
	if !owned || len(raw) == 0 || !littleEndian() || uintptr(unsafe.Pointer(&raw[0]))%4 != 0 {
		return nil
	}
	n := len(raw) / 4
	return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n)[:n:n]
}
