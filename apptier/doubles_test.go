package apptier_test

import (
	"context"
	"testing"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
)

// smallFace and bigFace are the descriptors of the engine double's two faces
// (the script word "face"; see newRig).
func smallFace() []float32 { return oneHot(0, 0.1) }
func bigFace() []float32   { return oneHot(1, 0.3) }

func oneHot(i int, v float32) []float32 {
	d := make([]float32, gallery.DescriptorLen)
	d[i] = v
	return d
}

// setGallery makes the shared gallery in out hold name with both of the
// engine double's faces ("" empties it) and returns its journal position, what a
// web tier puts in its requests.
func setGallery(t *testing.T, out blob.Store, name string) uint64 {
	t.Helper()
	st, err := gallery.OpenStore(context.Background(), out, "", gallery.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := gallery.New()
	if name != "" {
		if err := g.Add(name, bigFace(), smallFace()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.Apply(context.Background(), gallery.Edit{Op: gallery.OpReplace, Faces: g})
	if err != nil {
		t.Fatal(err)
	}
	return res.Seq
}
