package apptier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
)

// candMatcher is nameMatcher that also lists k made-up candidates per face,
// their distance encoding the descriptor's first value.
type candMatcher struct{ nameMatcher }

func (candMatcher) Candidates(d []float32, k int) []protocol.Candidate {
	var out []protocol.Candidate
	for i := range k {
		out = append(out, protocol.Candidate{Subject: fmt.Sprintf("c%d", i), Distance: float64(d[0]) + float64(i)})
	}
	return out
}

func TestWorkerAnswersCandidatesWhenAsked(t *testing.T) {
	r := newRig(t, func(o *apptier.Options) {
		o.LoadGallery = func(data []byte) (apptier.Matcher, error) { return candMatcher{nameMatcher(data)}, nil }
	})
	ctx := context.Background()
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
	faces := got["three"].Faces
	if len(faces) != 2 || len(faces[0].Candidates) != 3 || faces[0].Candidates[0].Distance != 1 || faces[1].Candidates[2] != (protocol.Candidate{Subject: "c2", Distance: 5}) {
		t.Fatalf("candidates: %+v", faces)
	}
	if _, err := protocol.EncodeRequest(protocol.Request{ID: "x", Key: "x.png", ETag: "e", Kind: protocol.Recognize, Limit: protocol.MaxCandidates + 1}); err == nil {
		t.Fatal("a limit over MaxCandidates was encoded")
	}
}

func TestGalleryMatcherCandidates(t *testing.T) {
	vec := func(v float32) []float32 { d := make([]float32, gallery.DescriptorLen); d[0] = v; return d }
	g := gallery.New()
	g.Add("amy", vec(0.1), vec(0.9))
	g.Add("penny", vec(0.3))
	g.Add("raj", vec(0.6))
	data, _ := g.Marshal()
	m, err := apptier.GalleryPackageLoader(0)(data)
	if err != nil {
		t.Fatal(err)
	}
	cands := m.(apptier.CandidateMatcher).Candidates(vec(0.42), 2)
	if len(cands) != 2 || cands[0].Subject != "penny" || cands[1].Subject != "raj" || cands[0].Distance > 0.121 {
		t.Fatalf("candidates %+v", cands)
	}
	if all := m.(apptier.CandidateMatcher).Candidates(vec(0), 10); len(all) != 3 || all[0].Subject != "amy" {
		t.Fatalf("all candidates %+v", all)
	}
}

// landmarkEngine finds one face with 68 landmarks.
type landmarkEngine struct{}

func (landmarkEngine) Analyze(context.Context, []byte) (*engine.Result, error) {
	lm := make([]engine.Point, 68)
	lm[67] = engine.Point{X: 7, Y: 8}
	return &engine.Result{Width: 100, Height: 90, Faces: []engine.Face{
		{Box: engine.Box{X: 1, Y: 2, W: 30, H: 40}, Score: 0.7, Landmarks: lm, Descriptor: []float32{1}},
	}}, nil
}

func TestWorkerDetectAnswersLandmarksNamesNobodyStoresNothing(t *testing.T) {
	r := newRig(t, func(o *apptier.Options) { o.Analyzer = landmarkEngine{} })
	r.out.Put(context.Background(), "gallery/gallery.json", []byte("amy"), "application/json")
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
