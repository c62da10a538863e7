package webtier

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/internal/protocol"
)

// apiOp describes one served route for the OpenAPI document. openapi_test.go
// checks that this list and the routes Fiber serves are the same set.
type apiOp struct {
	method, path string // path in Fiber's syntax (":name")
	id, summary  string
	// access: "admin", "recognize" (open unless locked by the setting named in
	// lockedBy) or "" (open).
	access   string
	lockedBy func(AuthOptions) bool
	query    []apiParam
	// body: "multipart:<field>[,<field>]", "json:<schema>" or "".
	body string
	// ok is the success status and its content: "json:<schema>", "text",
	// "html" or "" (no content).
	okStatus int
	ok       string
	errors   []int
}

type apiParam struct {
	name, typ, desc string
}

// apiOps are the routes, in the order routes() registers them.
func apiOps() []apiOp {
	imageErrs := []int{400, 413, 415, 422, 429, 502, 503, 504}
	return []apiOp{
		{method: "GET", path: "/", id: "page", summary: "The page: recognize, enroll from a box, people, the fleet live", okStatus: 200, ok: "html"},
		{method: "POST", path: "/", id: "classify", summary: "The course contract: <file stem>:<name> of the largest face",
			access: "recognize", lockedBy: func(a AuthOptions) bool { return a.CourseNeedsKey },
			body: "multipart:inputFile", okStatus: 200, ok: "text", errors: append([]int{409}, imageErrs...)},
		{method: "POST", path: "/v1/recognize", id: "recognize", summary: "Every face with its box, nearest subject and distance",
			access: "recognize", lockedBy: func(a AuthOptions) bool { return a.RecognizeNeedsKey },
			query: []apiParam{{"limit", "integer", "candidates per face, nearest first (1.." + strconv.Itoa(protocol.MaxCandidates) + ", default 1)"},
				{"min_face", "number", "leave out faces whose box's shorter side is under this many pixels"},
				{"det_threshold", "number", "leave out faces whose detection score is under this (0..1; the detector keeps 0.3 and up)"}},
			body: "multipart:image", okStatus: 200, ok: "json:RecognizeResult", errors: append([]int{409}, imageErrs...)},
		{method: "POST", path: "/v1/detect", id: "detect", summary: "Every face's box, score and 68 landmarks, without recognition",
			access: "recognize", lockedBy: func(a AuthOptions) bool { return a.RecognizeNeedsKey },
			body: "multipart:image", okStatus: 200, ok: "json:DetectResult", errors: imageErrs},
		{method: "POST", path: "/v1/verify", id: "verify", summary: "Whether the largest faces of two images are the same person (422 when either has no face)",
			access: "recognize", lockedBy: func(a AuthOptions) bool { return a.RecognizeNeedsKey },
			body: "multipart:image_a,image_b", okStatus: 200, ok: "json:VerifyResult", errors: imageErrs},
		{method: "PUT", path: "/v1/subjects/:name/faces", id: "enrollPut", summary: "Enroll the largest face of the image under name (507 when the gallery is full)",
			access: "admin", body: "multipart:image", okStatus: 201, ok: "json:EnrollResult", errors: append([]int{507}, imageErrs...)},
		{method: "POST", path: "/v1/subjects/:name/faces", id: "enrollPost", summary: "Enroll the largest face of the image under name (as PUT)",
			access: "admin", body: "multipart:image", okStatus: 201, ok: "json:EnrollResult", errors: append([]int{507}, imageErrs...)},
		{method: "GET", path: "/v1/subjects", id: "listSubjects", summary: "Enrolled subjects by name, paged with limit and after",
			access: "admin", okStatus: 200, ok: "json:SubjectsPage", errors: []int{400, 503},
			query: []apiParam{{"limit", "integer", "at most this many subjects (1.." + strconv.Itoa(MaxSubjectsPage) + "; all when absent)"},
				{"after", "string", "start after this name (the previous page's next)"}}},
		{method: "DELETE", path: "/v1/subjects/:name", id: "deleteSubject", summary: "Delete every face of a subject",
			access: "admin", okStatus: 204, errors: []int{400, 404, 503}},
		{method: "GET", path: "/v1/subjects/:name/faces", id: "listFaces", summary: "A subject's faces: id, box, enrollment time",
			access: "admin", okStatus: 200, ok: "json:FacesList", errors: []int{400, 404, 503}},
		{method: "DELETE", path: "/v1/subjects/:name/faces/:id", id: "deleteFace", summary: "Delete one face by id (the subject goes with its last face)",
			access: "admin", okStatus: 204, errors: []int{400, 404, 503}},
		{method: "PATCH", path: "/v1/subjects/:name", id: "renameSubject", summary: "Rename a subject; merges into the new name when it exists",
			access: "admin", body: "json:RenameRequest", okStatus: 200, ok: "json:RenameResult", errors: []int{400, 404, 413, 503}},
		{method: "GET", path: "/v1/gallery", id: "exportGallery", summary: "The whole gallery in its versioned file format (JSON; ?format=binary: the binary format)",
			access: "admin", okStatus: 200, ok: "json:GalleryFile", errors: []int{400, 503},
			query: []apiParam{{"format", "string", "json (default) or binary (version 2: CRC-checked, about a quarter of the size)"}}},
		{method: "PUT", path: "/v1/gallery", id: "replaceGallery", summary: "Replace the gallery with the file given, JSON or binary (400 and no change for a bad or foreign-version file)",
			access: "admin", body: "json:GalleryFile", okStatus: 200, ok: "json:ImportResult", errors: []int{400, 413, 503, 507}},
		{method: "POST", path: "/v1/gallery", id: "mergeGallery", summary: "Merge the file given: its subjects replace those of the same name",
			access: "admin", body: "json:GalleryFile", okStatus: 200, ok: "json:ImportResult", errors: []int{400, 413, 503, 507}},
		{method: "GET", path: "/v1/openapi.json", id: "openapi", summary: "This document", okStatus: 200, ok: "json:"},
		{method: "GET", path: "/ui/:file", id: "pageFile", summary: "The page's script and style sheet", okStatus: 200, ok: "asset", errors: []int{404}},
		{method: "GET", path: "/v1/subjects/:name/faces/:id/thumbnail", id: "faceThumbnail",
			summary: "A 96 px crop of a face enrolled through the API (404 when none was kept)",
			access:  "admin", okStatus: 200, ok: "jpeg", errors: []int{400, 404, 503}},
		{method: "GET", path: "/v1/status/history", id: "statusHistory", summary: "The fleet's last 15 minutes for the page's charts",
			query:    []apiParam{{"since", "integer", "only samples after this Unix time in milliseconds"}},
			okStatus: 200, ok: "json:History", errors: []int{400}},
		{method: "GET", path: "/v1/status", id: "status", summary: "Queue counts, instances by state, recent scaling decisions", okStatus: 200, ok: "json:Status"},
		{method: "GET", path: "/healthz", id: "healthz", summary: "Liveness: ok", okStatus: 200, ok: "text"},
		{method: "GET", path: "/metrics", id: "metrics", summary: "Prometheus text format", okStatus: 200, ok: "text"},
	}
}

// openAPIPath turns Fiber's ":name" into OpenAPI's "{name}".
func openAPIPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			segs[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

var errorText = map[int]string{
	400: "bad input (field, file name, subject name, query or JSON)",
	401: "no API key where one is needed, or a bad one",
	403: "the key's role does not allow this route",
	404: "no such subject",
	409: "the same file name was uploaded again with other bytes (superseded)",
	413: "body or pixels over the limit",
	415: "not an image",
	422: "an image that cannot be decoded, or no face",
	429: "the key's (or address's) rate limit is reached; see Retry-After",
	502: "the request failed on every worker attempt (dead-lettered)",
	503: "busy (Retry-After), shutting down, or a store or queue is unavailable",
	504: "no answer within the request timeout",
	507: "the gallery is full (gallery.MaxFaces faces); delete faces or subjects first",
}

// OpenAPI builds the OpenAPI 3.1 document of this server's routes.
func (s *Server) OpenAPI() map[string]any {
	type m = map[string]any
	ref := func(name string) m { return m{"$ref": "#/components/schemas/" + name} }
	paths := m{}
	for _, op := range apiOps() {
		o := m{"operationId": op.id, "summary": op.summary}
		var params []any
		for _, seg := range strings.Split(op.path, "/") {
			if strings.HasPrefix(seg, ":") {
				params = append(params, m{"name": seg[1:], "in": "path", "required": true, "schema": m{"type": "string", "minLength": 1, "maxLength": 64}})
			}
		}
		for _, q := range op.query {
			params = append(params, m{"name": q.name, "in": "query", "required": false, "description": q.desc, "schema": m{"type": q.typ}})
		}
		if params != nil {
			o["parameters"] = params
		}
		keyed := []any{m{"bearerAuth": []any{}}, m{"apiKeyHeader": []any{}}}
		errs := append([]int(nil), op.errors...)
		switch {
		case op.access == "admin":
			o["security"] = keyed
			o["x-facefleet-role"] = "admin"
			errs = append(errs, 401, 403)
		case op.access != "" && op.lockedBy != nil && op.lockedBy(s.o.Auth):
			o["security"] = keyed
			o["x-facefleet-role"] = op.access
			errs = append(errs, 401, 403)
		case op.access != "":
			o["security"] = append([]any{m{}}, keyed...) // a key is optional, checked when sent
			o["x-facefleet-role"] = op.access
			errs = append(errs, 401)
		default:
			o["security"] = []any{m{}}
		}
		switch kind, arg, _ := strings.Cut(op.body, ":"); kind {
		case "multipart":
			props := m{}
			for f := range strings.SplitSeq(arg, ",") {
				props[f] = m{"type": "string", "contentMediaType": "application/octet-stream", "description": "JPEG, PNG, GIF or WebP"}
			}
			o["requestBody"] = m{"required": true, "content": m{"multipart/form-data": m{"schema": m{
				"type": "object", "required": strings.Split(arg, ","), "properties": props}}}}
		case "json":
			o["requestBody"] = m{"required": true, "content": m{"application/json": m{"schema": ref(arg)}}}
		}
		resps := m{}
		ok := m{"description": op.summary}
		switch kind, arg, _ := strings.Cut(op.ok, ":"); kind {
		case "json":
			schema := m{"type": "object"}
			if arg != "" {
				schema = ref(arg)
			}
			ok["content"] = m{"application/json": m{"schema": schema}}
		case "text":
			ok["content"] = m{"text/plain": m{"schema": m{"type": "string"}}}
		case "html":
			ok["content"] = m{"text/html": m{"schema": m{"type": "string"}}}
		case "jpeg":
			ok["content"] = m{"image/jpeg": m{"schema": m{"type": "string", "contentMediaType": "image/jpeg"}}}
		case "asset":
			ok["content"] = m{"text/javascript": m{"schema": m{"type": "string"}}, "text/css": m{"schema": m{"type": "string"}}}
		}
		resps[strconv.Itoa(op.okStatus)] = ok
		errType := "application/json"
		errSchema := ref("Error")
		if !strings.HasPrefix(op.path, "/v1/") {
			errType, errSchema = "text/plain", m{"type": "string"}
		}
		for _, st := range errs {
			r := m{"description": errorText[st], "content": m{errType: m{"schema": errSchema}}}
			if st == 429 || st == 503 {
				r["headers"] = m{"Retry-After": m{"description": "seconds to wait", "schema": m{"type": "integer"}}}
			}
			resps[strconv.Itoa(st)] = r
		}
		o["responses"] = resps
		p := openAPIPath(op.path)
		if paths[p] == nil {
			paths[p] = m{}
		}
		paths[p].(m)[strings.ToLower(op.method)] = o
	}
	num := m{"type": "number"}
	str := m{"type": "string"}
	integer := m{"type": "integer"}
	box := m{"type": "object", "properties": m{"x": num, "y": num, "w": num, "h": num}}
	obj := func(props m, required ...string) m {
		o := m{"type": "object", "properties": props}
		if required != nil {
			o["required"] = required
		}
		return o
	}
	schemas := m{
		"Error": obj(m{"error": obj(m{"code": str, "message": str}, "code", "message")}, "error"),
		"Box":   box,
		"Face": obj(m{"box": ref("Box"), "subject": str, "distance": num, "score": num,
			"candidates": m{"type": "array", "items": obj(m{"subject": str, "distance": num}, "subject", "distance")}}),
		"RecognizeResult": obj(m{"id": str, "key": str, "name": str, "width": integer, "height": integer,
			"faces": m{"type": "array", "items": ref("Face")}, "worker": str,
			"timings": obj(m{"queued_ms": num, "inference_ms": num, "total_ms": num, "overhead_ms": num, "input_ms": num, "fetch_ms": num, "store_ms": num})},
			"id", "name", "faces", "timings"),
		"DetectResult": obj(m{"width": integer, "height": integer, "faces": m{"type": "array", "items": obj(m{"box": ref("Box"), "score": num,
			"landmarks": m{"type": "array", "items": obj(m{"x": num, "y": num}), "minItems": 68, "maxItems": 68}}, "box", "score", "landmarks")}},
			"width", "height", "faces"),
		"VerifyResult": obj(m{"match": m{"type": "boolean"}, "distance": num, "threshold": num,
			"faces": obj(m{"a": obj(m{"box": ref("Box")}), "b": obj(m{"box": ref("Box")})})}, "match", "distance", "threshold", "faces"),
		"EnrollResult": obj(m{"subject": str, "faces": integer, "box": ref("Box"), "id": m{"type": "string", "description": "the new face's id"}}, "subject", "faces"),
		"FaceInfo":     obj(m{"id": str, "box": ref("Box"), "created": m{"type": "string", "format": "date-time"}}, "id"),
		"FacesList":    obj(m{"subject": str, "faces": m{"type": "array", "items": ref("FaceInfo")}}, "subject", "faces"),
		"Subject":      obj(m{"name": str, "faces": integer}, "name", "faces"),
		"SubjectsPage": obj(m{"subjects": m{"type": "array", "items": ref("Subject")},
			"next": m{"type": "string", "description": "after= of the next page; absent on the last"}}, "subjects"),
		"RenameRequest": obj(m{"name": m{"type": "string", "minLength": 1, "maxLength": 64}}, "name"),
		"RenameResult":  obj(m{"subject": str, "faces": integer, "merged": m{"type": "boolean"}}, "subject", "faces", "merged"),
		"GalleryFile": obj(m{"version": m{"const": 1}, "subjects": m{"type": "array", "items": obj(m{"name": str,
			"descriptors": m{"type": "array", "items": m{"type": "array", "items": num, "minItems": 128, "maxItems": 128}},
			"faces":       m{"type": "array", "items": ref("FaceInfo"), "description": "one per descriptor (optional)"}}, "name", "descriptors")}},
			"version", "subjects"),
		"ImportResult": obj(m{"subjects": integer, "imported": integer, "replaced": m{"type": "boolean"}}, "subjects", "imported", "replaced"),
		"History": obj(m{"window_s": integer, "every_ms": integer,
			"samples": m{"type": "array", "items": obj(m{"t": m{"type": "integer", "description": "Unix milliseconds"}, "visible": integer,
				"in_flight": integer, "waiting": integer, "dead_letter": integer, "instances": m{"type": "object"},
				"errors": m{"type": "array", "items": str}}, "t", "visible", "in_flight", "waiting", "instances")},
			"decisions": m{"type": "array"}, "decisions_available": m{"type": "boolean"}}, "samples", "decisions", "decisions_available"),
		"Status": obj(m{"queues": m{"type": "object"}, "instances": m{"type": "object"}, "decisions": m{},
			"pending": integer, "errors": m{"type": "array", "items": str}}, "queues", "pending"),
	}
	return m{
		"openapi": "3.1.0",
		"info": m{"title": "facefleet", "version": "1",
			"description": "Elastic face recognition. Errors are {\"error\":{\"code\",\"message\"}} on /v1 and plain text on /."},
		"paths": paths,
		"components": m{
			"schemas": schemas,
			"securitySchemes": m{
				"bearerAuth":   m{"type": "http", "scheme": "bearer", "description": "an API key from `facefleet keys create`"},
				"apiKeyHeader": m{"type": "apiKey", "in": "header", "name": "X-API-Key"},
			},
		},
	}
}

func (s *Server) openAPI(c *fiber.Ctx) error {
	b, err := json.Marshal(s.OpenAPI())
	if err != nil {
		return errf(fiber.StatusInternalServerError, "internal", "encode the OpenAPI document: %v", err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(b)
}
