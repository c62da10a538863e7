// Package imagefmt is the one list of image formats facefleet accepts, each
// recognised by its magic bytes (never by file name or Content-Type), with
// header-only decoding. The engine decodes exactly these formats; the web tier
// uses this package to turn anything else away with 415 before a round trip.
// It is pure Go (no cgo), so the web tier can use it without the engine's
// native libraries.
package imagefmt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// Format is one accepted image format.
type Format struct {
	ID    string   // "jpeg", "png", "gif", "webp", "bmp"
	Label string   // for messages: "JPEG"
	MIME  string   // "image/jpeg"
	Exts  []string // usual file extensions, lower case, with the dot

	decode       func(io.Reader) (image.Image, error)
	decodeConfig func(io.Reader) (image.Config, error)
}

// All returns the accepted formats (a fresh slice each call).
func All() []Format {
	return []Format{
		{"jpeg", "JPEG", "image/jpeg", []string{".jpg", ".jpeg", ".jfif"}, jpeg.Decode, jpeg.DecodeConfig},
		{"png", "PNG", "image/png", []string{".png"}, png.Decode, png.DecodeConfig},
		{"gif", "GIF", "image/gif", []string{".gif"}, gif.Decode, gif.DecodeConfig},
		{"webp", "WebP", "image/webp", []string{".webp"}, webp.Decode, webp.DecodeConfig},
		{"bmp", "BMP", "image/bmp", []string{".bmp", ".dib"}, bmp.Decode, bmp.DecodeConfig},
	}
}

// List names the accepted formats for messages: "JPEG, PNG, GIF, WebP or BMP".
func List() string {
	all := All()
	names := make([]string, len(all))
	for i, f := range all {
		names[i] = f.Label
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Sniff recognises data's format from its first bytes.
func Sniff(data []byte) (Format, bool) {
	id := ""
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		id = "jpeg"
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		id = "png"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		id = "gif"
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		id = "webp"
	case len(data) >= 18 && string(data[:2]) == "BM" && binary.LittleEndian.Uint32(data[6:]) == 0:
		// BITMAPFILEHEADER: "BM", file size, two reserved zero words.
		id = "bmp"
	}
	for _, f := range All() {
		if f.ID == id {
			return f, true
		}
	}
	return Format{}, false
}

// DecodeConfig reads the width and height from f's header without decoding
// pixels. f comes from Sniff or All.
func DecodeConfig(f Format, data []byte) (image.Config, error) {
	if f.decodeConfig == nil {
		return image.Config{}, fmt.Errorf("imagefmt: %q is not a format from this package's list", f.ID)
	}
	return f.decodeConfig(bytes.NewReader(data))
}

// Decode decodes the first (only) frame of data in format f. f comes from
// Sniff or All.
func Decode(f Format, data []byte) (image.Image, error) {
	if f.decode == nil {
		return nil, fmt.Errorf("imagefmt: %q is not a format from this package's list", f.ID)
	}
	return f.decode(bytes.NewReader(data))
}

// JPEGScans counts the start-of-scan (SOS) markers of a JPEG by walking its
// segments and skipping each scan's entropy-coded data, without decoding. A
// baseline JPEG has one scan (three if not interleaved); a progressive one
// usually 6-12. Each scan makes a decoder pass over the whole image, so their
// number bounds the decoding work. The walk stops at EOI or where the data
// ends or stops making sense (the decoder reports that).
func JPEGScans(data []byte) int {
	scans := 0
	p := 2
	for p+4 <= len(data) {
		if data[p] != 0xFF {
			return scans
		}
		m := data[p+1]
		switch {
		case m == 0xFF: // fill byte
			p++
			continue
		case m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7): // no length
			p += 2
			continue
		case m == 0xD9: // EOI
			return scans
		}
		n := int(binary.BigEndian.Uint16(data[p+2:]))
		if n < 2 {
			return scans
		}
		p += 2 + n
		if m != 0xDA {
			continue
		}
		scans++
		// Entropy-coded data: up to the next marker that is not a stuffed 0x00
		// or a restart marker.
		for p+1 < len(data) {
			if data[p] == 0xFF {
				if b := data[p+1]; b != 0x00 && !(b >= 0xD0 && b <= 0xD7) && b != 0xFF {
					break
				}
			}
			p++
		}
	}
	return scans
}

// BMPShortBy reports how many bytes an uncompressed BMP lacks for the
// pixel rows its header declares (0 when complete, compressed or unreadable:
// the decoder judges those). Checking first keeps a 60-byte file that claims
// 6000x6000 from making the decoder allocate 144 MB before it fails.
func BMPShortBy(data []byte) int64 {
	if len(data) < 30 {
		return 0
	}
	off := int64(binary.LittleEndian.Uint32(data[10:]))
	hdr := binary.LittleEndian.Uint32(data[14:])
	if hdr < 40 || len(data) < 34 {
		return 0
	}
	w := int64(int32(binary.LittleEndian.Uint32(data[18:])))
	h := int64(int32(binary.LittleEndian.Uint32(data[22:])))
	bpp := int64(binary.LittleEndian.Uint16(data[28:]))
	comp := binary.LittleEndian.Uint32(data[30:])
	if h < 0 {
		h = -h
	}
	if w <= 0 || w > 1<<24 || h > 1<<24 || comp != 0 && comp != 3 || bpp == 0 || bpp > 64 {
		return 0
	}
	need := off + ((w*bpp+31)/32)*4*h
	if short := need - int64(len(data)); short > 0 {
		return short
	}
	return 0
}
