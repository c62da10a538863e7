package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"strings"

	"github.com/facefleet/facefleet/engine/imagefmt"
)

// Image kinds reported in ImageError.Kind.
const (
	KindEmpty         = "empty"
	KindFormat        = "format"
	KindTruncated     = "truncated"
	KindTooLarge      = "too-large"
	KindTooManyPixels = "too-many-pixels"
	KindTooSmall      = "too-small"
	KindAnimated      = "animated"
	KindTooManyScans  = "too-many-scans"
)

// Default decode limits; Options can change each of them.
const (
	DefaultMaxBytes  = 20 << 20   // 20 MiB of encoded input
	DefaultMaxPixels = 40_000_000 // 40 MP: 120 MB of RGB, bounded before decoding
	DefaultMinSide   = 16         // smaller images cannot hold a recognisable face
	// DefaultMaxScans bounds a JPEG's scans (SOS markers). Every scan is a
	// decoder pass over the whole image; encoders write 1-3 (baseline) or
	// 6-12 (progressive), libjpeg-turbo gives up beyond 500, and Go's
	// image/jpeg has no limit at all: without one, a small progressive JPEG
	// of thousands of scans costs minutes of CPU.
	DefaultMaxScans = 100
)

// DecodeLimits bound what Decode accepts. Zero fields take the defaults above.
type DecodeLimits struct {
	MaxBytes  int64
	MaxPixels int64
	MinSide   int
	MaxScans  int // most scans (SOS markers) in a JPEG, counted before any decoder runs
	// PureGo decodes JPEG with image/jpeg even when libjpeg-turbo
	// (libturbojpeg.so.0) is installed; by default it is used when present,
	// being 3-5x faster.
	PureGo bool
}

func (l DecodeLimits) withDefaults() DecodeLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MinSide <= 0 {
		l.MinSide = DefaultMinSide
	}
	if l.MaxScans <= 0 {
		l.MaxScans = DefaultMaxScans
	}
	return l
}

// RGB is a decoded, upright image: W*H pixels of 3 bytes (R, G, B), row-major.
type RGB struct {
	W, H int
	Pix  []uint8
}

// Decode turns JPEG, PNG, GIF (single frame), WebP or BMP bytes (the formats of
// package imagefmt, recognised by their magic bytes) into an upright RGB image.
// JPEGs go through libjpeg-turbo when libturbojpeg.so.0 is installed (loaded at
// run time; image/jpeg otherwise or when it declines a file). Every failure the
// input causes is an *ImageError. Pixel and scan limits are checked from the
// headers before any pixel is decoded, by either decoder, so a small file that
// claims a huge size or holds thousands of scans costs nothing.
func Decode(data []byte, lim DecodeLimits) (*RGB, error) {
	return decode(data, lim, nil)
}

// decode is Decode that may decode into buf (a JPEG through libjpeg-turbo,
// not rotated by EXIF): the result's Pix then aliases buf.
func decode(data []byte, lim DecodeLimits, buf []uint8) (*RGB, error) {
	lim = lim.withDefaults()
	if len(data) == 0 {
		return nil, &ImageError{Kind: KindEmpty, Detail: "the body is empty; send a " + imagefmt.List() + " photo"}
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, &ImageError{Kind: KindTooLarge, Detail: fmt.Sprintf("%d bytes is over the limit of %d bytes", len(data), lim.MaxBytes)}
	}
	f, ok := imagefmt.Sniff(data)
	if !ok {
		return nil, &ImageError{Kind: KindFormat, Detail: "not a " + imagefmt.List() + " image (unrecognised signature)"}
	}
	format := f.ID
	if err := checkAnimated(format, data); err != nil {
		return nil, err
	}
	cfg, err := decodeConfig(format, data)
	if err != nil {
		return nil, classify(format, "reading the header", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, &ImageError{Kind: KindFormat, Detail: fmt.Sprintf("%s header has no pixels (%dx%d)", format, cfg.Width, cfg.Height)}
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > lim.MaxPixels {
		return nil, &ImageError{Kind: KindTooManyPixels, Detail: fmt.Sprintf("%dx%d is %d pixels, over the limit of %d", cfg.Width, cfg.Height, px, lim.MaxPixels)}
	}
	if cfg.Width < lim.MinSide || cfg.Height < lim.MinSide {
		return nil, &ImageError{Kind: KindTooSmall, Detail: fmt.Sprintf("%dx%d is smaller than %dx%d pixels", cfg.Width, cfg.Height, lim.MinSide, lim.MinSide)}
	}
	if format == "jpeg" {
		// Before either decoder: the image/jpeg fallback has no scan limit.
		if n := imagefmt.JPEGScans(data); n > lim.MaxScans {
			return nil, &ImageError{Kind: KindTooManyScans, Detail: fmt.Sprintf("JPEG has %d scans, over the limit of %d (a progressive JPEG needs about 10; re-save it)", n, lim.MaxScans)}
		}
	}
	if format == "bmp" {
		if short := imagefmt.BMPShortBy(data); short > 0 {
			return nil, &ImageError{Kind: KindTruncated, Detail: fmt.Sprintf("bmp data ends early (%d bytes short of its %dx%d pixels): the upload is incomplete", short, cfg.Width, cfg.Height)}
		}
	}
	if format == "jpeg" && !lim.PureGo {
		if rgb, ok := decodeJPEGTurbo(data, cfg.Width, cfg.Height, buf); ok {
			return orient(rgb, jpegOrientation(data)), nil
		}
	}
	img, err := decodeImage(format, data)
	if err != nil {
		return nil, classify(format, "decoding", err)
	}
	b := img.Bounds()
	if b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, &ImageError{Kind: KindFormat, Detail: fmt.Sprintf("%s decoded to %dx%d but its header says %dx%d", format, b.Dx(), b.Dy(), cfg.Width, cfg.Height)}
	}
	rgb := toRGB(img)
	if format == "jpeg" {
		rgb = orient(rgb, jpegOrientation(data))
	}
	return rgb, nil
}

func decodeConfig(format string, data []byte) (image.Config, error) {
	f, _ := imagefmt.Sniff(data)
	return imagefmt.DecodeConfig(f, data)
}

func decodeImage(format string, data []byte) (img image.Image, err error) {
	// The standard decoders do not panic on bad input as far as we know; this is a
	// guard so that one hostile upload can never take a worker down.
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("decoder panic: %v", p)
		}
	}()
	f, _ := imagefmt.Sniff(data)
	return imagefmt.Decode(f, data)
}

func classify(format, stage string, err error) error {
	kind := KindFormat
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "unexpected EOF") ||
		strings.Contains(err.Error(), "not enough pixel data") ||
		strings.Contains(err.Error(), "short Huffman data") {
		kind = KindTruncated
	}
	detail := fmt.Sprintf("%s: %s failed: %v", format, stage, err)
	if kind == KindTruncated {
		detail = fmt.Sprintf("%s data ends early (%s): the upload is incomplete", format, stage)
	}
	return &ImageError{Kind: kind, Detail: detail, Err: err}
}

// checkAnimated rejects multi-frame images without decoding their frames: the
// service answers for one photo, and a GIF of many frames could decode to far more
// pixels than its header's single-frame size suggests.
func checkAnimated(format string, data []byte) error {
	switch format {
	case "gif":
		n, err := gifFrames(data, 2)
		if err != nil {
			return err
		}
		if n > 1 {
			return &ImageError{Kind: KindAnimated, Detail: "animated GIF (more than one frame); send a single photo"}
		}
	case "png":
		// APNG puts an acTL chunk before the first IDAT.
		for p := 8; p+8 <= len(data); {
			n := int(binary.BigEndian.Uint32(data[p:]))
			typ := string(data[p+4 : p+8])
			if typ == "acTL" {
				return &ImageError{Kind: KindAnimated, Detail: "animated PNG (APNG); send a single photo"}
			}
			if typ == "IDAT" || n < 0 || n > len(data) {
				break
			}
			p += 12 + n
		}
	case "webp":
		// Extended WebP: VP8X chunk, flags byte bit 1 = animation.
		if len(data) >= 21 && string(data[12:16]) == "VP8X" && data[20]&0x02 != 0 {
			return &ImageError{Kind: KindAnimated, Detail: "animated WebP; send a single photo"}
		}
	}
	return nil
}

// gifFrames counts image descriptors in a GIF (stopping at limit) by walking its
// block structure.
func gifFrames(data []byte, limit int) (int, error) {
	trunc := &ImageError{Kind: KindTruncated, Detail: "gif data ends early: the upload is incomplete"}
	if len(data) < 13 {
		return 0, trunc
	}
	p := 13
	if data[10]&0x80 != 0 {
		p += 3 << (int(data[10]&7) + 1)
	}
	skipSubBlocks := func() bool {
		for p < len(data) {
			n := int(data[p])
			p++
			if n == 0 {
				return true
			}
			p += n
		}
		return false
	}
	frames := 0
	for p < len(data) {
		switch data[p] {
		case 0x21: // extension: label, then sub-blocks
			p += 2
			if !skipSubBlocks() {
				return frames, trunc
			}
		case 0x2C: // image descriptor
			frames++
			if frames >= limit {
				return frames, nil
			}
			if p+10 > len(data) {
				return frames, trunc
			}
			flags := data[p+9]
			p += 10
			if flags&0x80 != 0 {
				p += 3 << (int(flags&7) + 1)
			}
			p++ // LZW minimum code size
			if !skipSubBlocks() {
				return frames, trunc
			}
		case 0x3B:
			return frames, nil
		default:
			return frames, &ImageError{Kind: KindFormat, Detail: fmt.Sprintf("gif: unknown block 0x%02x", data[p])}
		}
	}
	return frames, trunc
}

// toRGB converts any decoded image to packed RGB. Alpha is dropped (the colour
// channels are taken un-premultiplied, as a browser's getImageData gives them);
// 16-bit channels keep their high byte; CMYK and grayscale are converted.
func toRGB(img image.Image) *RGB {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	pix := out.Pix
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToRGB(m, pix)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := pix[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			o := pix[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			o := pix[y*w*3 : (y+1)*w*3]
			for x := 0; x < w; x++ {
				r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 0xFF && a != 0 {
					r, g, bl = unpremul(r, a), unpremul(g, a), unpremul(bl, a)
				}
				o[3*x], o[3*x+1], o[3*x+2] = r, g, bl
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				pix[i], pix[i+1], pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return out
}

func unpremul(c, a uint8) uint8 {
	v := (uint32(c)*255 + uint32(a)/2) / uint32(a)
	if v > 255 {
		v = 255
	}
	return uint8(v)
}

// ycbcrToRGB is color.YCbCrToRGB inlined over whole rows for each chroma layout.
func ycbcrToRGB(m *image.YCbCr, pix []uint8) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	var sx, sy int // chroma subsampling shifts
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		sx = 1
	case image.YCbCrSubsampleRatio420:
		sx, sy = 1, 1
	case image.YCbCrSubsampleRatio440:
		sy = 1
	case image.YCbCrSubsampleRatio411:
		sx = 2
	case image.YCbCrSubsampleRatio410:
		sx, sy = 2, 1
	}
	for y := 0; y < h; y++ {
		yrow := m.Y[(y)*m.YStride:]
		crow := (((b.Min.Y + y) >> sy) - (b.Min.Y >> sy)) * m.CStride
		o := pix[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			ci := crow + ((b.Min.X+x)>>sx - b.Min.X>>sx)
			yy1 := int32(yrow[x]) * 0x10101
			cb1 := int32(m.Cb[ci]) - 128
			cr1 := int32(m.Cr[ci]) - 128
			r := yy1 + 91881*cr1
			g := yy1 - 22554*cb1 - 46802*cr1
			bl := yy1 + 116130*cb1
			o[3*x] = clamp16(r)
			o[3*x+1] = clamp16(g)
			o[3*x+2] = clamp16(bl)
		}
	}
}

func clamp16(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}

// jpegOrientation reads the EXIF orientation tag (1..8) from a JPEG's APP1
// segment; 1 (upright) when absent or unreadable.
func jpegOrientation(data []byte) int {
	p := 2
	for p+4 <= len(data) {
		if data[p] != 0xFF {
			return 1
		}
		marker := data[p+1]
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 || marker == 0xFF {
			p++
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan: no more metadata
			return 1
		}
		n := int(binary.BigEndian.Uint16(data[p+2:]))
		if n < 2 || p+2+n > len(data) {
			return 1
		}
		seg := data[p+4 : p+2+n]
		if marker == 0xE1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			return exifOrientation(seg[6:])
		}
		p += 2 + n
	}
	return 1
}

func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[ifd:]))
	for i := 0; i < n; i++ {
		e := ifd + 2 + 12*i
		if e+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 {
			v := int(bo.Uint16(t[e+8:]))
			if v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient applies an EXIF orientation so that the result is upright.
func orient(src *RGB, o int) *RGB {
	if o <= 1 || o > 8 {
		return src
	}
	w, h := src.W, src.H
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := &RGB{W: dw, H: dh, Pix: make([]uint8, len(src.Pix))}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var dx, dy int
			switch o {
			case 2: // mirror horizontal
				dx, dy = w-1-x, y
			case 3: // rotate 180
				dx, dy = w-1-x, h-1-y
			case 4: // mirror vertical
				dx, dy = x, h-1-y
			case 5: // transpose
				dx, dy = y, x
			case 6: // rotate 90 CW
				dx, dy = h-1-y, x
			case 7: // transverse
				dx, dy = h-1-y, w-1-x
			case 8: // rotate 90 CCW
				dx, dy = y, w-1-x
			}
			s, d := 3*(y*w+x), 3*(dy*dw+dx)
			copy(dst.Pix[d:d+3], src.Pix[s:s+3])
		}
	}
	return dst
}
