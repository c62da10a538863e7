package webtier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
)

// faceIDParam reads and checks the {id} of a face route.
func faceIDParam(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if id == "" || len(id) > 64 || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != "" {
		return "", errf(fiber.StatusBadRequest, "bad_face_id", "face id %q: want 1..64 letters, digits, - or _", id)
	}
	return id, nil
}

// subjectFaces reads the {name} parameter and that subject's faces from the
// shared gallery: 404 for a subject nobody enrolled.
func (s *Server) subjectFaces(c *fiber.Ctx) (string, []gallery.FaceInfo, error) {
	name, err := s.subjectParam(c)
	if err != nil {
		return "", nil, err
	}
	g, err := s.currentGallery(c.UserContext())
	if err != nil {
		return "", nil, err
	}
	faces, found := g.Faces(name)
	if !found {
		return "", nil, errf(fiber.StatusNotFound, "no_subject", "no subject %q is enrolled", name)
	}
	return name, faces, nil
}

// listFaces is GET /v1/subjects/{name}/faces: {faces:[{id, box, created}]}.
func (s *Server) listFaces(c *fiber.Ctx) error {
	name, faces, err := s.subjectFaces(c)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"subject": name, "faces": faces})
}

// deleteFace is DELETE /v1/subjects/{name}/faces/{id}: 204, or 404 for an
// unknown subject or id. The subject goes with its last face.
func (s *Server) deleteFace(c *fiber.Ctx) error {
	name, err := s.subjectParam(c)
	if err != nil {
		return err
	}
	id, err := faceIDParam(c)
	if err != nil {
		return err
	}
	if _, err := s.applyEdit(c.UserContext(), gallery.Edit{Op: gallery.OpRemoveFace, Subject: name, FaceID: id}); err != nil {
		return err
	}
	s.dropThumbnails(c.UserContext(), []string{id})
	return c.SendStatus(fiber.StatusNoContent)
}

// MaxSubjectsPage is the largest ?limit= on GET /v1/subjects.
const MaxSubjectsPage = 1000

// SubjectsPage is the JSON of GET /v1/subjects.
type SubjectsPage struct {
	Subjects []Subject `json:"subjects"`
	// Next is the after= of the next page; absent on the last one.
	Next string `json:"next,omitempty"`
}

// listSubjects is GET /v1/subjects[?limit=N&after=NAME]: subjects sorted by
// name, at most limit of them (all without limit), from the first name after
// after.
func (s *Server) listSubjects(c *fiber.Ctx) error {
	limit := 0
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSubjectsPage {
			return errf(fiber.StatusBadRequest, "bad_limit", "limit %q: want a whole number from 1 to %d", v, MaxSubjectsPage)
		}
		limit = n
	}
	after := c.Query("after")
	g, err := s.currentGallery(c.UserContext())
	if err != nil {
		return err
	}
	names := g.Names()
	if after != "" {
		names = names[sort.SearchStrings(names, after):]
		if len(names) > 0 && names[0] == after {
			names = names[1:]
		}
	}
	page := SubjectsPage{Subjects: []Subject{}}
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		page.Next = names[limit-1]
	}
	for _, n := range names {
		page.Subjects = append(page.Subjects, Subject{Name: n, Faces: g.FaceCount(n)})
	}
	return c.JSON(page)
}

// RenameRequest is the body of PATCH /v1/subjects/{name}.
type RenameRequest struct {
	Name string `json:"name"`
}

// renameSubject is PATCH /v1/subjects/{name} {"name": "new"}: renames the
// subject, merging its faces into new when new is already enrolled.
func (s *Server) renameSubject(c *fiber.Ctx) error {
	from, err := s.subjectParam(c)
	if err != nil {
		return err
	}
	body, done, err := s.smallBody(c)
	if err != nil {
		return err
	}
	defer done()
	var req RenameRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errf(fiber.StatusBadRequest, "bad_json", `send {"name": "<new name>"} as JSON: %v`, err)
	}
	if err := validSubject(req.Name); err != nil {
		return errf(fiber.StatusBadRequest, "bad_subject", "new name %q: %v", req.Name, err)
	}
	out, err := s.applyEdit(c.UserContext(), gallery.Edit{Op: gallery.OpRename, Subject: from, To: req.Name})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"subject": req.Name, "faces": out.Faces, "merged": out.Merged})
}

// exportGallery is GET /v1/gallery: the shared gallery in the versioned JSON
// format `facefleet enroll` writes (?format=binary: the binary format, a
// quarter of the size and quick to load, for large galleries).
func (s *Server) exportGallery(c *fiber.Ctx) error {
	format := c.Query("format", "json")
	if format != "json" && format != "binary" {
		return errf(fiber.StatusBadRequest, "bad_format", "format %q: want json or binary", format)
	}
	g, err := s.currentGallery(c.UserContext())
	if err != nil {
		return err
	}
	if format == "binary" {
		data, err := g.MarshalBinary()
		if err != nil {
			return errf(fiber.StatusInternalServerError, "internal", "encode the gallery: %v", err)
		}
		c.Set(fiber.HeaderContentType, "application/octet-stream")
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="gallery.bin"`)
		return c.Send(data)
	}
	data, err := g.Marshal()
	if err != nil {
		return errf(fiber.StatusInternalServerError, "internal", "encode the gallery: %v", err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="gallery.json"`)
	return c.Send(data)
}

// importGallery is PUT /v1/gallery (replace the whole gallery) and POST
// /v1/gallery (merge: each imported subject replaces the one of the same name,
// the others stay, as `facefleet up -gallery` does). Either format is taken; a
// file the gallery package rejects (not a gallery, another version, bad names
// or descriptors) is a 400 and changes nothing. Face ids are kept.
func (s *Server) importGallery(c *fiber.Ctx) error {
	body, done, err := s.smallBody(c)
	if err != nil {
		return err
	}
	defer done()
	if len(body) == 0 {
		return errf(fiber.StatusBadRequest, "bad_gallery", "send a gallery file (as written by `facefleet enroll` or GET /v1/gallery) as the request body")
	}
	in, err := gallery.Unmarshal(body)
	if err != nil {
		return errf(fiber.StatusBadRequest, "bad_gallery", "not an importable gallery: %v", err)
	}
	replace := c.Method() == fiber.MethodPut
	op := gallery.OpPut
	if replace {
		op = gallery.OpReplace
	}
	if _, err := s.applyEdit(c.UserContext(), gallery.Edit{Op: op, Faces: in}); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"subjects": s.shared.Gallery().Len(), "imported": in.Len(), "replaced": replace})
}

// recognizeQuery is POST /v1/recognize's query: ?limit=K (candidates per face,
// default 1), ?min_face=PX and ?det_threshold=S (quality filter).
type recognizeQuery struct {
	limit        int
	minFace      float64
	detThreshold float64
	filtering    bool
}

// MaxMinFace bounds ?min_face=.
const MaxMinFace = 100000

func parseRecognizeQuery(c *fiber.Ctx) (recognizeQuery, error) {
	q := recognizeQuery{limit: 1}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > protocol.MaxCandidates {
			return q, errf(fiber.StatusBadRequest, "bad_limit", "limit %q: want a whole number from 1 to %d", v, protocol.MaxCandidates)
		}
		q.limit = n
	}
	if v := c.Query("min_face"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= MaxMinFace) {
			return q, errf(fiber.StatusBadRequest, "bad_min_face", "min_face %q: want pixels from 0 to %d", v, MaxMinFace)
		}
		q.minFace, q.filtering = f, true
	}
	if v := c.Query("det_threshold"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return q, errf(fiber.StatusBadRequest, "bad_det_threshold", "det_threshold %q: want a detection score from 0 to 1", v)
		}
		q.detThreshold, q.filtering = f, true
	}
	return q, nil
}

// filter leaves out faces whose box's shorter side is under min_face pixels or
// whose detection score is under det_threshold, and names the image after the
// largest face left (NoFace when none is).
func (q recognizeQuery) filter(r *protocol.Response) {
	if !q.filtering {
		return
	}
	kept := r.Faces[:0:0]
	for _, f := range r.Faces {
		if min(f.Box.W, f.Box.H) >= q.minFace && f.Score >= q.detThreshold {
			kept = append(kept, f)
		}
	}
	r.Faces = kept
	switch big := largest(kept); {
	case big == nil:
		r.Name = "NoFace"
	case big.Subject == "":
		r.Name = "Unknown"
	default:
		r.Name = big.Subject
	}
}

// tempKey is an input-store key for an upload that is not a course request
// (detect, verify): random, so it never replaces a course upload's input or
// result, and cut to the key limit on a character boundary.
func tempKey(prefix, name string) string {
	var b [6]byte
	_, _ = randRead(b[:])
	key := fmt.Sprintf("%s-%x-%s", prefix, b, name)
	for len(key) > 200 {
		_, size := utf8.DecodeLastRuneInString(key)
		key = key[:len(key)-size]
	}
	return key
}

// describeTemp runs one app-tier request on an upload under a temporary key and
// deletes the upload afterwards.
func (s *Server) describeTemp(ctx context.Context, up *upload, prefix string, kind protocol.Kind, gone func() bool) (*answer, error) {
	key := tempKey(prefix, up.name)
	a, err := s.roundTrip(ctx, up, key, kind, gone)
	if derr := s.o.Inputs.Delete(context.WithoutCancel(ctx), key); derr != nil {
		s.log.Warn("could not delete a temporary upload", "key", key, "err", derr)
	}
	return a, err
}

// DetectResult is the JSON of POST /v1/detect.
type DetectResult struct {
	Width  int            `json:"width"`
	Height int            `json:"height"`
	Faces  []DetectedFace `json:"faces"`
}

// DetectedFace is one face found by POST /v1/detect.
type DetectedFace struct {
	Box       protocol.Box     `json:"box"`
	Score     float64          `json:"score"`
	Landmarks []protocol.Point `json:"landmarks"`
}

// detect is POST /v1/detect: every face's box, score and 68 landmarks, found on
// the app tier, without recognition.
func (s *Server) detect(c *fiber.Ctx) error {
	up, err := s.readImage(c, "image")
	if err != nil {
		return err
	}
	defer up.free()
	a, err := s.describeTemp(c.UserContext(), up, "detect", protocol.Detect, clientGone(c))
	if err != nil {
		return err
	}
	s.observe(a)
	out := DetectResult{Width: a.Width, Height: a.Height, Faces: make([]DetectedFace, 0, len(a.Faces))}
	for _, f := range a.Faces {
		lm := f.Landmarks
		if lm == nil {
			lm = []protocol.Point{}
		}
		out.Faces = append(out.Faces, DetectedFace{Box: f.Box, Score: f.Score, Landmarks: lm})
	}
	return c.JSON(out)
}

// VerifyResult is the JSON of POST /v1/verify.
type VerifyResult struct {
	Match     bool    `json:"match"`
	Distance  float64 `json:"distance"`
	Threshold float64 `json:"threshold"`
	Faces     struct {
		A struct {
			Box protocol.Box `json:"box"`
		} `json:"a"`
		B struct {
			Box protocol.Box `json:"box"`
		} `json:"b"`
	} `json:"faces"`
}

// verify is POST /v1/verify: are the largest faces of image_a and image_b the
// same person? Both descriptors come from the app tier (two describe requests
// at once); 422 when either image has no face.
func (s *Server) verify(c *fiber.Ctx) error {
	ups, err := s.readImages(c, "image_a", "image_b")
	if err != nil {
		return err
	}
	ua, ub := ups[0], ups[1]
	defer ua.free()
	defer ub.free()
	ctx, gone := c.UserContext(), clientGone(c)
	var (
		wg     sync.WaitGroup
		aa, ab *answer
		ea, eb error
	)
	wg.Go(func() { aa, ea = s.describeTemp(ctx, ua, "verify", protocol.Describe, gone) })
	wg.Go(func() { ab, eb = s.describeTemp(ctx, ub, "verify", protocol.Describe, gone) })
	wg.Wait()
	for _, e := range []struct {
		field string
		err   error
	}{{"image_a", ea}, {"image_b", eb}} {
		if e.err == nil {
			continue
		}
		var he *httpError
		if errors.As(e.err, &he) {
			return &httpError{status: he.status, code: he.code, msg: e.field + ": " + he.msg, retryAfter: he.retryAfter}
		}
		return e.err
	}
	if len(aa.Descriptor) == 0 || len(aa.Descriptor) != len(ab.Descriptor) {
		return errf(fiber.StatusBadGateway, "bad_answer", "the app tier answered descriptors of %d and %d values", len(aa.Descriptor), len(ab.Descriptor))
	}
	var sum float64
	for i := range aa.Descriptor {
		d := float64(aa.Descriptor[i] - ab.Descriptor[i])
		sum += d * d
	}
	out := VerifyResult{Distance: math.Sqrt(sum), Threshold: s.o.Threshold}
	if out.Threshold <= 0 {
		out.Threshold = gallery.DefaultThreshold
	}
	out.Match = out.Distance <= out.Threshold
	if f := largest(aa.Faces); f != nil {
		out.Faces.A.Box = f.Box
	}
	if f := largest(ab.Faces); f != nil {
		out.Faces.B.Box = f.Box
	}
	return c.JSON(out)
}
