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
	fmt.Printf("%s: %d of %d answered, first in %.1f s, drained in %.1f s, %d EC2 start(s), %d overflow invocation(s), $%.5f\n",
		r.Policy, r.Answered, r.Requests, r.FirstAnswerS, r.DrainS, r.Starts, r.OverflowInvocations, r.CostUSD)
	// Output:
	// backlog-drain: 100 of 100 answered, first in 1.9 s, drained in 7.8 s, 0 EC2 start(s), 1 overflow invocation(s), $0.00027
}
