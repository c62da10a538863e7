package gallery_test

import (
	"context"
	"fmt"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob/memblob"
)

// Two processes share one gallery through a blob store: a web tier enrolls,
// a worker follows and matches.
func ExampleStore() {
	ctx := context.Background()
	store := memblob.New() // S3 or a folder in a real deployment
	web, _ := gallery.OpenStore(ctx, store, "", gallery.StoreOptions{})
	worker, _ := gallery.OpenStore(ctx, store, "", gallery.StoreOptions{})

	amy := make([]float32, gallery.DescriptorLen)
	amy[0] = 0.25
	enrol := gallery.New()
	if _, err := enrol.AddFace("amy", amy, &gallery.Box{X: 10, Y: 20, W: 64, H: 64}); err != nil {
		fmt.Println(err)
		return
	}
	out, err := web.Apply(ctx, gallery.Edit{Op: gallery.OpAdd, Faces: enrol})
	fmt.Println("journal position", out.Seq, "faces", out.Faces, err)

	_ = worker.RefreshIfStale(ctx, 0, out.Seq) // a request carries the position it needs
	probe := make([]float32, gallery.DescriptorLen)
	probe[0] = 0.3
	name, dist := worker.Gallery().Match(probe, 0)
	fmt.Printf("%s %.2f\n", name, dist)

	_, err = web.Apply(ctx, gallery.Edit{Op: gallery.OpRemoveSubject, Subject: "bob"})
	fmt.Println(err)
	// Output:
	// journal position 1 faces 1 <nil>
	// amy 0.05
	// gallery: no such subject: "bob"
}
