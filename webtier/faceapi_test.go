package webtier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/webtier"
)

// galleryFile is a gallery package file with n faces per subject.
func galleryFile(t *testing.T, faces map[string]int) []byte {
	t.Helper()
	g := gallery.New()
	for name, n := range faces {
		for i := range n {
			d := make([]float32, gallery.DescriptorLen)
			d[0], d[1] = float32(len(name)), float32(i)
			if err := g.Add(name, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realGalleryEnv serves the gallery package's format, seeded with faces.
func realGalleryEnv(t *testing.T, faces map[string]int) *env {
	t.Helper()
	e := newEnvWith(t, webtier.Limits{}, func(*webtier.Options) {})
	if faces != nil {
		if _, err := e.out.Put(context.Background(), "gallery/gallery.json", galleryFile(t, faces), "application/json"); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// send sends a raw body with the admin key.
func (e *env) send(method, path, contentType string, body []byte) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.adminKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func (e *env) storedSubjects() map[string]int {
	e.t.Helper()
	g := e.storedGallery()
	out := map[string]int{}
	for _, s := range g.Subjects() {
		out[s.Name] = len(s.Descriptors)
	}
	return out
}

func TestSubjectsPaged(t *testing.T) {
	e := realGalleryEnv(t, map[string]int{"amy": 1, "bernadette": 2, "howard": 1, "leonard": 3, "penny": 1})
	var names []string
	after := ""
	pages := 0
	for {
		code, body, _ := e.do("GET", "/v1/subjects?limit=2&after="+after, "-", "", nil)
		var p webtier.SubjectsPage
		if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("page: %d %s", code, body)
		}
		pages++
		if len(p.Subjects) > 2 {
			t.Fatalf("page of %d, limit 2", len(p.Subjects))
		}
		for _, s := range p.Subjects {
			names = append(names, fmt.Sprintf("%s:%d", s.Name, s.Faces))
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if got := strings.Join(names, " "); got != "amy:1 bernadette:2 howard:1 leonard:3 penny:1" || pages != 3 {
		t.Fatalf("paged %d times: %s", pages, got)
	}
	// Without limit: everything, no cursor (the original answer).
	if code, body, _ := e.do("GET", "/v1/subjects", "-", "", nil); code != 200 || strings.Contains(body, "next") || strings.Count(body, `"name"`) != 5 {
		t.Fatalf("all: %d %s", code, body)
	}
	if code, body, _ := e.do("GET", "/v1/subjects?limit=5", "-", "", nil); code != 200 || strings.Contains(body, "next") {
		t.Fatalf("exact page: %d %s", code, body)
	}
	if code, body, _ := e.do("GET", "/v1/subjects?after=zz", "-", "", nil); code != 200 || body != `{"subjects":[]}` {
		t.Fatalf("after the end: %d %s", code, body)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=x", "limit=1001"} {
		if code, body, _ := e.do("GET", "/v1/subjects?"+q, "-", "", nil); code != 400 || apiError(t, body) != "bad_limit" {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
}

func TestRenameAndMergeSubjects(t *testing.T) {
	e := realGalleryEnv(t, map[string]int{"amy": 2, "penny": 1, "howard": 1})
	code, body := e.send("PATCH", "/v1/subjects/amy", "application/json", []byte(`{"name":"amelia"}`))
	if code != 200 || body != `{"faces":2,"merged":false,"subject":"amelia"}` {
		t.Fatalf("rename: %d %s", code, body)
	}
	code, body = e.send("PATCH", "/v1/subjects/amelia", "application/json", []byte(`{"name":"penny"}`))
	if code != 200 || body != `{"faces":3,"merged":true,"subject":"penny"}` {
		t.Fatalf("merge: %d %s", code, body)
	}
	if got := e.storedSubjects(); len(got) != 2 || got["penny"] != 3 || got["howard"] != 1 {
		t.Fatalf("stored after merge: %v", got)
	}
	for _, c := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/v1/subjects/nobody", `{"name":"x"}`, 404, "no_subject"},
		{"/v1/subjects/howard", `{"name":"Unknown"}`, 400, "bad_subject"},
		{"/v1/subjects/howard", `{"name":"a:b"}`, 400, "bad_subject"},
		{"/v1/subjects/howard", `{"name":""}`, 400, "bad_subject"},
		{"/v1/subjects/howard", `{"name":`, 400, "bad_json"},
		{"/v1/subjects/howard", ``, 400, "bad_json"},
	} {
		if code, body := e.send("PATCH", c.path, "application/json", []byte(c.body)); code != c.status || apiError(t, body) != c.code {
			t.Errorf("PATCH %s %s: %d %s, want %d %s", c.path, c.body, code, body, c.status, c.code)
		}
	}
	if got := e.storedSubjects(); len(got) != 2 || got["howard"] != 1 {
		t.Fatalf("a refused rename changed the gallery: %v", got)
	}
}

func TestGalleryExportImport(t *testing.T) {
	e := realGalleryEnv(t, map[string]int{"amy": 2, "penny": 1})
	code, exported := e.send("GET", "/v1/gallery", "", nil)
	if code != 200 {
		t.Fatalf("export: %d %s", code, exported)
	}
	if g, err := gallery.Unmarshal([]byte(exported)); err != nil || g.Len() != 2 {
		t.Fatalf("the export is not a gallery file: %v", err)
	}
	// Merge: the imported subjects replace those of the same name.
	code, body := e.send("POST", "/v1/gallery", "application/json", galleryFile(t, map[string]int{"penny": 3, "raj": 1}))
	if code != 200 || body != `{"imported":2,"replaced":false,"subjects":3}` {
		t.Fatalf("merge: %d %s", code, body)
	}
	if got := e.storedSubjects(); len(got) != 3 || got["amy"] != 2 || got["penny"] != 3 || got["raj"] != 1 {
		t.Fatalf("after merge: %v", got)
	}
	before := e.storedJSON()
	for name, bad := range map[string]string{
		"empty":          "",
		"not JSON":       "{",
		"no version":     `{"subjects":[]}`,
		"foreign":        `{"version":2,"subjects":[]}`,
		"short vector":   `{"version":1,"subjects":[{"name":"x","descriptors":[[1,2,3]]}]}`,
		"reserved name":  strings.Replace(string(galleryFile(t, map[string]int{"zz": 1})), `"zz"`, `"NoFace"`, 1),
		"colon in name":  strings.Replace(string(galleryFile(t, map[string]int{"zz": 1})), `"zz"`, `"a:b"`, 1),
		"other JSON":     `[1,2,3]`,
		"descriptor NaN": `{"version":1,"subjects":[{"name":"x","descriptors":[["NaN"]]}]}`,
	} {
		for _, m := range []string{"PUT", "POST"} {
			if code, body := e.send(m, "/v1/gallery", "application/json", []byte(bad)); code != 400 || apiError(t, body) != "bad_gallery" {
				t.Errorf("%s %s: %d %s", m, name, code, body)
			}
		}
	}
	if after := e.storedJSON(); after != before {
		t.Fatal("a refused import changed the stored gallery")
	}
	// Replace: exactly the file given.
	code, body = e.send("PUT", "/v1/gallery", "application/json", []byte(exported))
	if code != 200 || body != `{"imported":2,"replaced":true,"subjects":2}` {
		t.Fatalf("replace: %d %s", code, body)
	}
	if got := e.storedSubjects(); len(got) != 2 || got["amy"] != 2 || got["penny"] != 1 {
		t.Fatalf("after replace: %v", got)
	}
	// Export of a gallery nobody enrolled yet is an empty file, not an error.
	empty := realGalleryEnv(t, nil)
	if code, body := empty.send("GET", "/v1/gallery", "", nil); code != 200 || !strings.Contains(body, `"version": 1`) {
		t.Fatalf("empty export: %d %s", code, body)
	}
	// Every gallery route needs an admin key.
	for _, m := range []string{"GET", "PUT", "POST"} {
		if code, _, _ := e.call(m, "/v1/gallery", "-", "", nil, nil); code != 401 {
			t.Errorf("%s /v1/gallery without a key: %d", m, code)
		}
	}
}

func TestFacesByID(t *testing.T) {
	e := realGalleryEnv(t, nil)
	var ids []string
	for i := range 2 {
		code, body, _ := e.do("PUT", "/v1/subjects/amy/faces", "image", fmt.Sprintf("amy%d.png", i), pngBytes(t, 8, 8))
		var r struct {
			Subject, ID string
			Faces       int
		}
		if code != 201 || json.Unmarshal([]byte(body), &r) != nil || r.ID == "" || r.Faces != i+1 {
			t.Fatalf("enroll %d: %d %s", i, code, body)
		}
		ids = append(ids, r.ID)
	}
	code, body, _ := e.do("GET", "/v1/subjects/amy/faces", "-", "", nil)
	var list struct {
		Subject string
		Faces   []gallery.FaceInfo
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Faces) != 2 ||
		list.Faces[0].ID != ids[0] || list.Faces[1].ID != ids[1] || list.Faces[0].Box == nil || list.Faces[0].Box.W != 3 || list.Faces[0].Created.IsZero() {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/subjects/nobody/faces", 404, "no_subject"},
		{"DELETE", "/v1/subjects/amy/faces/0000000000000000", 404, "no_face"},
		{"DELETE", "/v1/subjects/nobody/faces/" + ids[0], 404, "no_face"},
		{"DELETE", "/v1/subjects/amy/faces/a.b", 400, "bad_face_id"},
	} {
		if code, body, _ := e.do(c.method, c.path, "-", "", nil); code != c.status || apiError(t, body) != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, code, body, c.status, c.code)
		}
	}
	if code, _, _ := e.do("DELETE", "/v1/subjects/amy/faces/"+ids[0], "-", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if got := e.storedSubjects(); got["amy"] != 1 {
		t.Fatalf("after deleting one face: %v", got)
	}
	_, body, _ = e.do("GET", "/v1/subjects/amy/faces", "-", "", nil)
	if strings.Contains(body, ids[0]) || !strings.Contains(body, ids[1]) {
		t.Fatalf("the wrong face went: %s", body)
	}
	// Face ids survive export and a merge import into another service.
	_, exported := e.send("GET", "/v1/gallery", "", nil)
	other := realGalleryEnv(t, nil)
	if code, body := other.send("POST", "/v1/gallery", "application/json", []byte(exported)); code != 200 {
		t.Fatalf("import: %d %s", code, body)
	}
	if _, body, _ := other.do("GET", "/v1/subjects/amy/faces", "-", "", nil); !strings.Contains(body, ids[1]) {
		t.Fatalf("imported faces lost their ids: %s", body)
	}
	if code, _, _ := e.do("DELETE", "/v1/subjects/amy/faces/"+ids[1], "-", "", nil); code != 204 {
		t.Fatalf("delete the last: %d", code)
	}
	if code, _, _ := e.do("GET", "/v1/subjects/amy/faces", "-", "", nil); code != 404 {
		t.Fatalf("the subject outlived its last face: %d", code)
	}
	// Both routes need an admin key.
	if code, _, _ := e.call("GET", "/v1/subjects/amy/faces", "-", "", nil, nil); code != 401 {
		t.Fatalf("list without a key: %d", code)
	}
}

func TestRecognizeLimitAndQualityFilter(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	var limits []int
	var mu sync.Mutex
	e.script = func(e *env, r protocol.Request, m queue.Message) {
		mu.Lock()
		limits = append(limits, r.Limit)
		mu.Unlock()
		// Two faces: a small sure one (10 px, 0.95) and a large doubtful one (60 px, 0.5).
		resp := protocol.Response{ID: r.ID, Key: r.Key, Stem: protocol.Stem(r.Key), Name: "raj", Faces: []protocol.Face{
			{Box: protocol.Box{W: 10, H: 12}, Subject: "amy", Score: 0.95, Candidates: []protocol.Candidate{{Subject: "amy", Distance: 0.3}}},
			{Box: protocol.Box{W: 60, H: 60}, Subject: "raj", Score: 0.5},
		}}
		body, _ := protocol.EncodeResponse(resp)
		e.resp.Send(context.Background(), body)
		e.req.Delete(context.Background(), m.ReceiptHandle)
	}
	recog := func(q string) (int, webtier.RecognizeResult, string) {
		code, body, _ := e.do("POST", "/v1/recognize"+q, "image", "x.png", pngBytes(t, 8, 8))
		var r webtier.RecognizeResult
		json.Unmarshal([]byte(body), &r)
		return code, r, body
	}
	if code, r, body := recog(""); code != 200 || r.Name != "raj" || len(r.Faces) != 2 || len(r.Faces[0].Candidates) != 1 {
		t.Fatalf("plain: %d %s", code, body)
	}
	if code, r, body := recog("?min_face=11"); code != 200 || r.Name != "raj" || len(r.Faces) != 1 || r.Faces[0].Subject != "raj" {
		t.Fatalf("min_face: %d %s", code, body)
	}
	if code, r, body := recog("?det_threshold=0.9&limit=3"); code != 200 || r.Name != "amy" || len(r.Faces) != 1 {
		t.Fatalf("det_threshold: %d %s", code, body)
	}
	if code, r, body := recog("?det_threshold=0.9&min_face=20"); code != 200 || r.Name != "NoFace" || len(r.Faces) != 0 {
		t.Fatalf("both: %d %s", code, body)
	}
	mu.Lock()
	if fmt.Sprint(limits) != "[1 1 3 1]" {
		t.Errorf("limits sent to the app tier: %v, want [1 1 3 1] (default 1)", limits)
	}
	mu.Unlock()
	for q, code := range map[string]string{"?limit=0": "bad_limit", "?limit=11": "bad_limit", "?limit=a": "bad_limit",
		"?min_face=-1": "bad_min_face", "?min_face=NaN": "bad_min_face", "?det_threshold=1.5": "bad_det_threshold", "?det_threshold=x": "bad_det_threshold"} {
		if status, _, body := recog(q); status != 400 || apiError(t, body) != code {
			t.Errorf("%s: %d %s", q, status, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(limits) != 4 {
		t.Errorf("a refused query still reached the app tier (%d requests)", len(limits))
	}
}

// detectVerifyScript answers detect with landmarks and describe with a
// descriptor whose first value is the file name's length ("noface" in the name:
// no face).
func detectVerifyScript(e *env, r protocol.Request, m queue.Message) {
	resp := protocol.Response{ID: r.ID, Key: r.Key, Stem: protocol.Stem(r.Key), Width: 640, Height: 480}
	face := protocol.Face{Box: protocol.Box{X: 5, Y: 6, W: 70, H: 80}, Score: 0.9}
	switch {
	case strings.Contains(r.Key, "noface"):
		resp.Error = &protocol.Error{Code: protocol.CodeNoFace, Message: "no face found"}
	case r.Kind == protocol.Detect:
		face.Landmarks = make([]protocol.Point, 68)
		resp.Faces = []protocol.Face{face, {Box: protocol.Box{W: 10, H: 10}, Score: 0.4, Landmarks: make([]protocol.Point, 68)}}
	case r.Kind == protocol.Describe:
		name := r.Key[strings.LastIndex(r.Key, "-")+1:]
		resp.Descriptor = make([]float32, 128)
		resp.Descriptor[0] = float32(len(name)) / 10
		resp.Faces = []protocol.Face{face}
	default:
		e.t.Errorf("unexpected kind %q", r.Kind)
	}
	body, _ := protocol.EncodeResponse(resp)
	e.resp.Send(context.Background(), body)
	e.req.Delete(context.Background(), m.ReceiptHandle)
}

func TestDetect(t *testing.T) {
	e := newEnv(t, webtier.Limits{})
	e.script = detectVerifyScript
	code, body, _ := e.do("POST", "/v1/detect", "image", "group.png", pngBytes(t, 8, 8))
	var r webtier.DetectResult
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Width != 640 || len(r.Faces) != 2 || len(r.Faces[0].Landmarks) != 68 || r.Faces[0].Box.W != 70 {
		t.Fatalf("detect: %d %s", code, body)
	}
	if strings.Contains(body, "subject") || strings.Contains(body, "distance") {
		t.Fatalf("detect answered recognition: %s", body)
	}
	if code, body, _ := e.do("POST", "/v1/detect", "inputFile", "group.png", pngBytes(t, 8, 8)); code != 400 || apiError(t, body) != "missing_file" {
		t.Fatalf("wrong field: %d %s", code, body)
	}
	if objs, _ := e.in.List(context.Background(), ""); len(objs) != 0 {
		t.Fatalf("detect left %d uploads in the input store", len(objs))
	}
}

// twoImages is a multipart body with image_a and image_b.
func twoImages(t *testing.T, a, b string) (*bytes.Buffer, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for field, name := range map[string]string{"image_a": a, "image_b": b} {
		if name == "" {
			continue
		}
		fw, _ := mw.CreateFormFile(field, name)
		fw.Write(pngBytes(t, 8, 8))
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestVerify(t *testing.T) {
	e := newEnvWith(t, webtier.Limits{}, func(o *webtier.Options) { o.Threshold = 0.15 })
	e.script = detectVerifyScript
	verify := func(a, b string) (int, string) {
		body, ct := twoImages(t, a, b)
		return e.send("POST", "/v1/verify", ct, body.Bytes())
	}
	for _, c := range []struct {
		a, b  string
		match bool
		dist  float64
	}{{"amy.png", "bob.png", true, 0}, {"amy.png", "penny.png", false, 0.2}, {"amy.png", "amy2.png", true, 0.1}} {
		code, body := verify(c.a, c.b)
		var r webtier.VerifyResult
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Match != c.match || math.Abs(r.Distance-c.dist) > 1e-6 ||
			r.Threshold != 0.15 || r.Faces.A.Box.W != 70 || r.Faces.B.Box.H != 80 {
			t.Errorf("verify %s %s: %d %s", c.a, c.b, code, body)
		}
	}
	if code, body := verify("amy.png", "noface.png"); code != 422 || apiError(t, body) != protocol.CodeNoFace || !strings.Contains(body, "image_b") {
		t.Fatalf("no face in b: %d %s", code, body)
	}
	if code, body := verify("amy.png", ""); code != 400 || !strings.Contains(body, "image_b") {
		t.Fatalf("b missing: %d %s", code, body)
	}
	if objs, _ := e.in.List(context.Background(), ""); len(objs) != 0 {
		t.Fatalf("verify left %d uploads in the input store", len(objs))
	}
}

// The binary export is the same gallery, re-importable, and refused when
// damaged.
func TestGalleryBinaryExportImport(t *testing.T) {
	e := realGalleryEnv(t, map[string]int{"amy": 2, "penny": 1})
	code, bin := e.send("GET", "/v1/gallery?format=binary", "", nil)
	if code != 200 || !gallery.IsBinary([]byte(bin)) {
		t.Fatalf("binary export: %d (%d bytes)", code, len(bin))
	}
	if code, body := e.send("GET", "/v1/gallery?format=xml", "", nil); code != 400 || apiError(t, body) != "bad_format" {
		t.Fatalf("unknown format: %d %s", code, body)
	}
	before := e.storedJSON()
	if code, body := e.send("PUT", "/v1/gallery", "application/octet-stream", []byte(bin)); code != 200 || body != `{"imported":2,"replaced":true,"subjects":2}` {
		t.Fatalf("binary import: %d %s", code, body)
	}
	if after := e.storedJSON(); after != before {
		t.Fatalf("binary round trip changed the gallery:\n%s\n%s", before, after)
	}
	broken := []byte(bin)
	broken[len(broken)/2] ^= 0xff
	if code, body := e.send("PUT", "/v1/gallery", "application/octet-stream", broken); code != 400 || !strings.Contains(body, "checksum") {
		t.Fatalf("damaged binary import: %d %s", code, body)
	}
}

// Two web tiers on one output store enroll at once: every enrollment lands,
// both tiers list the same people, and a face one tier deleted is a 404 on the
// other.
func TestTwoWebTiersEnrollAtOnce(t *testing.T) {
	a := newEnv(t, webtier.Limits{})
	b := newEnv(t, webtier.Limits{}, func(o *webtier.Options) { o.Outputs = a.out })
	var err error
	if b.adminKey, _, err = apikeys.NewStore(a.out, apikeys.Options{}).Create(context.Background(), apikeys.Admin, "b", 1e6, 1e6); err != nil {
		t.Fatal(err)
	}
	const per = 12
	var wg sync.WaitGroup
	for k, e := range []*env{a, b} {
		for i := range per {
			wg.Go(func() {
				name := fmt.Sprintf("p%d", i%4)
				if code, body, _ := e.do("POST", "/v1/subjects/"+name+"/faces", "image", fmt.Sprintf("t%d-%d.png", k, i), pngBytes(t, 8, 8)); code != 201 {
					t.Errorf("tier %d enroll %d: %d %s", k, i, code, body)
				}
			})
		}
	}
	wg.Wait()
	if g := a.storedGallery(); g.FaceTotal() != 2*per || g.Len() != 4 {
		t.Fatalf("%d faces of %d subjects stored, want %d of 4", g.FaceTotal(), g.Len(), 2*per)
	}
	_, la, _ := a.do("GET", "/v1/subjects", "-", "", nil)
	_, lb, _ := b.do("GET", "/v1/subjects", "-", "", nil)
	if la != lb || !strings.Contains(la, `{"name":"p0","faces":6}`) {
		t.Fatalf("tiers disagree:\n%s\n%s", la, lb)
	}
	_, body, _ := a.do("GET", "/v1/subjects/p1/faces", "-", "", nil)
	var fl struct{ Faces []gallery.FaceInfo }
	if json.Unmarshal([]byte(body), &fl) != nil || len(fl.Faces) != 6 {
		t.Fatalf("faces of p1: %s", body)
	}
	id := fl.Faces[0].ID
	if code, _, _ := a.do("DELETE", "/v1/subjects/p1/faces/"+id, "-", "", nil); code != 204 {
		t.Fatalf("delete on a: %d", code)
	}
	if code, body, _ := b.do("DELETE", "/v1/subjects/p1/faces/"+id, "-", "", nil); code != 404 || !strings.Contains(body, "no_face") {
		t.Fatalf("second delete on b: %d %s", code, body)
	}
}
