package apptier_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
)

func TestWorkerAnswersCandidatesWhenAsked(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	g := gallery.New()
	g.Add("amy", bigFace())
	g.Add("bob", oneHot(0, 0.15)) // 0.05 from the small face
	g.Add("cy", oneHot(2, 0.1))
	st, err := gallery.OpenStore(ctx, r.out, "", gallery.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, gallery.Edit{Op: gallery.OpReplace, Faces: g}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id    string
		limit int
	}{{"none", 0}, {"three", 3}} {
		etag, _ := r.in.Put(ctx, c.id+".png", []byte("face"), "image/png")
		body, err := protocol.EncodeRequest(protocol.Request{ID: c.id, Key: c.id + ".png", ETag: etag, Kind: protocol.Recognize, SentAt: time.Now(), Limit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		r.req.Send(ctx, body)
	}
	runUntilIdle(t, r.w)
	got := r.responses(t)
	for _, f := range got["none"].Faces {
		if f.Candidates != nil {
			t.Fatalf("candidates nobody asked for: %+v", f)
		}
	}
	// Nearest first, from the real gallery: the small face is 0.05 from bob,
	// 0.1414 from cy and 0.3162 from amy; the big face is amy's own.
	faces := got["three"].Faces
	if len(faces) != 2 || len(faces[0].Candidates) != 3 || len(faces[1].Candidates) != 3 {
		t.Fatalf("candidates: %+v", faces)
	}
	if c := faces[0].Candidates; c[0].Subject != "bob" || c[1].Subject != "cy" || c[2].Subject != "amy" || math.Abs(c[0].Distance-0.05) > 1e-6 {
		t.Fatalf("small face's candidates %+v", c)
	}
	if c := faces[1].Candidates[0]; c != (protocol.Candidate{Subject: "amy", Distance: 0}) {
		t.Fatalf("big face's nearest %+v", c)
	}
	if _, err := protocol.EncodeRequest(protocol.Request{ID: "x", Key: "x.png", ETag: "e", Kind: protocol.Recognize, Limit: protocol.MaxCandidates + 1}); err == nil {
		t.Fatal("a limit over MaxCandidates was encoded")
	}
}

func TestWorkerDetectAnswersLandmarksNamesNobodyStoresNothing(t *testing.T) {
	r := newRig(t, nil)
	r.eng.On([]byte("face"), func(context.Context) (*engine.Result, error) { // one face, 68 landmarks
		lm := make([]engine.Point, 68)
		lm[67] = engine.Point{X: 7, Y: 8}
		return &engine.Result{Width: 100, Height: 90, Faces: []engine.Face{
			{Box: engine.Box{X: 1, Y: 2, W: 30, H: 40}, Score: 0.7, Landmarks: lm, Descriptor: bigFace()},
		}}, nil
	})
	setGallery(t, r.out, "amy")
	r.send(t, "d1", "detect-x-group.png", "face", protocol.Detect)
	runUntilIdle(t, r.w)
	resp := r.responses(t)["d1"]
	if resp.Error != nil || resp.Name != "" || resp.Width != 100 || len(resp.Faces) != 1 {
		t.Fatalf("detect answer %+v", resp)
	}
	f := resp.Faces[0]
	if f.Subject != "" || len(f.Landmarks) != 68 || f.Landmarks[67] != (protocol.Point{X: 7, Y: 8}) || f.Box.W != 30 {
		t.Fatalf("detect face %+v", f)
	}
	if objs, _ := r.out.List(context.Background(), ""); len(objs) != 1 {
		t.Fatalf("detect stored results: %v", objs)
	}
	if n := counts(t, r.req); n.Visible+n.InFlight != 0 {
		t.Fatalf("request left queued: %+v", n)
	}
}
