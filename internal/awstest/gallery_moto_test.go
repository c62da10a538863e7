package awstest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
)

// TestGalleryJournalOnMotoAsTheTiers: two web tiers (two stores, signed as the
// template's WebRole) append to one gallery journal in the stack's output
// bucket at once, through S3's If-None-Match with IAM enforced; nothing is
// lost, compaction's deletes are allowed, a worker (AppRole) follows, and a
// worker may not write the journal.
func TestGalleryJournalOnMotoAsTheTiers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := awstest.StartMotoForTest(t)
	st := m.NewStack("gal")
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	bucket := st.BucketName("OutputBucket")
	if err := awstest.CreateBucket(ctx, admin.S3(), bucket); err != nil {
		t.Fatal(err)
	}
	storeAs := func(tier string) blob.Store {
		creds, err := m.TierUser(ctx, tier, st)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := m.ClientsFor(ctx, creds)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s3blob.New(cl.S3(), bucket)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	webBlobs, appBlobs := storeAs("web"), storeAs("app")
	// Redundant entries stay a minute while the tiers write (a journal write
	// must land within KeepFor/2 of its listing, which Apply enforces); the
	// deletes run after, as the web tier, with KeepFor 1 ns.
	opt := gallery.StoreOptions{CompactAfter: 8, KeepFor: time.Minute}
	var tiers []*gallery.Store
	for range 2 {
		s, err := gallery.OpenStore(ctx, webBlobs, "", opt)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		tiers = append(tiers, s)
	}
	const per = 10
	var wg sync.WaitGroup
	for k, s := range tiers {
		for w := range 2 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(k), uint64(w)))
				for i := range per {
					g := gallery.New()
					d := make([]float32, gallery.DescriptorLen)
					for j := range d {
						d[j] = float32(rng.NormFloat64() * 0.05)
					}
					g.Add(fmt.Sprintf("p%d", i%3), d)
					if _, err := s.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: g}); err != nil {
						t.Errorf("tier %d: %v", k, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, s := range tiers {
		s.Close() // background compactions done (their deletes need the WebRole's grant)
	}
	compactor, err := gallery.OpenStore(ctx, webBlobs, "", gallery.StoreOptions{CompactAfter: 8, KeepFor: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer compactor.Close()
	if err := compactor.Compact(ctx); err != nil {
		t.Fatalf("compaction as the web tier: %v", err)
	}
	worker, err := gallery.OpenStore(ctx, appBlobs, "", gallery.StoreOptions{})
	if err != nil {
		t.Fatalf("the worker reads the gallery: %v", err)
	}
	if n := worker.Gallery().FaceTotal(); n != 2*2*per {
		t.Fatalf("the worker sees %d faces, want %d", n, 2*2*per)
	}
	a, _ := worker.Gallery().Marshal()
	if err := tiers[1].Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := tiers[1].Gallery().Marshal()
	if string(a) != string(b) {
		t.Fatal("the worker and a web tier disagree")
	}
	g := gallery.New()
	g.Add("x", make([]float32, gallery.DescriptorLen))
	if _, err := worker.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: g}); !awstest.IsAccessDenied(err) {
		t.Fatalf("a worker wrote the journal: %v; want AccessDenied", err)
	}
}
