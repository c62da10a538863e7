package scaling_test

import (
	"context"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/localfleet"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/scaling"
)

// The controller observes the queue and the fleet, asks its policy, and acts on
// the fleet; it takes the time from its caller, so a ticker (facefleet up), the
// Lambda and the simulator all drive the same code.
func ExampleController() {
	ctx := context.Background()
	q, _ := memqueue.New(memqueue.Options{Name: "requests"})
	for range 3 {
		q.Send(ctx, "work")
	}
	f, _ := localfleet.New(localfleet.Options{Max: 10, BootDelay: time.Hour, Run: func(ctx context.Context, _ fleet.Instance) error {
		<-ctx.Done()
		return nil
	}})
	defer f.Close()
	pol, _ := scaling.NewPolicy(scaling.NameVisibleCount)
	c := scaling.NewController(scaling.ControllerOptions{Queue: q, Fleet: f, Policy: pol, Max: 10})
	d, err := c.Step(ctx, time.Now())
	fmt.Println(d.Desired, d.Launched, d.Reason, err)
	// The baseline does not count pending instances, so the next step launches
	// three more (the flaw backlog-drain fixes).
	d, _ = c.Step(ctx, time.Now())
	fmt.Println(d.Observation.Pending, d.Start, d.Reason)
	// Output:
	// 3 3 visible-count: 3 visible > 0 running <nil>
	// 3 3 visible-count: 3 visible > 0 running
}
