// Package protocol defines the JSON messages the web tier and the app tier exchange
// over the request and response queues. Messages never carry the image: the request
// names an object in the input store (key and ETag), so a request stays far below
// the 1 KiB the course allows per queue message.
package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the message format version; receivers reject other versions.
const Version = 1

// MaxRequestBytes is the largest encoded request (the course's SQS message limit).
const MaxRequestBytes = 1024

// MaxResponseBytes caps an encoded response (a group photo's faces plus, for
// describe, one descriptor) well under SQS's 256 KiB.
const MaxResponseBytes = 64 << 10

// Kind says what the caller wants.
type Kind string

const (
	// Classify answers the course contract: the name of the largest face.
	Classify Kind = "classify"
	// Recognize answers every face with its box, subject and distance.
	Recognize Kind = "recognize"
	// Describe returns the largest face's descriptor (used for enrollment, so the
	// web tier never needs an engine).
	Describe Kind = "describe"
	// Detect returns every face's box, score and 68 landmarks, without
	// matching them (nothing is stored).
	Detect Kind = "detect"
)

func (k Kind) valid() bool { return k == Classify || k == Recognize || k == Describe || k == Detect }

// Request asks a worker to process the input object Key whose content has ETag.
type Request struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Key  string `json:"key"`
	ETag string `json:"etag"`
	Kind Kind   `json:"kind"`
	// Gallery is the gallery's journal position (decimal) the web tier had
	// seen when it sent the request; a worker behind it catches up first, so a
	// request sent after an enrollment is matched against it.
	Gallery string    `json:"gallery,omitempty"`
	SentAt  time.Time `json:"sent_at"`
	// ReplyTo is the address of the queue the answer goes to (an SQS queue URL,
	// or a queue name in the embedded mode); empty means the worker's default
	// response queue. Each web tier names its own, so several web tiers can
	// share one request queue and its dead-letter queue.
	ReplyTo string `json:"reply_to,omitempty"`
	// Limit asks for up to this many nearest subjects per face (Recognize;
	// 0: none, at most MaxCandidates).
	Limit int `json:"limit,omitempty"`
}

// MaxCandidates bounds Request.Limit (so a group photo's answer stays under
// MaxResponseBytes).
const MaxCandidates = 10

// Candidate is one of a face's nearest subjects.
type Candidate struct {
	Subject  string  `json:"subject"`
	Distance float64 `json:"distance"`
}

// MaxIDBytes and MaxReplyToBytes bound a request's ID and reply-to address.
const (
	MaxIDBytes      = 64
	MaxReplyToBytes = 256
)

// Box is a face box in pixels of the upright image.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Face is one detected face. Subject is empty (and Distance 0) for an unknown face.
type Face struct {
	Box      Box     `json:"box"`
	Subject  string  `json:"subject,omitempty"`
	Distance float64 `json:"distance,omitempty"`
	Score    float64 `json:"score"`
	// Candidates are the nearest subjects, nearest first (when asked by Limit).
	Candidates []Candidate `json:"candidates,omitempty"`
	// Landmarks are the 68 face landmarks (Detect only).
	Landmarks []Point `json:"landmarks,omitempty"`
}

// Point is a landmark in pixels of the upright image.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// Error codes a worker (or the web tier's dead-letter watcher) answers with.
const (
	// CodeBadImage: the bytes are not a usable image (permanent; HTTP 422).
	CodeBadImage = "bad_image"
	// CodeInputMissing: the input object vanished before a worker fetched it.
	CodeInputMissing = "input_missing"
	// CodeSuperseded: another upload reused the key, so the stored object is not the
	// image this request was for (HTTP 409; the caller may upload again).
	CodeSuperseded = "superseded"
	// CodeBadRequest: the request message was not ours or not valid.
	CodeBadRequest = "bad_request"
	// CodeNoFace: describe found no face to enroll.
	CodeNoFace = "no_face"
	// CodeFailed: processing kept failing and the request went to the dead-letter
	// queue (HTTP 502).
	CodeFailed = "failed"
)

// Error is a permanent failure answered instead of a result.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Timings are measured by the worker.
type Timings struct {
	// QueuedMS is from SentAt to the worker's receive.
	QueuedMS float64 `json:"queued_ms"`
	// InferenceMS is the engine's Analyze time.
	InferenceMS float64 `json:"inference_ms"`
	// FetchMS is the input fetch; StoreMS writing the outputs.
	FetchMS float64 `json:"fetch_ms,omitempty"`
	StoreMS float64 `json:"store_ms,omitempty"`
}

// Response answers one request, by ID.
type Response struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	Key  string `json:"key"`
	Stem string `json:"stem"`
	// Name is the course answer: a subject, "Unknown" or "NoFace".
	Name    string  `json:"name,omitempty"`
	Faces   []Face  `json:"faces"`
	Error   *Error  `json:"error,omitempty"`
	Width   int     `json:"width,omitempty"`
	Height  int     `json:"height,omitempty"`
	Timings Timings `json:"timings"`
	// Descriptor is the largest face's descriptor (Describe only).
	Descriptor []float32 `json:"descriptor,omitempty"`
	Worker     string    `json:"worker,omitempty"`
}

// Stem is the key's file name without directory and extension, as the course's
// output bucket and CSV use it ("test_00.jpg" -> "test_00").
func Stem(key string) string {
	b := path.Base(key)
	if ext := path.Ext(b); ext != "" && ext != b {
		b = strings.TrimSuffix(b, ext)
	}
	return b
}

// MaxKeyBytes is the longest file name (input key) accepted.
const MaxKeyBytes = 200

// ValidKey reports whether key is acceptable as an input object name: a plain file
// name (no directories, no control characters), 1..MaxKeyBytes bytes of UTF-8,
// whose stem (the output store's key for the result) is neither "." nor "..":
// "..jpg" and "...jpg" are refused because no store accepts their stems.
func ValidKey(key string) error {
	switch {
	case key == "" || key == "." || key == "..":
		return errors.New("empty file name")
	case len(key) > MaxKeyBytes:
		return fmt.Errorf("file name is %d bytes, longer than %d", len(key), MaxKeyBytes)
	case !utf8.ValidString(key):
		return errors.New("file name is not UTF-8")
	case strings.ContainsAny(key, "/\\"):
		return errors.New("file name contains a path separator")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return errors.New("file name contains a control character")
		}
	}
	if st := Stem(key); st == "." || st == ".." {
		return fmt.Errorf("file name has no name before its extension (its stem %q cannot be stored)", st)
	}
	return nil
}

// validID accepts 1..MaxIDBytes of [A-Za-z0-9_-]: IDs become part of object keys.
func validID(id string) error {
	if id == "" {
		return errors.New("protocol: request without id")
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("protocol: request id of %d bytes, over %d", len(id), MaxIDBytes)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("protocol: request id %q holds %q; ids are letters, digits, - and _", id, r)
		}
	}
	return nil
}

// EncodeRequest validates r and encodes it, refusing anything over MaxRequestBytes.
func EncodeRequest(r Request) (string, error) {
	if r.V == 0 {
		r.V = Version
	}
	if err := r.validate(); err != nil {
		return "", err
	}
	// No HTML escaping: "<" in a file name stays one byte, not six.
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return "", fmt.Errorf("protocol: encode request: %w", err)
	}
	b := strings.TrimSuffix(buf.String(), "\n")
	if len(b) > MaxRequestBytes {
		return "", fmt.Errorf("protocol: request is %d bytes, over the %d-byte limit (shorten the file name)", len(b), MaxRequestBytes)
	}
	return b, nil
}

// DecodeRequest parses and validates a request body.
func DecodeRequest(body string) (Request, error) {
	var r Request
	if len(body) > MaxRequestBytes {
		return r, fmt.Errorf("protocol: request is %d bytes, over the %d-byte limit", len(body), MaxRequestBytes)
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return r, fmt.Errorf("protocol: request is not JSON: %w", err)
	}
	return r, r.validate()
}

func (r Request) validate() error {
	switch {
	case r.V != Version:
		return fmt.Errorf("protocol: request version %d, want %d", r.V, Version)
	case !r.Kind.valid():
		return fmt.Errorf("protocol: unknown request kind %q", r.Kind)
	case r.ETag == "":
		return errors.New("protocol: request without etag")
	case len(r.ReplyTo) > MaxReplyToBytes:
		return fmt.Errorf("protocol: reply-to address of %d bytes, over %d", len(r.ReplyTo), MaxReplyToBytes)
	case strings.ContainsFunc(r.ReplyTo, func(c rune) bool { return c <= 0x20 || c >= 0x7f }):
		return fmt.Errorf("protocol: reply-to address %q holds a space, control or non-ASCII character", r.ReplyTo)
	case r.Limit < 0 || r.Limit > MaxCandidates:
		return fmt.Errorf("protocol: request limit %d outside 0..%d", r.Limit, MaxCandidates)
	}
	if err := validID(r.ID); err != nil {
		return err
	}
	if err := ValidKey(r.Key); err != nil {
		return fmt.Errorf("protocol: request key %q: %w", r.Key, err)
	}
	return nil
}

// EncodeResponse encodes r, refusing anything over MaxResponseBytes.
func EncodeResponse(r Response) (string, error) {
	if r.V == 0 {
		r.V = Version
	}
	if r.ID == "" {
		return "", errors.New("protocol: response without id")
	}
	if r.Faces == nil {
		r.Faces = []Face{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("protocol: encode response: %w", err)
	}
	if len(b) > MaxResponseBytes {
		return "", fmt.Errorf("protocol: response is %d bytes, over the %d-byte limit", len(b), MaxResponseBytes)
	}
	return string(b), nil
}

// DecodeResponse parses a response body.
func DecodeResponse(body string) (Response, error) {
	var r Response
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return r, fmt.Errorf("protocol: response is not JSON: %w", err)
	}
	if r.V != Version {
		return r, fmt.Errorf("protocol: response version %d, want %d", r.V, Version)
	}
	if r.ID == "" {
		return r, errors.New("protocol: response without id")
	}
	return r, nil
}
