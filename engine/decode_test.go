package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func wantKind(t *testing.T, err error, kind string) {
	t.Helper()
	var ie *ImageError
	if !errors.As(err, &ie) {
		t.Fatalf("want *ImageError kind %q, got %T %v", kind, err, err)
	}
	if ie.Kind != kind {
		t.Fatalf("want kind %q, got %q (%v)", kind, ie.Kind, ie)
	}
	if ie.Error() == "" || ie.Detail == "" {
		t.Fatalf("error has no message: %#v", ie)
	}
}

func testPhoto(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x + y) % 256), 255})
		}
	}
	return img
}

func encJPEG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encPNG(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeBadInput(t *testing.T) {
	rnd := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.IntN(256))
	}
	good := encJPEG(t, testPhoto(64, 48))

	cases := []struct {
		name string
		data []byte
		lim  DecodeLimits
		kind string
	}{
		{"empty", nil, DecodeLimits{}, KindEmpty},
		{"random bytes", rnd, DecodeLimits{}, KindFormat},
		{"text", []byte("<html>not an image</html>"), DecodeLimits{}, KindFormat},
		{"jpeg with a corrupt header", append(append([]byte{}, good[:2]...), 0xFF, 0xDB, 0x00, 0x02, 0xFF, 0xD9), DecodeLimits{}, KindFormat},
		{"truncated jpeg", good[:len(good)/2], DecodeLimits{}, KindTruncated},
		{"truncated png", encPNG(t, testPhoto(64, 48))[:60], DecodeLimits{}, KindTruncated},
		{"1x1 pixel", encPNG(t, testPhoto(1, 1)), DecodeLimits{}, KindTooSmall},
		{"header claims 50000x50000", pngHeader(50000, 50000), DecodeLimits{}, KindTooManyPixels},
		{"over byte limit", good, DecodeLimits{MaxBytes: 100}, KindTooLarge},
		{"animated gif", animatedGIF(t), DecodeLimits{}, KindAnimated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(c.data, c.lim)
			if img != nil {
				t.Fatalf("got an image for bad input")
			}
			wantKind(t, err, c.kind)
		})
	}
}

// A real, huge grayscale PNG (7000x7000, compresses to a few hundred KB) is refused
// from its header before 49 MB of pixels are allocated.
func TestDecodeHugeGrayPNG(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes a 49 MP PNG")
	}
	img := image.NewGray(image.Rect(0, 0, 7000, 7000))
	data := encPNG(t, img)
	_, err := Decode(data, DecodeLimits{})
	wantKind(t, err, KindTooManyPixels)
	// The same file is fine when the limit allows it, so the refusal is the limit's.
	rgb, err := Decode(data, DecodeLimits{MaxPixels: 50_000_000})
	if err != nil || rgb.W != 7000 || rgb.H != 7000 {
		t.Fatalf("with a higher limit: %v", err)
	}
}

// pngHeader is a valid PNG signature + IHDR chunk claiming w x h, and no pixels.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func animatedGIF(t testing.TB) []byte {
	g := &gif.GIF{}
	for i := 0; i < 3; i++ {
		f := image.NewPaletted(image.Rect(0, 0, 32, 32), palette.Plan9)
		f.SetColorIndex(i, i, uint8(i+1))
		g.Image = append(g.Image, f)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeFormats(t *testing.T) {
	src := testPhoto(40, 30)
	gray := image.NewGray(image.Rect(0, 0, 40, 30))
	gray16 := image.NewGray16(image.Rect(0, 0, 40, 30))
	cmyk := image.NewCMYK(image.Rect(0, 0, 40, 30))
	nrgba64 := image.NewNRGBA64(image.Rect(0, 0, 40, 30))
	alpha := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			gray.SetGray(x, y, color.Gray{uint8(x * 6)})
			gray16.SetGray16(x, y, color.Gray16{uint16(x*6) << 8})
			cmyk.SetCMYK(x, y, color.CMYK{0, 255, 255, 0}) // pure red
			nrgba64.SetNRGBA64(x, y, color.NRGBA64{0xFFFF, 0x8000, 0, 0x8000})
			alpha.SetNRGBA(x, y, color.NRGBA{10, 200, 30, 77})
		}
	}
	single := &gif.GIF{Image: []*image.Paletted{image.NewPaletted(image.Rect(0, 0, 40, 30), palette.Plan9)}, Delay: []int{0}}
	single.Image[0].SetColorIndex(0, 0, 1)
	var gb bytes.Buffer
	if err := gif.EncodeAll(&gb, single); err != nil {
		t.Fatal(err)
	}
	grayJPEG := encJPEG(t, gray)

	check := func(name string, data []byte, x, y int, want [3]uint8, tol int) {
		t.Run(name, func(t *testing.T) {
			rgb, err := Decode(data, DecodeLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if rgb.W != 40 || rgb.H != 30 || len(rgb.Pix) != 40*30*3 {
				t.Fatalf("got %dx%d (%d bytes)", rgb.W, rgb.H, len(rgb.Pix))
			}
			i := 3 * (y*40 + x)
			for c := 0; c < 3; c++ {
				if d := int(rgb.Pix[i+c]) - int(want[c]); d > tol || d < -tol {
					t.Fatalf("pixel (%d,%d) = %v, want %v", x, y, rgb.Pix[i:i+3], want)
				}
			}
		})
	}
	check("png rgba", encPNG(t, src), 20, 10, [3]uint8{127, 85, 30}, 0)
	check("jpeg ycbcr", encJPEG(t, src), 20, 10, [3]uint8{127, 85, 30}, 12)
	check("png gray", encPNG(t, gray), 10, 3, [3]uint8{60, 60, 60}, 0)
	check("jpeg gray", grayJPEG, 10, 3, [3]uint8{60, 60, 60}, 4)
	check("png gray16", encPNG(t, gray16), 10, 3, [3]uint8{60, 60, 60}, 0)
	check("cmyk", encJPEG(t, cmyk), 5, 5, [3]uint8{255, 0, 0}, 8)
	check("png 16-bit with alpha", encPNG(t, nrgba64), 5, 5, [3]uint8{255, 128, 0}, 1)
	check("png alpha", encPNG(t, alpha), 5, 5, [3]uint8{10, 200, 30}, 2)
	check("gif single frame", gb.Bytes(), 0, 0, [3]uint8{0, 0, 0x44}, 0)
}

// withOrientation inserts an EXIF APP1 segment carrying orientation o after SOI.
func withOrientation(jpg []byte, o uint16) []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00")
	binary.BigEndian.PutUint16(tiff[18:], o)
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestDecodeEXIFOrientation(t *testing.T) {
	// A 64x32 image, left half white, right half black.
	img := image.NewGray(image.Rect(0, 0, 64, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			img.SetGray(x, y, color.Gray{255})
		}
	}
	base := encJPEG(t, img)
	for _, c := range []struct {
		o          uint16
		w, h       int
		whiteX, wy int // a pixel that must be white after orientation
		blackX, by int
	}{
		{1, 64, 32, 5, 5, 60, 5},
		{3, 64, 32, 60, 5, 5, 5},   // rotated 180: white on the right
		{6, 32, 64, 5, 5, 5, 60},   // rotated 90 CW: white on top
		{8, 32, 64, 5, 60, 5, 5},   // rotated 90 CCW: white at the bottom
		{2, 64, 32, 60, 20, 5, 20}, // mirrored
	} {
		rgb, err := Decode(withOrientation(base, c.o), DecodeLimits{})
		if err != nil {
			t.Fatal(err)
		}
		if rgb.W != c.w || rgb.H != c.h {
			t.Fatalf("orientation %d: got %dx%d want %dx%d", c.o, rgb.W, rgb.H, c.w, c.h)
		}
		at := func(x, y int) uint8 { return rgb.Pix[3*(y*rgb.W+x)] }
		if at(c.whiteX, c.wy) < 200 || at(c.blackX, c.by) > 50 {
			t.Fatalf("orientation %d: white px %d, black px %d", c.o, at(c.whiteX, c.wy), at(c.blackX, c.by))
		}
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder: it must return an image or an
// *ImageError, never panic, hang or allocate past its limits. The seeds in
// testdata/fuzz/FuzzDecode run in every normal test run.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/seed/*")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := DecodeLimits{MaxBytes: 1 << 20, MaxPixels: 1 << 20}
		img, err := Decode(data, lim)
		if err != nil {
			var ie *ImageError
			if !errors.As(err, &ie) {
				t.Fatalf("error is not an *ImageError: %T %v", err, err)
			}
			return
		}
		if img.W*img.H > 1<<20 || len(img.Pix) != img.W*img.H*3 || img.W < DefaultMinSide || img.H < DefaultMinSide {
			t.Fatalf("bad image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
		}
	})
}

// With libjpeg-turbo installed, JPEGs decode through it; its pixels must agree
// with image/jpeg's (they differ only in chroma upsampling and IDCT rounding).
func TestTurboJPEGMatchesGo(t *testing.T) {
	if !TurboJPEGAvailable() {
		t.Skip("libturbojpeg.so.0 not installed: JPEGs use image/jpeg only")
	}
	for _, data := range [][]byte{encJPEG(t, testPhoto(333, 217)), withOrientation(encJPEG(t, testPhoto(64, 48)), 6)} {
		a, err := Decode(data, DecodeLimits{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Decode(data, DecodeLimits{PureGo: true})
		if err != nil {
			t.Fatal(err)
		}
		if a.W != b.W || a.H != b.H {
			t.Fatalf("sizes differ: %dx%d vs %dx%d", a.W, a.H, b.W, b.H)
		}
		sum, worst := 0, 0
		for i := range a.Pix {
			d := int(a.Pix[i]) - int(b.Pix[i])
			if d < 0 {
				d = -d
			}
			sum += d
			worst = max(worst, d)
		}
		// Sharp chroma edges (the test pattern wraps) may differ a lot at single
		// pixels; on average the two decoders must agree closely.
		if mean := float64(sum) / float64(len(a.Pix)); mean > 2 {
			t.Fatalf("turbo vs Go: mean |diff| %.2f, worst %d", mean, worst)
		}
	}
	// Both paths refuse a truncated file the same way.
	good := encJPEG(t, testPhoto(64, 48))
	_, err := Decode(good[:len(good)-200], DecodeLimits{})
	wantKind(t, err, KindTruncated)
}

func TestDecodeWebP(t *testing.T) {
	for _, name := range []string{"blue-purple-pink.lossy.webp", "gopher-doc.with-alpha.lossless.webp"} {
		data, err := os.ReadFile(filepath.Join("testdata/seed", name))
		if err != nil {
			t.Fatal(err)
		}
		rgb, err := Decode(data, DecodeLimits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nonzero := 0
		for _, v := range rgb.Pix {
			if v != 0 {
				nonzero++
			}
		}
		// The gopher is black line art on transparency: its colour channels are 0.
		if rgb.W < 16 || rgb.H < 16 || (nonzero == 0) != strings.Contains(name, "gopher") {
			t.Fatalf("%s: %dx%d, %d non-zero bytes", name, rgb.W, rgb.H, nonzero)
		}
	}
	// An extended (VP8X) header with the animation flag is refused up front.
	anim := []byte("RIFF\x1a\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x0f\x00\x00\x0f\x00\x00")
	_, err := Decode(anim, DecodeLimits{})
	wantKind(t, err, KindAnimated)
}
