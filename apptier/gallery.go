package apptier

import (
	"math"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
)

// galleryMatcher adapts one version of the gallery package's gallery.
type galleryMatcher struct {
	g   *gallery.Gallery
	thr float64
}

func (m galleryMatcher) Label(res *engine.Result) string {
	for i := range res.Faces {
		if f := &res.Faces[i]; len(f.Descriptor) > 0 {
			f.Subject, f.Distance = m.g.Match(f.Descriptor, m.thr)
			if math.IsInf(f.Distance, 0) { // empty gallery: JSON cannot carry +Inf
				f.Distance = 0
			}
		}
	}
	name, _ := gallery.Answer(res, m.g, m.thr)
	return name
}

// Candidates returns the k subjects nearest to d, nearest first.
func (m galleryMatcher) Candidates(d []float32, k int) []protocol.Candidate {
	var out []protocol.Candidate
	for _, n := range m.g.NearestK(d, k) {
		out = append(out, protocol.Candidate{Subject: n.Subject, Distance: n.Distance})
	}
	return out
}

// CandidateMatcher is a Matcher that can also list a face's nearest subjects
// (for Request.Limit).
type CandidateMatcher interface {
	Candidates(d []float32, k int) []protocol.Candidate
}

// GalleryPackageLoader decodes galleries written by the gallery package (the
// default LoadGallery); threshold <= 0 takes the gallery's default.
func GalleryPackageLoader(threshold float64) GalleryLoader {
	return func(data []byte) (Matcher, error) {
		if data == nil {
			return galleryMatcher{g: gallery.New(), thr: threshold}, nil
		}
		g, err := gallery.Unmarshal(data)
		if err != nil {
			return nil, err
		}
		return galleryMatcher{g: g, thr: threshold}, nil
	}
}
