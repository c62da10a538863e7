package engine

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

// TurboJPEG's API (turbojpeg.h, libjpeg-turbo >= 2.0), loaded with dlopen so
// that the library is optional: without it JPEGs are decoded by image/jpeg.
typedef void *tjhandle;
typedef struct {
	void *lib;
	tjhandle (*init)(void);
	int (*header)(tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *);
	int (*decompress)(tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int);
	int (*destroy)(tjhandle);
} tj_api;

static int tj_load(tj_api *a, const char *name) {
	a->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!a->lib) return -1;
	a->init = (tjhandle (*)(void))dlsym(a->lib, "tjInitDecompress");
	a->header = (int (*)(tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *))dlsym(a->lib, "tjDecompressHeader3");
	a->decompress = (int (*)(tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int))dlsym(a->lib, "tjDecompress2");
	a->destroy = (int (*)(tjhandle))dlsym(a->lib, "tjDestroy");
	if (!a->init || !a->header || !a->decompress || !a->destroy) return -2;
	return 0;
}

#define TJPF_RGB 0
#define TJCS_CMYK 3
#define TJCS_YCCK 4
#define TJFLAG_STOPONWARNING 8192
#define TJFLAG_LIMITSCANS 32768

// tj_decode decodes an RGB image of exactly w x h into dst (w*h*3 bytes).
// It returns 0 on success and a negative number when the caller should fall
// back (any error or warning, another size, a CMYK/YCCK image).
static int tj_decode(tj_api *a, const unsigned char *buf, unsigned long n, unsigned char *dst, int w, int h) {
	tjhandle t = a->init();
	if (!t) return -1;
	int jw = 0, jh = 0, sub = 0, cs = 0;
	int r = a->header(t, buf, n, &jw, &jh, &sub, &cs);
	if (r == 0 && (jw != w || jh != h)) r = -2;
	if (r == 0 && (cs == TJCS_CMYK || cs == TJCS_YCCK)) r = -3;
	if (r == 0) r = a->decompress(t, buf, n, dst, w, 0, h, TJPF_RGB, TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS);
	a->destroy(t);
	return r;
}
*/
import "C"

import (
	"sync"
	"unsafe"
)

// turboAPI is loaded once per process (dlopen state is process-wide anyway) and
// never changes afterwards; nil when libturbojpeg.so.0 is not installed.
var turboAPI = sync.OnceValue(func() *C.tj_api {
	a := new(C.tj_api)
	name := C.CString("libturbojpeg.so.0")
	defer C.free(unsafe.Pointer(name))
	if C.tj_load(a, name) != 0 {
		return nil
	}
	return a
})

// TurboJPEGAvailable reports whether JPEGs are decoded with libjpeg-turbo.
func TurboJPEGAvailable() bool { return turboAPI() != nil }

// decodeJPEGTurbo decodes a w x h JPEG with libjpeg-turbo. ok is false when the
// library is missing or declines the file; the caller then uses image/jpeg,
// which also names the error precisely.
// The pixels go into buf when it is large enough (no allocation, no zeroing).
func decodeJPEGTurbo(data []byte, w, h int, buf []uint8) (*RGB, bool) {
	a := turboAPI()
	if a == nil || len(data) == 0 {
		return nil, false
	}
	pix := buf[:0]
	if cap(pix) < w*h*3 {
		pix = make([]uint8, w*h*3)
	}
	out := &RGB{W: w, H: h, Pix: pix[:w*h*3]}
	r := C.tj_decode(a, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&out.Pix[0])), C.int(w), C.int(h))
	if r != 0 {
		return nil, false
	}
	return out, true
}
