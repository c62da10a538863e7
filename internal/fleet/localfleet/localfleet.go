// Package localfleet is the in-process adapter of the fleet port: each instance is
// a goroutine running Options.Run, with EC2's life cycle and EC2's rules for which
// calls are allowed in which state (so code written against it behaves the same on
// ec2fleet):
//
//	Launch: -> pending --BootDelay--> running (Run starts)
//	Stop (running): -> stopping (Run's ctx cancelled) --Run returns, StopDelay--> stopped
//	Run returns by itself (idle worker): -> stopping --StopDelay--> stopped
//	Start (stopped): -> pending --BootDelay--> running (a new Run)
//
// Stop of a pending and Start of a stopping instance fail with
// fleet.ErrIncorrectState, as in EC2; Stop of a stopping/stopped and Start of a
// pending/running instance are accepted and change nothing, as in EC2. Every call
// returns at once; List shows the progress.
package localfleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/pause"
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("localfleet: fleet is closed")

// Options configure the fleet.
type Options struct {
	// BootDelay is how long an instance stays pending before Run starts (>= 0).
	BootDelay time.Duration
	// StopDelay is how long an instance stays stopping after Run returned (>= 0).
	StopDelay time.Duration
	// Max caps the number of instances in any state (required, > 0); Launch beyond
	// it fails with fleet.ErrCapacity.
	Max int
	// Run is the instance's work. It runs while the instance is running and must
	// return soon after ctx is cancelled (by Stop or Close). Returning by itself
	// (nil or an error) stops the instance, which is how an idle worker shuts its
	// own instance down. Nil: wait for ctx and return nil.
	Run func(ctx context.Context, inst fleet.Instance) error
	// Logger receives state changes (Debug) and Run errors (Warn); nil: discard.
	Logger *slog.Logger
	// Now replaces time.Now for Since (tests).
	Now func() time.Time
}

type instance struct {
	id     string
	state  fleet.State
	since  time.Time
	cancel context.CancelFunc // of the current Run; nil unless running/stopping
	// lastErr is the latest non-nil error Run returned.
	lastErr error
}

// Fleet is the in-process fleet. It is safe for concurrent use.
type Fleet struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	insts  map[string]*instance
	nextID uint64
	closed bool

	base    context.Context // parent of every Run's context
	stopAll context.CancelFunc
	wg      sync.WaitGroup
}

var _ fleet.Fleet = (*Fleet)(nil)

// New validates opts and returns an empty fleet.
func New(opts Options) (*Fleet, error) {
	if opts.Max <= 0 {
		return nil, fmt.Errorf("localfleet: Max %d must be positive (it caps the instances)", opts.Max)
	}
	if opts.BootDelay < 0 || opts.StopDelay < 0 {
		return nil, fmt.Errorf("localfleet: BootDelay %v and StopDelay %v must not be negative", opts.BootDelay, opts.StopDelay)
	}
	if opts.Run == nil {
		opts.Run = func(ctx context.Context, _ fleet.Instance) error { <-ctx.Done(); return nil }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, stop := context.WithCancel(context.Background())
	return &Fleet{opts: opts, log: log, insts: make(map[string]*instance), base: base, stopAll: stop}, nil
}

func (in *instance) snapshot() fleet.Instance {
	return fleet.Instance{ID: in.id, State: in.state, Since: in.since}
}

// setLocked moves in to state s; the caller holds f.mu.
func (f *Fleet) setLocked(in *instance, s fleet.State) {
	f.log.Debug("instance state", "id", in.id, "from", in.state, "to", s)
	in.state = s
	in.since = f.opts.Now()
}

// List returns every instance, sorted by ID (IDs grow with each launch).
func (f *Fleet) List(ctx context.Context) ([]fleet.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	out := make([]fleet.Instance, 0, len(f.insts))
	for _, in := range f.insts {
		out = append(out, in.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LastError returns the latest error Run returned on instance id (nil if none);
// fleet.ErrNotFound for an unknown id.
func (f *Fleet) LastError(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.insts[id]
	if !ok {
		return fmt.Errorf("localfleet: instance %q: %w", id, fleet.ErrNotFound)
	}
	return in.lastErr
}

// lookupLocked resolves ids, all or none, and checks each state against ok.
func (f *Fleet) lookupLocked(op string, ids []string, ok map[fleet.State]bool) ([]*instance, error) {
	if f.closed {
		return nil, ErrClosed
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("localfleet: %s: no instance ids given", op)
	}
	res := make([]*instance, 0, len(ids))
	for _, id := range ids {
		in, found := f.insts[id]
		if !found {
			return nil, fmt.Errorf("localfleet: %s: instance %q is not in this fleet: %w", op, id, fleet.ErrNotFound)
		}
		if !ok[in.state] {
			return nil, fmt.Errorf("localfleet: %s: instance %s is %s: %w", op, id, in.state, fleet.ErrIncorrectState)
		}
		res = append(res, in)
	}
	return res, nil
}

// Start boots stopped instances again (each gets a new Run once running). It
// checks every id before changing any.
func (f *Fleet) Start(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	insts, err := f.lookupLocked("start", ids, map[fleet.State]bool{fleet.Stopped: true, fleet.Pending: true, fleet.Running: true})
	if err != nil {
		return err
	}
	for _, in := range insts {
		if in.state == fleet.Stopped {
			f.bootLocked(in)
		}
	}
	return nil
}

// Retire implements scaling.Retirer: stop after the current job. A local stop is
// already that (the app-tier worker finishes the image in hand when its context
// is cancelled), so Retire is Stop.
func (f *Fleet) Retire(ctx context.Context, ids ...string) error { return f.Stop(ctx, ids...) }

// Stop asks running instances to stop: their Run's context is cancelled and they
// stay stopping until Run returns (a busy worker finishes its job first). It
// checks every id before changing any.
func (f *Fleet) Stop(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	insts, err := f.lookupLocked("stop", ids, map[fleet.State]bool{fleet.Running: true, fleet.Stopping: true, fleet.Stopped: true})
	if err != nil {
		return err
	}
	for _, in := range insts {
		if in.state == fleet.Running {
			f.setLocked(in, fleet.Stopping)
			in.cancel()
		}
	}
	return nil
}

// Launch creates n instances (pending), all or none: fleet.ErrCapacity when that
// would exceed Max.
func (f *Fleet) Launch(ctx context.Context, n int) ([]fleet.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("localfleet: launch count %d must be positive", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if len(f.insts)+n > f.opts.Max {
		return nil, fmt.Errorf("localfleet: launching %d would make %d instances, above the cap of %d: %w", n, len(f.insts)+n, f.opts.Max, fleet.ErrCapacity)
	}
	out := make([]fleet.Instance, 0, n)
	for range n {
		f.nextID++
		in := &instance{id: fmt.Sprintf("i-%017x", f.nextID)}
		f.insts[in.id] = in
		f.bootLocked(in)
		out = append(out, in.snapshot())
	}
	return out, nil
}

// bootLocked moves in to pending and starts its life-cycle goroutine.
func (f *Fleet) bootLocked(in *instance) {
	f.setLocked(in, fleet.Pending)
	f.wg.Add(1)
	go f.lifecycle(in)
}

// wait sleeps d unless the fleet closes first; it reports whether it slept fully.
func (f *Fleet) wait(d time.Duration) bool { return pause.For(f.base, d) == nil }

// lifecycle drives one boot: pending -> running -> Run -> stopping -> stopped.
func (f *Fleet) lifecycle(in *instance) {
	defer f.wg.Done()
	booted := f.wait(f.opts.BootDelay)
	f.mu.Lock()
	if !booted || f.closed {
		f.setLocked(in, fleet.Stopped)
		f.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(f.base)
	in.cancel = cancel
	f.setLocked(in, fleet.Running)
	snap := in.snapshot()
	f.mu.Unlock()

	err := f.run(ctx, snap)

	f.mu.Lock()
	if err != nil {
		in.lastErr = err
		f.log.Warn("instance run failed", "id", in.id, "err", err)
	}
	if in.state == fleet.Running { // Run returned by itself: the worker stopped its instance
		f.log.Debug("instance stopped itself", "id", in.id)
		f.setLocked(in, fleet.Stopping)
	}
	f.mu.Unlock()
	cancel()
	f.wait(f.opts.StopDelay)
	f.mu.Lock()
	in.cancel = nil
	f.setLocked(in, fleet.Stopped)
	f.mu.Unlock()
}

// run calls Options.Run, turning a panic into an error so one bad worker cannot
// take the process down.
func (f *Fleet) run(ctx context.Context, snap fleet.Instance) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("localfleet: instance %s: Run panicked: %v", snap.ID, r)
		}
	}()
	return f.opts.Run(ctx, snap)
}

// Close stops every instance (cancelling each Run and skipping the delays), waits
// for every Run to return, and makes later calls fail with ErrClosed. Idempotent.
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		f.wg.Wait()
		return nil
	}
	f.closed = true
	for _, in := range f.insts {
		if in.state == fleet.Running {
			f.setLocked(in, fleet.Stopping)
		}
	}
	f.mu.Unlock()
	f.stopAll()
	f.wg.Wait()
	return nil
}
