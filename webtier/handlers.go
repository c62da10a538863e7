package webtier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/engine/imagefmt"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
)

// httpError is an error with the status to answer.
type httpError struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration
}

func (e *httpError) Error() string { return e.msg }

func errf(status int, code, format string, a ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

func (s *Server) routes() {
	a := s.app
	a.Use(func(c *fiber.Ctx) error {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		start := time.Now()
		err := c.Next()
		if n := c.Request().Header.ContentLength(); n != 0 && n != -2 && c.Locals(bodyConsumed) == nil && !s.lingerDrain(c) {
			c.Context().Response.SetConnectionClose()
		}
		status := c.Response().StatusCode()
		if err != nil {
			var he *httpError
			var fe *fiber.Error
			switch {
			case errors.As(err, &he):
				status = he.status
			case errors.As(err, &fe):
				status = fe.Code
			default:
				status = fiber.StatusInternalServerError
			}
		}
		route := c.Route().Path
		s.m.http.inc(c.Method(), route, strconv.Itoa(status))
		if route == "/" && c.Method() == fiber.MethodPost || strings.HasPrefix(route, "/v1/recognize") {
			s.m.latency.observe(time.Since(start).Seconds())
		}
		return err
	})
	a.Use(s.securityHeaders)
	a.Get("/", s.page)
	a.Post("/", s.guard(apikeys.Recognize, s.o.Auth.CourseNeedsKey), s.classify)
	a.Post("/v1/recognize", s.guard(apikeys.Recognize, s.o.Auth.RecognizeNeedsKey), s.recognize)
	a.Post("/v1/detect", s.guard(apikeys.Recognize, s.o.Auth.RecognizeNeedsKey), s.detect)
	a.Post("/v1/verify", s.guard(apikeys.Recognize, s.o.Auth.RecognizeNeedsKey), s.verify)
	a.Put("/v1/subjects/:name/faces", s.admin(), s.enroll)
	a.Post("/v1/subjects/:name/faces", s.admin(), s.enroll)
	a.Get("/v1/subjects", s.admin(), s.listSubjects)
	a.Delete("/v1/subjects/:name", s.admin(), s.deleteSubject)
	a.Patch("/v1/subjects/:name", s.admin(), s.renameSubject)
	a.Get("/v1/subjects/:name/faces", s.admin(), s.listFaces)
	a.Delete("/v1/subjects/:name/faces/:id", s.admin(), s.deleteFace)
	a.Get("/v1/gallery", s.admin(), s.exportGallery)
	a.Put("/v1/gallery", s.admin(), s.importGallery)
	a.Post("/v1/gallery", s.admin(), s.importGallery)
	a.Get("/v1/openapi.json", s.openAPI)
	s.uiRoutes() // ui.go: the page's files, face thumbnails, the fleet's history
	a.Get("/v1/status", s.status)
	a.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok\n") })
	a.Get("/metrics", s.metrics)
}

// errorHandler answers JSON on /v1 routes and plain text elsewhere (the course's
// generator prints the body).
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	he := &httpError{status: fiber.StatusInternalServerError, code: "internal", msg: err.Error()}
	var fe *fiber.Error
	switch {
	case errors.As(err, &he):
	case errors.As(err, &fe):
		he = &httpError{status: fe.Code, code: strings.ToLower(strings.ReplaceAll(http.StatusText(fe.Code), " ", "_")), msg: fe.Message}
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			he.msg = fmt.Sprintf("request body is over the %d-byte limit", s.o.Limits.MaxBodyBytes)
		}
	}
	if he.status >= 500 && he.status != fiber.StatusServiceUnavailable && he.status != fiber.StatusGatewayTimeout {
		s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "status", he.status, "err", he.msg)
	}
	if he.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((he.retryAfter+time.Second-1)/time.Second)))
	}
	c.Status(he.status)
	if strings.HasPrefix(c.Path(), "/v1/") {
		return c.JSON(fiber.Map{"error": fiber.Map{"code": he.code, "message": he.msg}})
	}
	return c.SendString(he.msg + "\n")
}

// upload is a checked image from a multipart field.
type upload struct {
	name string
	data []byte
	mime string
	// free drops the bytes and returns their budget (idempotent): called as
	// soon as the image is in the input store, and by the handler's defer.
	free func()
}

// bodyConsumed marks (in Locals) a request whose body the handler read to the
// end; any other request with a body closes its connection after the answer,
// since the unread rest of the body cannot be told from the next request.
const bodyConsumed = "facefleet.body-consumed"

// lingerTime bounds how long an unread body is read and discarded after a
// refusal (413, 503, 400), so that the caller, still sending, reads the answer
// instead of a connection reset. At most twice the body limit is discarded (no
// memory: only bandwidth); a longer body closes the connection.
const lingerTime = 10 * time.Second

// lingerDrain discards the rest of the request body and reports whether it
// reached its end.
func (s *Server) lingerDrain(c *fiber.Ctx) bool {
	lingerBytes := 2 * int64(s.o.Limits.MaxBodyBytes)
	body := c.Context().RequestBodyStream()
	if body == nil {
		return true
	}
	if conn := c.Context().Conn(); conn != nil {
		_ = conn.SetReadDeadline(time.Now().Add(lingerTime))
	}
	n, err := io.CopyN(io.Discard, body, lingerBytes+1)
	return err == io.EOF && n <= lingerBytes
}

// readImage reads the multipart field straight from the request body stream into
// one buffer, after charging the upload's bytes to the in-flight budget.
func (s *Server) readImage(c *fiber.Ctx, field string) (*upload, error) {
	ups, err := s.readImages(c, field)
	if err != nil {
		return nil, err
	}
	return ups[0], nil
}

// readImages reads and checks one image from each of the multipart fields, in
// that order; they share one byte budget, returned by any upload's free.
func (s *Server) readImages(c *fiber.Ctx, fields ...string) ([]*upload, error) {
	field := strings.Join(fields, `" and "`)
	missing := errf(fiber.StatusBadRequest, "missing_file", "send the image as multipart/form-data field %q", field)
	mt, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, missing
	}
	max, tooLarge := s.bodyLimit()
	charge, err := s.chargeBody(c)
	if err != nil {
		return nil, err
	}
	ups := make([]*upload, len(fields))
	for i := range ups {
		ups[i] = &upload{}
	}
	// Each upload drops its own bytes; the budget goes back with the last.
	var mu sync.Mutex
	left := len(ups)
	for _, u := range ups {
		var once sync.Once
		u.free = func() {
			once.Do(func() {
				mu.Lock()
				u.data = nil
				left--
				last := left == 0
				mu.Unlock()
				if last {
					s.uploadBytes.give(charge)
				}
			})
		}
	}
	ok := false
	defer func() {
		if !ok {
			for _, u := range ups {
				u.free()
			}
		}
	}()

	var body io.Reader = c.Context().RequestBodyStream()
	if body == nil {
		body = bytes.NewReader(c.Body())
	}
	lr := &io.LimitedReader{R: body, N: max + 1}
	mr := multipart.NewReader(lr, params["boundary"])
	raws := make([]string, len(fields))
	got := 0
	for got < len(fields) {
		p, err := mr.NextPart()
		if lr.N <= 0 {
			return nil, tooLarge
		}
		if errors.Is(err, io.EOF) {
			c.Locals(bodyConsumed, true)
			for i, u := range ups {
				if u.data == nil {
					return nil, errf(fiber.StatusBadRequest, "missing_file", "send the image as multipart/form-data field %q", fields[i])
				}
			}
			return nil, missing
		}
		if err != nil {
			return nil, errf(fiber.StatusBadRequest, "bad_upload", "cannot read the multipart body: %v", err)
		}
		fi := slices.Index(fields, p.FormName())
		if fi < 0 || ups[fi].data != nil {
			continue // NextPart skips the rest of this part
		}
		field := fields[fi]
		_, dp, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		raws[fi] = dp["filename"]
		var buf bytes.Buffer
		if cl := c.Request().Header.ContentLength(); cl > 0 {
			buf.Grow(cl) // the part is smaller than the body: one allocation
		}
		if _, err := buf.ReadFrom(p); err != nil {
			if lr.N <= 0 {
				return nil, tooLarge
			}
			return nil, errf(fiber.StatusBadRequest, "bad_upload", "cannot read field %q: %v", field, err)
		}
		ups[fi].data = buf.Bytes()
		if ups[fi].data == nil {
			ups[fi].data = []byte{} // present but empty: reported below
		}
		got++
	}
	// Read the rest (other fields, the closing boundary) so that the
	// connection can serve the next request.
	if _, err := io.Copy(io.Discard, lr); err == nil && lr.N > 0 {
		c.Locals(bodyConsumed, true)
	}
	if lr.N <= 0 {
		return nil, tooLarge
	}
	for fi, up := range ups {
		field, raw := fields[fi], raws[fi]
		name := raw
		if i := strings.LastIndexAny(name, `/\`); i >= 0 {
			name = name[i+1:] // browsers on Windows may send a full path
		}
		if err := protocol.ValidKey(name); err != nil {
			return nil, errf(fiber.StatusBadRequest, "bad_filename", "field %q: file name %q: %v", field, raw, err)
		}
		up.name = name
		if len(up.data) == 0 {
			return nil, errf(fiber.StatusBadRequest, "empty_file", "field %q holds an empty file", field)
		}
		// The engine's own list of formats, by magic bytes: what passes here, a
		// worker can decode.
		format, isImage := imagefmt.Sniff(up.data)
		if !isImage {
			return nil, errf(fiber.StatusUnsupportedMediaType, "not_an_image", "%q is not an image we read (it looks like %s); send %s", name, http.DetectContentType(up.data), imagefmt.List())
		}
		up.mime = format.MIME
		cfg, err := imagefmt.DecodeConfig(format, up.data)
		if err != nil {
			return nil, errf(fiber.StatusUnprocessableEntity, protocol.CodeBadImage, "%q cannot be decoded as %s: %v", name, up.mime, err)
		}
		if cfg.Width <= 0 || cfg.Height <= 0 {
			return nil, errf(fiber.StatusUnprocessableEntity, protocol.CodeBadImage, "%q declares an empty %dx%d image", name, cfg.Width, cfg.Height)
		}
		if px := cfg.Width * cfg.Height; px > s.o.Limits.MaxPixels || px/cfg.Width != cfg.Height {
			return nil, errf(fiber.StatusRequestEntityTooLarge, "too_many_pixels", "%q is %dx%d pixels, over the %d-pixel limit", name, cfg.Width, cfg.Height, s.o.Limits.MaxPixels)
		}
	}
	ok = true
	return ups, nil
}

// answer is a response plus the web tier's own timing.
type answer struct {
	protocol.Response
	total time.Duration
	input time.Duration // storing the upload in the input store
}

// roundTrip stores the image, sends the request and waits for its answer.
// gone reports whether the caller went away (nil: never checked).
func (s *Server) roundTrip(ctx context.Context, up *upload, key string, kind protocol.Kind, gone func() bool, opts ...func(*protocol.Request)) (*answer, error) {
	start := time.Now()
	id, ch, ok := s.register()
	if !ok {
		s.m.rejected.Add(1)
		he := errf(fiber.StatusServiceUnavailable, "busy", "%d requests are already waiting; retry later", s.o.Limits.MaxPending)
		he.retryAfter = s.o.Limits.RetryAfter
		return nil, he
	}
	etag, err := s.o.Inputs.Put(ctx, key, up.data, up.mime)
	up.free() // stored: the bytes are no longer needed while we wait
	input := time.Since(start)
	if err != nil {
		s.forget(id, true)
		if errors.Is(err, blob.ErrInvalidKey) { // the client's name, not the store, is at fault
			return nil, errf(fiber.StatusBadRequest, "bad_filename", "the input store refuses the name %q: %v; rename the file", key, err)
		}
		return nil, errf(fiber.StatusServiceUnavailable, "store_unavailable", "cannot store %q in the input store: %v", key, err)
	}
	req := protocol.Request{ID: id, Key: key, ETag: etag, Kind: kind, Gallery: s.galleryPosition(ctx), SentAt: time.Now().UTC(), ReplyTo: s.o.ReplyTo}
	for _, o := range opts {
		o(&req)
	}
	body, err := protocol.EncodeRequest(req)
	if err != nil {
		s.forget(id, true)
		return nil, errf(fiber.StatusBadRequest, "bad_request", "%v", err)
	}
	if _, err := s.o.Requests.Send(ctx, body); err != nil {
		s.forget(id, true)
		if errors.Is(err, queue.ErrTooLarge) {
			return nil, errf(fiber.StatusBadRequest, "bad_request", "request message too large (shorten the file name): %v", err)
		}
		return nil, errf(fiber.StatusServiceUnavailable, "queue_unavailable", "cannot enqueue %q: %v", key, err)
	}
	if s.o.Nudge != nil {
		s.o.Nudge()
	}
	t := time.NewTimer(s.o.Limits.RequestTimeout)
	defer t.Stop()
	var check <-chan time.Time
	if gone != nil {
		tk := time.NewTicker(s.o.Limits.ClientCheckEvery)
		defer tk.Stop()
		check = tk.C
	}
	for {
		select {
		case <-check:
			if !gone() {
				continue
			}
			s.forget(id, true)
			s.log.Info("caller went away; its request stays queued and its result will land in the output store", "id", id, "key", key)
			return nil, errf(statusClientClosed, "client_closed", "the caller closed the connection")
		case r := <-ch:
			a := &answer{Response: r, total: time.Since(start), input: input}
			if r.Error != nil {
				return a, responseError(r.Error)
			}
			return a, nil
		case <-t.C:
			s.forget(id, true)
			select {
			case r := <-ch: // the answer raced the timer: use it
				a := &answer{Response: r, total: time.Since(start), input: input}
				if r.Error != nil {
					return a, responseError(r.Error)
				}
				return a, nil
			default:
			}
			s.m.timeouts.Add(1)
			return nil, errf(fiber.StatusGatewayTimeout, "timeout", "no answer for %q within %s; the request stays queued and its result will land in the output store", key, s.o.Limits.RequestTimeout)
		case <-ctx.Done():
			s.forget(id, true)
			return nil, errf(fiber.StatusServiceUnavailable, "shutting_down", "the web tier is shutting down")
		}
	}
}

// statusClientClosed is logged for a caller that went away (nginx's 499); no
// one reads it.
const statusClientClosed = 499

// clientGone reports whether c's caller closed its connection.
func clientGone(c *fiber.Ctx) func() bool {
	conn := c.Context().Conn()
	return func() bool { return peerClosed(conn) }
}

// responseError maps a worker's permanent error to an HTTP status.
func responseError(e *protocol.Error) *httpError {
	status := fiber.StatusInternalServerError
	switch e.Code {
	case protocol.CodeBadImage, protocol.CodeNoFace:
		status = fiber.StatusUnprocessableEntity
	case protocol.CodeSuperseded:
		status = fiber.StatusConflict
	case protocol.CodeFailed:
		status = fiber.StatusBadGateway
	case protocol.CodeBadRequest:
		status = fiber.StatusBadRequest
	}
	return &httpError{status: status, code: e.Code, msg: e.Message}
}

// classify is the course contract: POST / with inputFile -> "<stem>:<name>".
func (s *Server) classify(c *fiber.Ctx) error {
	up, err := s.readImage(c, "inputFile")
	if err != nil {
		return err
	}
	defer up.free()
	a, err := s.roundTrip(c.UserContext(), up, up.name, protocol.Classify, clientGone(c))
	if err != nil {
		return err
	}
	s.observe(a)
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	return c.SendString(a.Stem + ":" + a.Name)
}

// RecognizeResult is the JSON of POST /v1/recognize.
type RecognizeResult struct {
	ID     string          `json:"id"`
	Key    string          `json:"key"`
	Name   string          `json:"name"`
	Width  int             `json:"width"`
	Height int             `json:"height"`
	Faces  []protocol.Face `json:"faces"`
	// Timings in milliseconds: queued and inference as the worker measured them,
	// total as the web tier did, overhead = total - queued - inference.
	Timings struct {
		QueuedMS    float64 `json:"queued_ms"`
		InferenceMS float64 `json:"inference_ms"`
		TotalMS     float64 `json:"total_ms"`
		OverheadMS  float64 `json:"overhead_ms"`
		// InputMS is the web tier's write of the upload to the input store;
		// FetchMS and StoreMS are the worker's input fetch and result writes
		// (all part of the overhead).
		InputMS float64 `json:"input_ms"`
		FetchMS float64 `json:"fetch_ms"`
		StoreMS float64 `json:"store_ms"`
	} `json:"timings"`
	Worker string `json:"worker,omitempty"`
}

func (s *Server) recognize(c *fiber.Ctx) error {
	q, err := parseRecognizeQuery(c)
	if err != nil {
		return err
	}
	up, err := s.readImage(c, "image")
	if err != nil {
		return err
	}
	defer up.free()
	a, err := s.roundTrip(c.UserContext(), up, up.name, protocol.Recognize, clientGone(c), func(r *protocol.Request) { r.Limit = q.limit })
	if err != nil {
		return err
	}
	q.filter(&a.Response)
	s.observe(a)
	out := RecognizeResult{ID: a.ID, Key: a.Key, Name: a.Name, Width: a.Width, Height: a.Height, Faces: a.Faces, Worker: a.Worker}
	if out.Faces == nil {
		out.Faces = []protocol.Face{}
	}
	out.Timings.QueuedMS = a.Timings.QueuedMS
	out.Timings.InferenceMS = a.Timings.InferenceMS
	out.Timings.TotalMS = float64(a.total.Microseconds()) / 1000
	out.Timings.OverheadMS = out.Timings.TotalMS - a.Timings.QueuedMS - a.Timings.InferenceMS
	out.Timings.InputMS = float64(a.input.Microseconds()) / 1000
	out.Timings.FetchMS, out.Timings.StoreMS = a.Timings.FetchMS, a.Timings.StoreMS
	return c.JSON(out)
}

func (s *Server) observe(a *answer) {
	over := a.total.Seconds() - (a.Timings.QueuedMS+a.Timings.InferenceMS)/1000
	s.m.overhead.observe(max(over, 0))
}

// validSubject checks an enrollment name (the gallery owns the rule).
func validSubject(name string) error { return gallery.ValidName(name) }

func (s *Server) subjectParam(c *fiber.Ctx) (string, error) {
	name, err := urlUnescape(c.Params("name"))
	if err == nil {
		err = validSubject(name)
	}
	if err != nil {
		return "", errf(fiber.StatusBadRequest, "bad_subject", "subject %q: %v", c.Params("name"), err)
	}
	return strings.Clone(name), nil // Fiber reuses the request's buffer
}

// enroll describes the largest face of the upload in the app tier and adds it to
// the shared gallery; workers pick the new position up from the next request.
func (s *Server) enroll(c *fiber.Ctx) error {
	name, err := s.subjectParam(c)
	if err != nil {
		return err
	}
	up, err := s.readImage(c, "image")
	if err != nil {
		return err
	}
	defer up.free()
	var b [6]byte
	_, _ = randRead(b[:])
	// The key only has to be unique and valid: cut on a character boundary.
	key := cutUTF8(fmt.Sprintf("enroll-%x-%s", b, up.name), protocol.MaxKeyBytes)
	ctx := c.UserContext()
	a, err := s.roundTrip(ctx, up, key, protocol.Describe, clientGone(c))
	var img []byte // for the face's thumbnail (thumbs.go); up's bytes are freed once stored
	if err == nil {
		img = s.readBack(ctx, key)
	}
	if derr := s.o.Inputs.Delete(ctx, key); derr != nil {
		s.log.Warn("could not delete an enrollment upload", "key", key, "err", derr)
	}
	if err != nil {
		return err
	}
	box := protocol.Box{}
	if f := largest(a.Faces); f != nil {
		box = f.Box
	}
	add := gallery.New()
	id, err := add.AddFace(name, a.Descriptor, &gallery.Box{X: box.X, Y: box.Y, W: box.W, H: box.H})
	if err != nil {
		return errf(fiber.StatusUnprocessableEntity, "bad_descriptor", "cannot enroll: %v", err)
	}
	out, err := s.applyEdit(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: add})
	if err != nil {
		return err
	}
	s.storeThumbnail(ctx, name, id, img, box)
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"subject": name, "faces": out.Faces, "box": box, "id": id})
}

// cutUTF8 shortens s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// largest is the API face the course answer and enrollment are about: the
// gallery's rule (gallery.LargestIndex), applied to faces without descriptors.
func largest(fs []protocol.Face) *protocol.Face {
	i := gallery.LargestIndex(len(fs), func(i int) (float64, float64, bool) { return fs[i].Box.W, fs[i].Box.H, true })
	if i < 0 {
		return nil
	}
	return &fs[i]
}

func (s *Server) deleteSubject(c *fiber.Ctx) error {
	name, err := s.subjectParam(c)
	if err != nil {
		return err
	}
	out, err := s.applyEdit(c.UserContext(), gallery.Edit{Op: gallery.OpRemoveSubject, Subject: name})
	if err != nil {
		return err
	}
	s.dropThumbnails(c.UserContext(), out.Removed)
	return c.SendStatus(fiber.StatusNoContent)
}

// Status is the JSON of GET /v1/status.
type Status struct {
	Queues    map[string]*queue.Counts `json:"queues"`
	Instances map[fleet.State]int      `json:"instances,omitempty"`
	Decisions any                      `json:"decisions,omitempty"`
	Pending   int                      `json:"pending"`
	Errors    []string                 `json:"errors,omitempty"`
}

func (s *Server) collectStatus(ctx context.Context) Status {
	sn := s.backendStatus(ctx)
	st := Status{Queues: sn.queues, Instances: sn.instances, Errors: sn.errors}
	if s.decisionsAvailable() {
		d := s.scalerDecisions(sn)
		if len(d) > 10 {
			d = d[len(d)-10:]
		}
		st.Decisions = d
	}
	s.mu.Lock()
	st.Pending = len(s.pending)
	s.mu.Unlock()
	return st
}

func (s *Server) status(c *fiber.Ctx) error {
	return c.JSON(s.collectStatus(c.UserContext()))
}

// bodyLimit is MaxBodyBytes and the error for a body over it.
func (s *Server) bodyLimit() (int64, error) {
	max := int64(s.o.Limits.MaxBodyBytes)
	return max, errf(fiber.StatusRequestEntityTooLarge, "too_large", "request body is over the %d-byte limit", max)
}

// chargeBody refuses a body whose Content-Length is over MaxBodyBytes (413)
// and takes its bytes (MaxBodyBytes when chunked) from the upload byte budget
// (503 when it is spent); the caller gives them back.
func (s *Server) chargeBody(c *fiber.Ctx) (int64, error) {
	max, tooLarge := s.bodyLimit()
	cl := int64(c.Request().Header.ContentLength()) // -1: chunked
	if cl > max {
		return 0, tooLarge
	}
	charge := cl
	if cl < 0 {
		charge = max
	}
	if !s.uploadBytes.take(charge) {
		s.m.rejected.Add(1)
		he := errf(fiber.StatusServiceUnavailable, "busy", "%d bytes of uploads are being received already (limit %d); retry later", s.uploadBytes.inUse(), s.o.Limits.MaxInflightBytes)
		he.retryAfter = s.o.Limits.RetryAfter
		return 0, he
	}
	return charge, nil
}

// smallBody reads a request body that is not an image upload (a gallery file,
// a JSON document) into memory: at most MaxBodyBytes (413 beyond; bodies are
// streamed, so Fiber's BodyLimit does not stop a long one) and charged to the
// upload byte budget while the handler runs (503 when it is spent). done
// returns the bytes to the budget.
func (s *Server) smallBody(c *fiber.Ctx) (data []byte, done func(), err error) {
	max, tooLarge := s.bodyLimit()
	charge, err := s.chargeBody(c)
	if err != nil {
		return nil, nil, err
	}
	done = func() { s.uploadBytes.give(charge) }
	var r io.Reader = c.Context().RequestBodyStream()
	if r == nil {
		r = bytes.NewReader(c.Body())
	}
	data, err = io.ReadAll(io.LimitReader(r, max+1))
	switch {
	case err != nil:
		done()
		return nil, nil, errf(fiber.StatusBadRequest, "bad_body", "reading the request body: %v", err)
	case int64(len(data)) > max:
		done()
		return nil, nil, tooLarge
	}
	return data, done, nil
}
