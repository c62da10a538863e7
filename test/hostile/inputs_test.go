package hostile_test

import (
	"bytes"
	"encoding/binary"
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
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// Every input here is made in code (or read from the engine's small seed
// files); nothing big is committed.

func encPNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encJPEG(t testing.TB, img image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func seed(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "engine", "testdata", "seed", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noise is w x h of seeded grey noise.
func noise(w, h int, s uint64) *image.Gray {
	r := rand.New(rand.NewPCG(s, 99))
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	return img
}

// flatStrip is a w x h grey image with one dark pixel (PNG compresses it to a
// few KB whatever its size).
func flatStrip(t testing.TB, w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	img.Set(0, 0, color.Gray{Y: 10})
	return encPNG(t, img)
}

// pngChunk appends one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// pngClaiming is a real small PNG whose IHDR (CRC fixed up) claims w x h.
func pngClaiming(t testing.TB, w, h uint32) []byte {
	data := encPNG(t, noise(32, 32, 1))
	out := append([]byte{}, data...)
	binary.BigEndian.PutUint32(out[16:], w)
	binary.BigEndian.PutUint32(out[20:], h)
	binary.BigEndian.PutUint32(out[29:], crc32.ChecksumIEEE(out[12:29]))
	return out
}

// jpegClaiming is a real small JPEG whose SOF0 claims w x h (at most 65535).
func jpegClaiming(t testing.TB, w, h uint16) []byte {
	out := append([]byte{}, encJPEG(t, noise(32, 32, 2), 80)...)
	i := bytes.Index(out, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 in Go's JPEG")
	}
	binary.BigEndian.PutUint16(out[i+5:], h)
	binary.BigEndian.PutUint16(out[i+7:], w)
	return out
}

// pngWithText inserts a tEXt chunk of n bytes after IHDR.
func pngWithText(t testing.TB, n int) []byte {
	data := encPNG(t, noise(64, 64, 3))
	txt := append([]byte("Comment\x00"), bytes.Repeat([]byte("A"), n)...)
	out := append([]byte{}, data[:33]...) // signature + IHDR
	out = append(out, pngChunk("tEXt", txt)...)
	return append(out, data[33:]...)
}

func animatedGIF(t testing.TB, frames int) []byte {
	g := &gif.GIF{}
	for i := 0; i < frames; i++ {
		p := image.NewPaletted(image.Rect(0, 0, 32, 32), palette.Plan9)
		for k := range p.Pix {
			p.Pix[k] = uint8(i + k)
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 1)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// apng is a PNG with an acTL chunk (animation control) before IDAT.
func apng(t testing.TB) []byte {
	data := encPNG(t, noise(32, 32, 4))
	out := append([]byte{}, data[:33]...)
	out = append(out, pngChunk("acTL", []byte{0, 0, 0, 2, 0, 0, 0, 0})...)
	return append(out, data[33:]...)
}

// scanBomb repeats the first scan of a real progressive JPEG n times.
func scanBomb(t testing.TB, n int) []byte {
	data := seed(t, "progressive.jpg")
	first := bytes.Index(data, []byte{0xFF, 0xDA})
	second := first + 2 + bytes.Index(data[first+2:], []byte{0xFF, 0xDA})
	out := append([]byte{}, data[:len(data)-2]...)
	for i := 0; i < n; i++ {
		out = append(out, data[first:second]...)
	}
	return append(out, 0xFF, 0xD9)
}

// cmykJPEG: image/jpeg writes no CMYK, so this is the engine's seed (Adobe
// APP14, 4 components), as Photoshop writes for print.
func cmykJPEG(t testing.TB) []byte { return seed(t, "cmyk.jpg") }

func gray16(src *image.Gray) *image.Gray16 {
	out := image.NewGray16(src.Bounds())
	for i, v := range src.Pix {
		out.Pix[2*i], out.Pix[2*i+1] = v, v^0x5A // high byte = the photo
	}
	return out
}

// paletteTRNS is the photo as a 256-grey paletted PNG whose palette has
// alpha (PNG writes a tRNS chunk): colours are taken un-premultiplied, so the
// face is unchanged.
func paletteTRNS(t testing.TB, src *image.Gray) []byte {
	pal := make(color.Palette, 256)
	for i := range pal {
		pal[i] = color.NRGBA{uint8(i), uint8(i), uint8(i), uint8(255 - i%7)}
	}
	p := image.NewPaletted(src.Bounds(), pal)
	copy(p.Pix, src.Pix)
	data := encPNG(t, p)
	if !bytes.Contains(data, []byte("tRNS")) || !bytes.Contains(data, []byte("PLTE")) {
		t.Fatal("palette PNG has no PLTE/tRNS")
	}
	return data
}

// exifJPEG stores the upright photo transformed so that applying EXIF
// orientation o shows it upright again, and tags it with o.
func exifJPEG(t testing.TB, upright *image.Gray, o int) []byte {
	inv := map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}[o]
	stored := orient(upright, inv)
	data := encJPEG(t, stored, 95)
	tiffHdr := []byte("MM\x00\x2a\x00\x00\x00\x08")
	ifd := []byte{0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0, 0, 0, 0, 0}
	payload := append(append([]byte("Exif\x00\x00"), tiffHdr...), ifd...)
	app1 := append([]byte{0xFF, 0xE1}, binary.BigEndian.AppendUint16(nil, uint16(len(payload)+2))...)
	app1 = append(app1, payload...)
	return append(append(append([]byte{}, data[:2]...), app1...), data[2:]...)
}

// orient applies EXIF orientation o as a viewer does.
func orient(src *image.Gray, o int) *image.Gray {
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewGray(image.Rect(0, 0, dw, dh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := x, y
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			dst.Pix[dy*dw+dx] = src.Pix[y*w+x]
		}
	}
	return dst
}

// bigPhoto is a w x h face-free JPEG: smooth colour waves (a sky, a wall).
func bigPhoto(t testing.TB, w, h int) []byte {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		row := img.Y[y*img.YStride : y*img.YStride+w]
		for x := range row {
			row[x] = uint8(128 + 60*((x/97+y/89)%3-1) + (x*y)%13)
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(100+i%40), uint8(140-i%30)
	}
	return encJPEG(t, img, 60)
}

func bmpOf(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tiffOf(t testing.TB, img image.Image) []byte {
	var b bytes.Buffer
	if err := tiff.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(5, 5))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[0] = 0x42 // not a magic of anything
	return b
}
