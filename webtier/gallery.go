package webtier

import "github.com/facefleet/facefleet/gallery"

// webGallery adapts *gallery.Gallery to Gallery.
type webGallery struct{ *gallery.Gallery }

func (w webGallery) Add(subject string, d []float32) error { return w.Gallery.Add(subject, d) }

func (w webGallery) Subjects() []Subject {
	subs := w.Gallery.Subjects()
	out := make([]Subject, 0, len(subs))
	for _, s := range subs {
		out = append(out, Subject{Name: s.Name, Faces: len(s.Descriptors)})
	}
	return out
}

// GalleryPackageCodec decodes galleries written by the gallery package (the
// default Codec).
func GalleryPackageCodec(data []byte) (Gallery, error) {
	if data == nil {
		return webGallery{gallery.New()}, nil
	}
	g, err := gallery.Unmarshal(data)
	if err != nil {
		return nil, err
	}
	return webGallery{g}, nil
}
