// Package fleet is the port for a pool of app-tier instances with EC2's life cycle.
// Adapters: localfleet (worker goroutines) and ec2fleet; both pass fleettest.
package fleet

import (
	"context"
	"errors"
	"time"
)

// State is an EC2 instance state name.
type State string

const (
	Pending    State = "pending"
	Running    State = "running"
	Stopping   State = "stopping"
	Stopped    State = "stopped"
	Terminated State = "terminated"
)

// Instance is one app-tier instance as the fleet reports it.
type Instance struct {
	ID    string
	State State
	// Since is when the instance entered State (EC2: launch time or state
	// transition time where known).
	Since time.Time
}

// Fleet is the port. Start and Stop are asynchronous, as in EC2: they move
// instances to pending/stopping and return; List shows the progress.
type Fleet interface {
	List(ctx context.Context) ([]Instance, error)
	// Start starts stopped instances. As in EC2 it checks every id before changing
	// any; pending or running ones are accepted unchanged, a stopping one fails
	// with ErrIncorrectState.
	Start(ctx context.Context, ids ...string) error
	// Stop stops running instances. As in EC2 it checks every id before changing
	// any; stopping or stopped ones are accepted unchanged, and a launched
	// instance that is still pending fails with ErrIncorrectState (EC2: "cannot
	// be stopped as it has never reached the 'running' state"), so wait for
	// running. fleettest checks these rules on every adapter.
	Stop(ctx context.Context, ids ...string) error
	// Launch creates n new instances (pending) and returns them.
	Launch(ctx context.Context, n int) ([]Instance, error)
}

// Errors adapters map to.
var (
	ErrNotFound = errors.New("fleet: no such instance")
	// ErrCapacity: the provider cannot supply more instances now (EC2
	// InsufficientInstanceCapacity or a local cap).
	ErrCapacity = errors.New("fleet: insufficient capacity")
	// ErrIncorrectState: the instance is not in a state that allows the operation.
	ErrIncorrectState = errors.New("fleet: instance is in the wrong state for this operation")
)

// CountByState tallies instances by state.
func CountByState(insts []Instance) map[State]int {
	m := make(map[State]int, 5)
	for _, in := range insts {
		m[in.State]++
	}
	return m
}
