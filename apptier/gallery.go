package apptier

import (
	"math"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
)

// Label fills Subject and Distance of res's faces from g and returns the
// course answer for the largest face: a subject, engine.Unknown or
// engine.NoFace. The worker and `facefleet recognize` both answer with it.
func Label(g *gallery.Gallery, res *engine.Result, threshold float64) string {
	for i := range res.Faces {
		if f := &res.Faces[i]; len(f.Descriptor) > 0 {
			f.Subject, f.Distance = g.Match(f.Descriptor, threshold)
			if math.IsInf(f.Distance, 0) { // empty gallery: JSON cannot carry +Inf
				f.Distance = 0
			}
		}
	}
	name, _ := gallery.Answer(res, g, threshold)
	return name
}
