package imagefmt

import (
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	for _, c := range []struct {
		data string
		id   string
	}{
		{"\xff\xd8\xff\xe0rest", "jpeg"},
		{"\x89PNG\r\n\x1a\nrest", "png"},
		{"GIF87a....", "gif"},
		{"GIF89a....", "gif"},
		{"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"},
		{"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00", "bmp"},
		{"BM but prose, not a bitmap header", ""}, // reserved words not zero
		{"II*\x00\x08\x00\x00\x00", ""},           // TIFF
		{"MM\x00*\x00\x00\x00\x08", ""},           // TIFF
		{"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", ""},
		{"\x00\x00\x00\x18ftypheic", ""},     // HEIC
		{"RIFF\x00\x00\x00\x00WAVEfmt ", ""}, // not WebP
		{"\xff\xd8", ""},                     // too short for JPEG
		{"", ""},
	} {
		f, ok := Sniff([]byte(c.data))
		if ok != (c.id != "") || f.ID != c.id {
			t.Errorf("%q: %q %v, want %q", c.data, f.ID, ok, c.id)
		}
	}
	for _, f := range All() {
		if f.ID == "" || f.Label == "" || !strings.HasPrefix(f.MIME, "image/") || len(f.Exts) == 0 {
			t.Errorf("incomplete format %+v", f)
		}
	}
}

func TestJPEGScansOddInput(t *testing.T) {
	for _, d := range []string{"", "\xff\xd8", "\xff\xd8\xff\xda", "\xff\xd8\xff\xda\x00\x00", "\xff\xd8\xff\xda\x00\x02\xff", "\xff\xd8\xff\xff\xff\xd9"} {
		if n := JPEGScans([]byte(d)); n > 1 {
			t.Errorf("%q: %d scans", d, n)
		}
	}
	// Stuffed bytes and restart markers inside a scan do not end it.
	d := "\xff\xd8\xff\xda\x00\x02\x12\xff\x00\x34\xff\xd0\x56\xff\xda\x00\x02\x00\xff\xd9"
	if n := JPEGScans([]byte(d)); n != 2 {
		t.Errorf("%d scans, want 2", n)
	}
}
