package hostile_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/apikeys"
)

// Hostile gallery files through PUT/POST /v1/gallery (an admin route, but a
// stolen key or a damaged backup must not take the service down): each is
// refused with a status and a message naming the problem, the stored gallery
// is unchanged, and the service still answers.
func TestHostileGalleryImports(t *testing.T) {
	url, key := startService(t)
	admin := &http.Client{Timeout: time.Minute, Transport: &apikeys.Transport{Key: key}}
	do := func(method, path string, body []byte) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
		res, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	// A real gallery to start from and to damage.
	g := gallery.New()
	for _, name := range []string{"amy", "raj"} {
		d := make([]float32, gallery.DescriptorLen)
		d[len(name)] = 0.2
		if err := g.Add(name, d); err != nil {
			t.Fatal(err)
		}
	}
	bin, _ := g.MarshalBinary()
	if code, body := do("PUT", "/v1/gallery", bin); code != 200 {
		t.Fatalf("a good binary gallery: %d %s", code, body)
	}
	_, before := do("GET", "/v1/gallery", nil)

	// withCount sets a u32/u64 header field and fixes the checksum, so only
	// the lie is left for the decoder to find.
	withCount := func(off, size int, v uint64) []byte {
		b := bytes.Clone(bin[:len(bin)-4])
		if size == 4 {
			binary.LittleEndian.PutUint32(b[off:], uint32(v))
		} else {
			binary.LittleEndian.PutUint64(b[off:], v)
		}
		return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	}
	cases := []struct {
		class  string
		method string
		body   []byte
		status int
		want   string
	}{
		{"8,000,000 faces claimed in a tiny file", "PUT", withCount(28, 8, 8_000_000), 400, "counts exceed its size"},
		{"2^64-1 faces claimed", "PUT", withCount(28, 8, ^uint64(0)), 400, "faces; the limit is"},
		{"4 billion subjects claimed", "POST", withCount(24, 4, 1<<32-1), 400, "truncated"},
		{"one flipped byte", "PUT", func() []byte { b := bytes.Clone(bin); b[40] ^= 0x40; return b }(), 400, "checksum"},
		{"binary of another version", "PUT", func() []byte { b := bytes.Clone(bin); b[8] = 3; return b }(), 400, "version 3"},
		{"11 MiB of zeros", "PUT", make([]byte, 11<<20), 413, ""},
		{"JSON with a 5000-value descriptor", "POST", []byte(`{"version":1,"subjects":[{"name":"x","descriptors":[[` + strings.Repeat("0.1,", 4999) + `0.1]]}]}`), 400, "5000 values"},
		{"JSON subject named ../../etc", "PUT", []byte(`{"version":1,"subjects":[{"name":"../../etc","descriptors":[[` + strings.Repeat("0.1,", 127) + `0.1]]}]}`), 400, "may not contain"},
	}
	for _, c := range cases {
		code, body := do(c.method, "/v1/gallery", c.body)
		if code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.class, code, body, c.status, c.want)
		}
	}
	if _, after := do("GET", "/v1/gallery", nil); after != before {
		t.Fatal("a refused import changed the gallery")
	}
	if code, body := do("GET", "/v1/subjects", nil); code != 200 || !strings.Contains(body, `"raj"`) {
		t.Fatalf("the service after the attacks: %d %s", code, body)
	}
}
