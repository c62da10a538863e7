package engine

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/facefleet/facefleet/engine/imagefmt"
	"golang.org/x/image/bmp"
)

// Every format imagefmt accepts (what the web tier lets through) decodes here:
// no format reaches a worker only to fail there.
func TestEveryAcceptedFormatDecodes(t *testing.T) {
	img := testPhoto(40, 30)
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	gifData, err := os.ReadFile(filepath.Join("testdata/seed", "single.gif"))
	if err != nil {
		t.Fatal(err)
	}
	webpData, err := os.ReadFile(filepath.Join("testdata/seed", "blue-purple-pink.lossy.webp"))
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string][]byte{
		"jpeg": encJPEG(t, img), "png": encPNG(t, img), "gif": gifData, "webp": webpData, "bmp": b.Bytes(),
	}
	for _, f := range imagefmt.All() {
		data, ok := samples[f.ID]
		if !ok {
			t.Fatalf("format %s has no sample here: add one", f.ID)
		}
		if got, ok := imagefmt.Sniff(data); !ok || got.ID != f.ID {
			t.Fatalf("%s sample sniffed as %q", f.ID, got.ID)
		}
		for _, pure := range []bool{false, true} {
			rgb, err := Decode(data, DecodeLimits{PureGo: pure})
			if err != nil {
				t.Fatalf("%s (pure Go %v): %v", f.ID, pure, err)
			}
			if rgb.W < 16 || rgb.H < 16 || len(rgb.Pix) != rgb.W*rgb.H*3 {
				t.Fatalf("%s: %dx%d with %d bytes", f.ID, rgb.W, rgb.H, len(rgb.Pix))
			}
		}
	}
	// BMP pixels come through exactly (24-bit, lossless).
	rgb, err := Decode(b.Bytes(), DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]int{{0, 0}, {39, 0}, {13, 29}} {
		c := img.RGBAAt(p[0], p[1])
		o := 3 * (p[1]*40 + p[0])
		if rgb.Pix[o] != c.R || rgb.Pix[o+1] != c.G || rgb.Pix[o+2] != c.B {
			t.Fatalf("bmp pixel %v: %v, want %v", p, rgb.Pix[o:o+3], c)
		}
	}
	if l := imagefmt.List(); l != "JPEG, PNG, GIF, WebP or BMP" {
		t.Fatalf("List() = %q", l)
	}
}

// A BMP whose header claims more rows than the file holds is refused before
// the decoder allocates its image.
func TestDecodeBMPShort(t *testing.T) {
	var b bytes.Buffer
	bmp.Encode(&b, testPhoto(40, 30))
	data := b.Bytes()
	big := append([]byte{}, data[:54]...)
	binary.LittleEndian.PutUint32(big[18:], 6000)
	binary.LittleEndian.PutUint32(big[22:], 6000)
	_, err := Decode(big, DecodeLimits{})
	wantKind(t, err, KindTruncated)
	_, err = Decode(data[:len(data)-100], DecodeLimits{})
	wantKind(t, err, KindTruncated)
}

// scanBomb repeats the first scan (DC, all components) of a real progressive
// JPEG n times after its own scans: a valid file that image/jpeg decodes pass
// after pass.
func scanBomb(t testing.TB, n int) []byte {
	data, err := os.ReadFile(filepath.Join("testdata/seed", "progressive.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.Index(data, []byte{0xFF, 0xDA})
	second := first + 2 + bytes.Index(data[first+2:], []byte{0xFF, 0xDA})
	eoi := len(data) - 2
	out := append([]byte{}, data[:eoi]...)
	for i := 0; i < n; i++ {
		out = append(out, data[first:second]...)
	}
	return append(out, 0xFF, 0xD9)
}

func TestJPEGScanLimit(t *testing.T) {
	prog, err := os.ReadFile(filepath.Join("testdata/seed", "progressive.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if n := imagefmt.JPEGScans(prog); n != 10 {
		t.Fatalf("progressive.jpg: %d scans, want 10", n)
	}
	if n := imagefmt.JPEGScans(encJPEG(t, testPhoto(64, 48))); n != 1 {
		t.Fatalf("baseline: %d scans, want 1", n)
	}
	bomb := scanBomb(t, 5000)
	if n := imagefmt.JPEGScans(bomb); n != 5010 {
		t.Fatalf("bomb: %d scans, want 5010", n)
	}
	// A real progressive JPEG decodes on both paths; the bomb is refused on
	// both (libjpeg-turbo declines beyond 500 scans, and the image/jpeg
	// fallback must not be a way round the limit), as is anything over a
	// lower configured limit.
	for _, pure := range []bool{false, true} {
		if _, err := Decode(prog, DecodeLimits{PureGo: pure}); err != nil {
			t.Fatalf("progressive (pure Go %v): %v", pure, err)
		}
		_, err := Decode(bomb, DecodeLimits{PureGo: pure})
		wantKind(t, err, KindTooManyScans)
		_, err = Decode(scanBomb(t, 300), DecodeLimits{PureGo: pure})
		wantKind(t, err, KindTooManyScans)
		_, err = Decode(prog, DecodeLimits{PureGo: pure, MaxScans: 9})
		wantKind(t, err, KindTooManyScans)
	}
	// Exactly at the default limit still decodes.
	if _, err := Decode(scanBomb(t, DefaultMaxScans-10), DecodeLimits{}); err != nil {
		t.Fatalf("%d scans: %v", DefaultMaxScans, err)
	}
}
