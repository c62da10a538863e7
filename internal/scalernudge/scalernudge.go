// Package scalernudge wakes the scaler Lambda from the web tier: when a request
// arrives while no app-tier worker is pending or running, it invokes the function
// asynchronously (InvocationType Event) with scalerfn.NudgeEvent, so the first
// worker starts within about a second instead of at the next schedule tick. A
// burst makes one call: at most one check (and invoke) per MinGap, never two at
// once. The simulator models exactly this (sim, scalerfn.Deployed).
package scalernudge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// Invoker is the part of *lambda.Client the nudger uses.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Lister lists the app tier's instances (fleet.Fleet's List; ec2fleet in the web
// tier, which needs only ec2:DescribeInstances).
type Lister interface {
	List(ctx context.Context) ([]fleet.Instance, error)
}

// Options configure a Nudger.
type Options struct {
	// Function is the scaler's name or ARN (required).
	Function string
	// Invoker calls Lambda's Invoke API (required).
	Invoker Invoker
	// Fleet, when set, is checked first: a pending or running instance means a
	// worker will take the request and no invoke is made. Without it every
	// nudge that passes the rate limit invokes (the policy ignores a nudge when
	// capacity exists, so that only costs an invocation).
	Fleet Lister
	// MinGap is the least time between two checks. Default
	// scalerfn.Deployed.NudgeMinGap (5 s, the scaler's loop interval).
	MinGap time.Duration
	// Timeout bounds one check plus invoke. Default 3 s; at most MinGap.
	Timeout time.Duration
	// Now is the clock (tests pass a fake). Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Stats count what the nudger did.
type Stats struct {
	Invoked    int64 `json:"invoked"`    // Invoke accepted (202)
	Failed     int64 `json:"failed"`     // Invoke failed or answered other than 202
	Busy       int64 `json:"busy"`       // the fleet had a pending or running instance: no invoke
	Suppressed int64 `json:"suppressed"` // within MinGap of the last check, or one in flight
}

// Nudger invokes the scaler. Nudge is safe for concurrent use and never blocks.
type Nudger struct {
	o      Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	last   time.Time
	busy   bool
	closed bool
	stats  Stats
}

// New validates o.
func New(o Options) (*Nudger, error) {
	switch {
	case o.Function == "":
		return nil, errors.New("scalernudge: Options.Function (the scaler's name or ARN) is required")
	case o.Invoker == nil:
		return nil, errors.New("scalernudge: Options.Invoker is required")
	case o.MinGap < 0 || o.Timeout < 0:
		return nil, fmt.Errorf("scalernudge: negative MinGap %v or Timeout %v", o.MinGap, o.Timeout)
	}
	if o.MinGap == 0 {
		o.MinGap = scalerfn.Deployed.NudgeMinGap
	}
	if o.Timeout == 0 {
		o.Timeout = min(3*time.Second, o.MinGap)
	}
	if o.Timeout > o.MinGap {
		return nil, fmt.Errorf("scalernudge: Timeout %v exceeds MinGap %v (one call at a time, at most one per MinGap)", o.Timeout, o.MinGap)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Nudger{o: o, log: o.Logger.With("component", "scalernudge"), ctx: ctx, cancel: cancel}, nil
}

// Nudge is called after a request is enqueued. Within MinGap of the last check,
// or while one is in flight, it does nothing; otherwise it checks the fleet and
// invokes the scaler in the background.
func (n *Nudger) Nudge() {
	now := n.o.Now()
	n.mu.Lock()
	if n.closed || n.busy || (!n.last.IsZero() && now.Sub(n.last) < n.o.MinGap) {
		n.stats.Suppressed++
		n.mu.Unlock()
		return
	}
	n.last, n.busy = now, true
	n.wg.Add(1)
	n.mu.Unlock()
	go n.fire()
}

func (n *Nudger) fire() {
	defer n.wg.Done()
	ctx, cancel := context.WithTimeout(n.ctx, n.o.Timeout)
	defer cancel()
	outcome := n.check(ctx)
	n.mu.Lock()
	n.busy = false
	switch outcome {
	case outcomeInvoked:
		n.stats.Invoked++
	case outcomeFailed:
		n.stats.Failed++
	case outcomeBusy:
		n.stats.Busy++
	}
	n.mu.Unlock()
}

type outcome int

const (
	outcomeInvoked outcome = iota
	outcomeFailed
	outcomeBusy
)

func (n *Nudger) check(ctx context.Context) outcome {
	if n.o.Fleet != nil {
		insts, err := n.o.Fleet.List(ctx)
		if err != nil {
			// Cannot tell: nudge anyway (a needless nudge costs one invocation).
			n.log.Warn("scaler nudge: cannot list the fleet; invoking anyway", "err", err)
		} else {
			for _, in := range insts {
				if in.State == fleet.Pending || in.State == fleet.Running {
					return outcomeBusy
				}
			}
		}
	}
	out, err := n.o.Invoker.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(n.o.Function),
		InvocationType: types.InvocationTypeEvent,
		Payload:        []byte(scalerfn.NudgeEvent),
	})
	if err != nil {
		n.log.Warn("scaler nudge: invoke failed; the scaler's schedule and alarm still run it", "function", n.o.Function, "err", err)
		return outcomeFailed
	}
	// Lambda answers an Event invoke 202; the Runtime Interface Emulator runs
	// every invoke synchronously and answers 200.
	if out.StatusCode < 200 || out.StatusCode > 299 {
		n.log.Warn("scaler nudge: unexpected invoke status", "function", n.o.Function, "status", out.StatusCode)
		return outcomeFailed
	}
	n.log.Info("scaler nudged: a request found no worker", "function", n.o.Function)
	return outcomeInvoked
}

// Stats returns the counts so far.
func (n *Nudger) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Wait returns when no check or invoke is in flight.
func (n *Nudger) Wait() { n.wg.Wait() }

// Close stops new nudges, cancels the one in flight and waits for it.
func (n *Nudger) Close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
}
