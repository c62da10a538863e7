package sim_test

import (
	"context"
	"fmt"

	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/sim"
)

// One policy over one workload in virtual time (no sleeping): runs are
// deterministic for a seed, so the numbers below are always the same.
func ExampleRun() {
	wl, err := sim.NewWorkload("burst-100", 1)
	if err != nil {
		panic(err)
	}
	r, err := sim.Run(context.Background(), sim.DefaultConfig(), wl, scaling.NameBacklogDrain)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %d of %d answered, drained in %.1f s, %d start(s), %d busy stops\n",
		r.Policy, r.Answered, r.Requests, r.DrainS, r.Starts, r.BusyStops)
	// Output:
	// backlog-drain: 100 of 100 answered, drained in 25.8 s, 1 start(s), 0 busy stops
}
