package webtier

import (
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
)

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

func (w webGallery) AddFace(subject string, d []float32, box protocol.Box) (string, error) {
	return w.Gallery.AddFace(subject, d, &gallery.Box{X: box.X, Y: box.Y, W: box.W, H: box.H})
}

func (w webGallery) Faces(subject string) ([]FaceInfo, bool) {
	fs, ok := w.Gallery.Faces(subject)
	out := make([]FaceInfo, 0, len(fs))
	for _, f := range fs {
		fi := FaceInfo{ID: f.ID, Created: f.Created}
		if f.Box != nil {
			fi.Box = &protocol.Box{X: f.Box.X, Y: f.Box.Y, W: f.Box.W, H: f.Box.H}
		}
		out = append(out, fi)
	}
	return out, ok
}

// mergeInto puts every subject of w into dst, keeping their face ids.
func (w webGallery) mergeInto(dst webGallery) error {
	for _, s := range w.Gallery.Subjects() {
		if err := dst.PutSubject(s); err != nil {
			return err
		}
	}
	return nil
}
