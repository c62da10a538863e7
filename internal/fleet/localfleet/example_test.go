package localfleet_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/localfleet"
)

// The fleet port: Launch creates pending instances that become running, Stop
// asks a running one to stop, and the EC2 rules hold on every adapter (stopping
// a never-started, still pending instance is refused, as EC2 refuses it).
func Example() {
	ctx := context.Background()
	f, err := localfleet.New(localfleet.Options{Max: 2, BootDelay: time.Hour}) // stays pending
	if err != nil {
		panic(err)
	}
	defer f.Close()
	var fl fleet.Fleet = f
	insts, _ := fl.Launch(ctx, 1)
	fmt.Println(insts[0].State)
	err = fl.Stop(ctx, insts[0].ID)
	fmt.Println(errors.Is(err, fleet.ErrIncorrectState))
	_, err = fl.Launch(ctx, 2)
	fmt.Println(errors.Is(err, fleet.ErrCapacity))
	// Output:
	// pending
	// true
	// true
}
