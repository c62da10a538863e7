// Package hostile_test sends every class of bad or odd input we know of
// through real HTTP to the embedded service (web tier, in-memory queues,
// workers, real engine) on 127.0.0.1, and checks each gets its clear status
// and message, and that the process is alive and still answering right
// afterwards. Inputs are generated in the test. (Hostile file and subject
// names are tested with the web tier.)
package hostile_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// startService runs the embedded service with the real engine and returns
// its URL; it stops when the test ends.
// startService returns the service's URL and an admin API key.
func startService(t *testing.T) (string, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	eng, err := engine.New(engine.Options{ModelDir: testenv.Models(t), LibraryPath: testenv.ORTLib(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	svc, err := service.New(service.Config{
		DataDir: t.TempDir(), Analyzer: eng, MaxInstances: 2, IdleTimeout: time.Minute,
		WorkerWait: 200 * time.Millisecond, ScaleEvery: 100 * time.Millisecond, GalleryCheckEvery: 100 * time.Millisecond,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	key := e2ekit.AdminKey(t, svc, "hostile", 0, 0)
	url, _ := e2ekit.Serve(t, svc)
	return url, key
}

// hcase is one class of input and what the service must answer.
type hcase struct {
	class  string
	file   string
	data   func(t *testing.T) []byte
	status int
	// For 200: the name of the largest face ("NoFace", or a person). For
	// errors: a fragment the message must contain (it names the problem).
	want string
}

type recognized struct {
	Name  string `json:"name"`
	Faces []struct {
		Box struct{ X, Y, W, H float64 } `json:"box"`
	} `json:"faces"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestHostileInputs(t *testing.T) {
	url, key := startService(t)
	client := &http.Client{Timeout: 2 * time.Minute}
	admin := &http.Client{Timeout: 2 * time.Minute, Transport: &apikeys.Transport{Key: key}}
	people := e2ekit.LoadFaces(t, 2)
	for _, p := range people {
		for i := 0; i < 2; i++ {
			code, body, err := e2ekit.Upload(admin, "PUT", url+"/v1/subjects/"+p.Name+"/faces", "image", p.Files[i], p.Photos[i])
			if err != nil || code != http.StatusCreated {
				t.Fatalf("enroll %s/%s: %d %s %v", p.Name, p.Files[i], code, body, err)
			}
		}
	}
	// The face used by the lossless and re-encoded variants: the first photo
	// of the first person, enrolled above, so its name is certain.
	who := people[0].Name
	face, err := png.Decode(bytes.NewReader(people[0].Photos[0]))
	if err != nil {
		t.Fatal(err)
	}
	grey := image.NewGray(face.Bounds())
	for y := 0; y < grey.Rect.Dy(); y++ {
		for x := 0; x < grey.Rect.Dx(); x++ {
			grey.Set(x, y, color.GrayModel.Convert(face.At(x, y)))
		}
	}

	cases := []hcase{
		{"strip 400000x16", "wide.png", func(t *testing.T) []byte { return flatStrip(t, 400000, 16) }, 200, engine.NoFace},
		{"strip 16x400000", "tall.png", func(t *testing.T) []byte { return flatStrip(t, 16, 400000) }, 200, engine.NoFace},
		{"1x1", "dot.png", func(t *testing.T) []byte { return encPNG(t, noise(1, 1, 1)) }, 422, "smaller than 16x16"},
		{"PNG header claiming 50000x50000", "claims.png", func(t *testing.T) []byte { return pngClaiming(t, 50000, 50000) }, 413, "50000x50000"},
		{"JPEG header claiming 50000x50000", "claims.jpg", func(t *testing.T) []byte { return jpegClaiming(t, 50000, 50000) }, 413, "50000x50000"},
		{"truncated JPEG", "cut.jpg", func(t *testing.T) []byte { d := encJPEG(t, grey, 90); return d[:len(d)/2] }, 422, "ends early"},
		{"truncated PNG", "cut.png", func(t *testing.T) []byte { d := encPNG(t, grey); return d[:len(d)/2] }, 422, "ends early"},
		{"empty file", "empty.png", func(*testing.T) []byte { return nil }, 400, "empty"},
		{"random bytes", "random.jpg", func(*testing.T) []byte { return randomBytes(4096) }, 415, "not an image"},
		{"HTML named .png", "page.png", func(*testing.T) []byte {
			return []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")
		}, 415, "not an image"},
		{"GIF of 300 frames", "anim.gif", func(t *testing.T) []byte { return animatedGIF(t, 300) }, 422, "animated GIF"},
		{"PNG with an 8 MB text chunk", "text.png", func(t *testing.T) []byte { return pngWithText(t, 8<<20) }, 200, engine.NoFace},
		{"progressive JPEG of 5000 scans", "bomb.jpg", func(t *testing.T) []byte { return scanBomb(t, 5000) }, 422, "over the limit of 100"},
		{"CMYK JPEG", "cmyk.jpg", func(t *testing.T) []byte { return cmykJPEG(t) }, 200, engine.NoFace},
		{"16-bit PNG", "deep.png", func(t *testing.T) []byte { return encPNG(t, gray16(grey)) }, 200, who},
		{"palette PNG with tRNS", "pal.png", func(t *testing.T) []byte { return paletteTRNS(t, grey) }, 200, who},
		{"39 MP face-free photo", "wall.jpg", func(t *testing.T) []byte { return bigPhoto(t, 7200, 5400) }, 200, engine.NoFace},
		{"BMP", "face.bmp", func(t *testing.T) []byte { return bmpOf(t, grey) }, 200, who},
		{"WebP", "pink.webp", func(t *testing.T) []byte { return seed(t, "blue-purple-pink.lossy.webp") }, 200, engine.NoFace},
		{"animated WebP", "anim.webp", func(*testing.T) []byte {
			return []byte("RIFF\x1a\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x0f\x00\x00\x0f\x00\x00")
		}, 422, "animated WebP"},
		{"TIFF", "face.tiff", func(t *testing.T) []byte { return tiffOf(t, grey) }, 415, "not an image"},
		{"SVG", "face.svg", func(*testing.T) []byte {
			return []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="30"/></svg>`)
		}, 415, "not an image"},
		{"APNG", "anim.png", func(t *testing.T) []byte { return apng(t) }, 422, "animated PNG"},
		{"PDF", "doc.png", func(*testing.T) []byte { return []byte("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n") }, 415, "not an image"},
		{"HEIC", "photo.heic", func(*testing.T) []byte {
			return append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), make([]byte, 64)...)
		}, 415, "not an image"},
		{"PNG header of 0x0", "zero.png", func(t *testing.T) []byte { return pngClaiming(t, 0, 0) }, 422, "cannot be decoded"},
		{"PNG with a corrupt CRC", "crc.png", func(t *testing.T) []byte {
			d := append([]byte{}, encPNG(t, grey)...)
			d[len(d)-20] ^= 0xFF // inside the last IDAT
			return d
		}, 422, "png"},
		{"JPEG with garbage after EOI", "tail.jpg", func(t *testing.T) []byte { return append(encJPEG(t, grey, 95), randomBytes(2048)...) }, 200, who},
		{"single-frame GIF", "face.gif", func(t *testing.T) []byte {
			pal := make([]color.Color, 256)
			for i := range pal {
				pal[i] = color.Gray{Y: uint8(i)}
			}
			p := image.NewPaletted(grey.Rect, pal)
			copy(p.Pix, grey.Pix)
			var b bytes.Buffer
			if err := gif.Encode(&b, p, nil); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}, 200, who},
		{"150x150 noise (crop-shaped, no face)", "noise.png", func(t *testing.T) []byte { return encPNG(t, noise(150, 150, 9)) }, 200, engine.NoFace},
	}
	for o := 1; o <= 8; o++ {
		cases = append(cases, hcase{"EXIF orientation " + string(rune('0'+o)), "exif" + string(rune('0'+o)) + ".jpg",
			func(t *testing.T) []byte { return exifJPEG(t, grey, o) }, 200, who})
	}
	if len(cases) < 25 {
		t.Fatalf("only %d classes", len(cases))
	}

	alive := func(t *testing.T) {
		t.Helper()
		res, err := client.Get(url + "/healthz")
		if err != nil {
			t.Fatalf("service gone: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("healthz: %d", res.StatusCode)
		}
	}
	var upright *recognized // the answer for EXIF orientation 1
	for _, c := range cases {
		t.Run(c.class, func(t *testing.T) {
			data := c.data(t)
			start := time.Now()
			code, body, err := e2ekit.Upload(client, "POST", url+"/v1/recognize", "image", c.file, data)
			if err != nil {
				t.Fatalf("%d bytes: %v", len(data), err)
			}
			var r recognized
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("%d, not JSON: %q", code, body)
			}
			switch {
			case code != c.status:
				t.Errorf("%d %s, want %d", code, body, c.status)
			case code == 200 && r.Name != c.want:
				t.Errorf("name %q, want %q (%s)", r.Name, c.want, body)
			case code != 200 && (r.Error.Code == "" || !strings.Contains(r.Error.Message, c.want)):
				t.Errorf("error %+v, want a code and a message containing %q", r.Error, c.want)
			}
			// Every EXIF orientation is turned upright: the same face box as
			// orientation 1 (a sideways or mirrored face would not match it).
			if strings.HasPrefix(c.class, "EXIF") && len(r.Faces) == 1 {
				if upright == nil {
					upright = &r
				}
				a, b := r.Faces[0].Box, upright.Faces[0].Box
				if math.Abs(a.X-b.X) > 2 || math.Abs(a.Y-b.Y) > 2 || math.Abs(a.W-b.W) > 2 || math.Abs(a.H-b.H) > 2 {
					t.Errorf("face box %+v, upright %+v", a, b)
				}
			}
			t.Logf("%d bytes -> %d in %v: %.200s", len(data), code, time.Since(start).Round(time.Millisecond), body)
			alive(t)
		})
	}

	// The course's route answers the same classes in plain text.
	for _, c := range []struct {
		file   string
		data   []byte
		status int
		want   string
	}{
		{"empty.png", nil, 400, "empty"},
		{"random.jpg", randomBytes(512), 415, "not an image"},
		{"bomb.jpg", scanBomb(t, 1000), 422, "scans"},
		{"strip.png", flatStrip(t, 100000, 16), 200, "strip:NoFace"},
		{"face.bmp", bmpOf(t, grey), 200, "face:" + who},
	} {
		code, body, err := e2ekit.Upload(client, "POST", url+"/", "inputFile", c.file, c.data)
		if err != nil || code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("POST / %s: %d %q %v; want %d containing %q", c.file, code, body, err, c.status, c.want)
		}
	}
	// Multipart without the file, or under another field name.
	for _, field := range []string{"", "file"} {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		if field != "" {
			fw, _ := mw.CreateFormFile(field, "x.png")
			fw.Write(encPNG(t, grey))
		}
		mw.Close()
		res, err := client.Post(url+"/", mw.FormDataContentType(), &b)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 || !strings.Contains(string(msg), "inputFile") {
			t.Errorf("POST / with field %q: %d %q, want 400 naming inputFile", field, res.StatusCode, msg)
		}
	}

	// Alive, and still right.
	alive(t)
	for _, p := range people {
		code, body, err := e2ekit.Upload(client, "POST", url+"/", "inputFile", "after_"+p.Files[0], p.Photos[0])
		if err != nil || code != 200 || !strings.HasSuffix(strings.TrimSpace(body), ":"+p.Name) {
			t.Errorf("after the hostile inputs, %s: %d %q %v", p.Files[0], code, body, err)
		}
	}
}
