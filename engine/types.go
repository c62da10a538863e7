// Package engine finds faces in an image and computes their 128-D descriptors with
// ONNX Runtime, using models converted from face-api's weights (see models/).
package engine

import (
	"errors"
	"fmt"
	"time"
)

// Box is a face box in pixels of the upright (EXIF-oriented) input image.
type Box struct {
	X, Y, W, H float64
}

// Point is a landmark in pixels of the upright input image.
type Point struct {
	X, Y float64
}

// Face is one detected face. Subject and Distance are filled by a gallery match.
type Face struct {
	Box        Box       `json:"box"`
	Score      float64   `json:"score"`
	Landmarks  []Point   `json:"landmarks,omitempty"`
	Descriptor []float32 `json:"descriptor,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	Distance   float64   `json:"distance,omitempty"`
}

// Timings are per-stage wall times for one image.
type Timings struct {
	Decode    time.Duration `json:"decode"`
	Detect    time.Duration `json:"detect"`
	Landmarks time.Duration `json:"landmarks"`
	Align     time.Duration `json:"align"`
	Describe  time.Duration `json:"describe"`
	Match     time.Duration `json:"match"`
}

// Result is what the engine found in one image.
type Result struct {
	Width   int     `json:"width"`
	Height  int     `json:"height"`
	Faces   []Face  `json:"faces"`
	Timings Timings `json:"timings"`
	// DetectorSizes are the detector input sizes run, in order (a second entry
	// means the tight-crop fallback ran); benchmarks replay them.
	DetectorSizes []int `json:"detector_sizes,omitempty"`
	// CropEvidence is the second opinion asked when no face box was found in
	// a small square image (nil when it was not asked).
	CropEvidence *Evidence `json:"crop_evidence,omitempty"`
}

// Answer names used by the course contract.
const (
	NoFace  = "NoFace"
	Unknown = "Unknown"
)

// ImageError says why an input is not a usable image. It is permanent: retrying the
// same bytes gives the same error, so callers answer 4xx and never retry.
type ImageError struct {
	Kind   string // e.g. "empty", "format", "truncated", "too-large", "animated", "too-small"
	Detail string
	Err    error
}

func (e *ImageError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("bad image (%s)", e.Kind)
	}
	return fmt.Sprintf("bad image (%s): %s", e.Kind, e.Detail)
}

func (e *ImageError) Unwrap() error { return e.Err }

// IsImageError reports whether err (or one it wraps) is an *ImageError.
func IsImageError(err error) bool {
	var ie *ImageError
	return errors.As(err, &ie)
}
