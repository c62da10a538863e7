package webtier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/webtier"
)

// faceEnv is a web tier with the real gallery codec whose fake app tier
// describes every enrollment upload as one 16x16 face at (8,8) with a
// descriptor made from the upload's first pixel.
func faceEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWith(t, webtier.Limits{}, func(*webtier.Options) {})
	e.script = func(e *env, r protocol.Request, m queue.Message) {
		ctx := context.Background()
		data, _, err := e.in.Get(ctx, r.Key)
		if err != nil {
			e.t.Errorf("fake app tier: %v", err)
			return
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			e.t.Errorf("fake app tier: %v", err)
			return
		}
		g := color.GrayModel.Convert(img.At(0, 0)).(color.Gray).Y
		d := make([]float32, gallery.DescriptorLen)
		for i := range d {
			d[i] = float32(g) / 255 * float32(i%7)
		}
		resp := protocol.Response{ID: r.ID, Key: r.Key, Stem: protocol.Stem(r.Key), Name: "Unknown", Width: 32, Height: 32,
			Faces: []protocol.Face{{Box: protocol.Box{X: 8, Y: 8, W: 16, H: 16}, Score: 0.9}}, Descriptor: d}
		body, err := protocol.EncodeResponse(resp)
		if err != nil {
			e.t.Error(err)
		}
		e.resp.Send(ctx, body)
		e.req.Delete(ctx, m.ReceiptHandle)
	}
	return e
}

// facePNG is a 32x32 grey image whose shade tells faces apart.
func facePNG(t *testing.T, shade uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = shade
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type facesList struct {
	Subject string             `json:"subject"`
	Faces   []gallery.FaceInfo `json:"faces"`
}

func TestThumbnails(t *testing.T) {
	e := faceEnv(t)
	ctx := context.Background()
	var ids []string
	for i, shade := range []uint8{100, 200} {
		code, body, _ := e.do("POST", "/v1/subjects/amy/faces", "image", "amy.png", facePNG(t, shade))
		var out struct {
			ID    string `json:"id"`
			Faces int    `json:"faces"`
		}
		if code != 201 || json.Unmarshal([]byte(body), &out) != nil || out.Faces != i+1 || out.ID == "" {
			t.Fatalf("enroll %d: %d %s", i, code, body)
		}
		ids = append(ids, out.ID)
	}
	for i, id := range ids {
		code, body, h := e.do("GET", "/v1/subjects/amy/faces/"+id+"/thumbnail", "-", "", nil)
		if code != 200 || h.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("thumbnail %d: %d %s", i, code, h.Get("Content-Type"))
		}
		thumb, err := jpeg.Decode(strings.NewReader(body))
		if err != nil || thumb.Bounds().Dx() != webtier.ThumbSize || thumb.Bounds().Dy() != webtier.ThumbSize {
			t.Fatalf("thumbnail %d is not a %dpx JPEG: %v", i, webtier.ThumbSize, err)
		}
		// The crop is of this face: the shade of its image.
		want := []int{100, 200}[i]
		if y := int(color.GrayModel.Convert(thumb.At(48, 48)).(color.Gray).Y); y < want-10 || y > want+10 {
			t.Fatalf("thumbnail %d centre is %d, want about %d", i, y, want)
		}
	}

	for _, c := range []struct {
		path    string
		code    int
		errCode string
	}{
		{"/v1/subjects/nobody/faces/" + ids[0] + "/thumbnail", 404, "no_subject"},
		{"/v1/subjects/amy/faces/" + strings.Repeat("a", 65) + "/thumbnail", 400, "bad_face_id"},
		{"/v1/subjects/amy/faces/0000000000000000/thumbnail", 404, "no_face"},
		{"/v1/subjects/a:b/faces/" + ids[0] + "/thumbnail", 400, "bad_subject"},
	} {
		code, body, _ := e.do("GET", c.path, "-", "", nil)
		if code != c.code || !strings.Contains(body, `"code":"`+c.errCode+`"`) {
			t.Errorf("GET %s: %d %s, want %d %s", c.path, code, body, c.code, c.errCode)
		}
	}

	// Removing a face removes its thumbnail; removing the subject removes the rest.
	if code, body, _ := e.do("DELETE", "/v1/subjects/amy/faces/"+ids[0], "-", "", nil); code != 204 {
		t.Fatalf("delete face: %d %s", code, body)
	}
	if objs, _ := e.out.List(ctx, "faces/"+ids[0]); len(objs) != 0 {
		t.Fatalf("the removed face left %d objects", len(objs))
	}
	if objs, _ := e.out.List(ctx, "faces/"+ids[1]); len(objs) != 1 {
		t.Fatalf("the other face has %d objects, want its thumbnail", len(objs))
	}
	if code, _, _ := e.do("DELETE", "/v1/subjects/amy", "-", "", nil); code != 204 {
		t.Fatalf("delete subject: %d", code)
	}
	if objs, _ := e.out.List(ctx, "faces/"); len(objs) != 0 {
		t.Fatalf("a removed subject left %d thumbnails", len(objs))
	}
}

// Faces enrolled without the API (a seeded gallery) have no picture.
func TestNoThumbnailForASeededFace(t *testing.T) {
	e := faceEnv(t)
	g := gallery.New()
	d := make([]float32, gallery.DescriptorLen)
	d[0] = 1
	if err := g.Add("leonard", d); err != nil {
		t.Fatal(err)
	}
	data, _ := g.Marshal()
	if _, err := e.out.Put(context.Background(), "gallery/gallery.json", data, "application/json"); err != nil {
		t.Fatal(err)
	}
	code, body, _ := e.do("GET", "/v1/subjects/leonard/faces", "-", "", nil)
	var fl facesList
	if code != 200 || json.Unmarshal([]byte(body), &fl) != nil || len(fl.Faces) != 1 {
		t.Fatalf("seeded faces: %d %s", code, body)
	}
	if code, body, _ := e.do("GET", "/v1/subjects/leonard/faces/"+fl.Faces[0].ID+"/thumbnail", "-", "", nil); code != 404 || !strings.Contains(body, "no_thumbnail") {
		t.Fatalf("thumbnail of a seeded face: %d %s", code, body)
	}
}

func TestPageFiles(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	code, body, h := e.do("GET", "/", "-", "", nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, `src="/ui/app.js"`) {
		t.Fatalf("page: %d %s", code, h.Get("Content-Type"))
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("page CSP %q", csp)
	}
	for file, ct := range map[string]string{"app.js": "javascript", "app.css": "text/css"} {
		code, body, h := e.do("GET", "/ui/"+file, "-", "", nil)
		if code != 200 || !strings.Contains(h.Get("Content-Type"), ct) || len(body) < 1000 {
			t.Errorf("/ui/%s: %d %q %d bytes", file, code, h.Get("Content-Type"), len(body))
		}
	}
	for _, p := range []string{"/ui/nope.js", "/ui/..%2fui.go", "/ui/%2e%2e"} {
		if code, body, _ := e.do("GET", p, "-", "", nil); code != 404 {
			t.Errorf("%s: %d %s, want 404", p, code, body)
		}
	}
}

func TestStatusHistory(t *testing.T) {
	now := time.Now()
	decisions := []scaling.Decision{
		{Observation: scaling.Observation{Now: now.Add(-3 * time.Second)}, Desired: 2, Start: 2, Reason: "backlog 10 needs 2"},
		{Observation: scaling.Observation{Now: now.Add(-2 * time.Second)}, Desired: 2, Reason: "hold"},
		{Observation: scaling.Observation{Now: now.Add(-time.Second)}, Desired: 2, Reason: "still hold"},
	}
	e := newEnvWith(t, webtier.Limits{}, func(o *webtier.Options) { o.Decisions = func() []scaling.Decision { return decisions } })
	var h webtier.History
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := e.do("GET", "/v1/status/history", "-", "", nil)
		if code != 200 || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("history: %d %s", code, body)
		}
		if len(h.Samples) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Once watched, the sampler takes one sample a second.
	if len(h.Samples) < 2 || !h.DecisionsAvailable || h.WindowS != 900 {
		t.Fatalf("history: %+v", h)
	}
	// The decision that acted, then the newest one (what the scaler thinks now); not the hold in between.
	if len(h.Decisions) != 2 || h.Decisions[0].Reason != "backlog 10 needs 2" || h.Decisions[1].Reason != "still hold" {
		t.Fatalf("decisions: %+v", h.Decisions)
	}
	last := h.Samples[len(h.Samples)-1].T
	_, body, _ := e.do("GET", "/v1/status/history?since="+itoa(last), "-", "", nil)
	if json.Unmarshal([]byte(body), &h) != nil || len(h.Samples) > 1 {
		t.Fatalf("since the last sample: %s", body)
	}
	if code, body, _ := e.do("GET", "/v1/status/history?since=yesterday", "-", "", nil); code != 400 || !strings.Contains(body, "bad_since") {
		t.Fatalf("bad since: %d %s", code, body)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
