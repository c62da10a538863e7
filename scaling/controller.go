package scaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
)

// QueueCounter is the part of the queue port the controller needs.
type QueueCounter interface {
	Counts(ctx context.Context) (queue.Counts, error)
}

// Retirer is an optional fleet capability: Retire asks running instances to stop
// themselves after their current job (and idle ones at once), so scale-in never
// kills a busy worker. Fleets without it scale in only by workers' idle timeouts.
type Retirer interface {
	Retire(ctx context.Context, ids ...string) error
}

// ControllerOptions configure a Controller.
type ControllerOptions struct {
	// Queue reports the request queue's approximate counts.
	Queue QueueCounter
	// Fleet is the app tier's instance pool.
	Fleet fleet.Fleet
	// Policy decides; nil means DefaultPolicy().
	Policy Policy
	// Max caps pending+running instances; <= 0 means DefaultMax.
	Max int
	// Logger receives one line per decision; nil discards.
	Logger *slog.Logger
	// History bounds Recent(); <= 0 means DefaultHistory.
	History int
	// RetireAfter: only instances running at least this long are retired (their
	// first billed minute is paid anyway); <= 0 means DefaultRetireAfter.
	RetireAfter time.Duration
	// Overflow, when set, starts overflow invocations the policy asks for
	// (Decision.Overflow); nil means none (local mode; the scaler Lambda without FACEFLEET_OVERFLOW_FUNCTION).
	Overflow OverflowInvoker
}

// Defaults for ControllerOptions.
const (
	DefaultMax         = 20
	DefaultHistory     = 100
	DefaultRetireAfter = time.Minute
)

// Controller observes the queue and the fleet, asks its policy, acts through the
// fleet port and remembers its recent decisions. It is safe for concurrent use: a
// ticker and a nudge may call Step at the same time; steps are serialised so two
// evaluations never launch for the same backlog.
type Controller struct {
	q           QueueCounter
	f           fleet.Fleet
	policy      Policy
	max         int
	log         *slog.Logger
	history     int
	retireAfter time.Duration
	ov          OverflowInvoker

	mu     sync.Mutex // serialises steps and guards recent
	recent []Decision
}

// NewController builds a controller. Queue and Fleet are required; a nil one makes
// every Step return an error instead of panicking.
func NewController(o ControllerOptions) *Controller {
	if o.Policy == nil {
		o.Policy = DefaultPolicy()
	}
	if o.Max <= 0 {
		o.Max = DefaultMax
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetireAfter <= 0 {
		o.RetireAfter = DefaultRetireAfter
	}
	return &Controller{q: o.Queue, f: o.Fleet, policy: o.Policy, max: o.Max, log: o.Logger, history: o.History, retireAfter: o.RetireAfter, ov: o.Overflow}
}

// Policy returns the controller's policy.
func (c *Controller) Policy() Policy { return c.policy }

// Max returns the cap on pending+running instances.
func (c *Controller) Max() int { return c.max }

// Step runs one periodic evaluation at now.
func (c *Controller) Step(ctx context.Context, now time.Time) (Decision, error) {
	return c.StepTrigger(ctx, now, TriggerTick, false)
}

// Nudge runs one evaluation because the web tier just enqueued a request and saw
// no running worker; policies may treat it as evidence of work the approximate
// count does not show yet.
func (c *Controller) Nudge(ctx context.Context, now time.Time) (Decision, error) {
	return c.StepTrigger(ctx, now, TriggerNudge, true)
}

// StepTrigger is Step with the trigger named (for logs and policies) and the nudge
// flag set explicitly.
//
// Observation failures return a no-op decision and the error. Action failures
// (fleet.ErrCapacity, throttling) are logged, recorded in Decision.Error and
// returned; the decision then says what was really done, which is always safe:
// fewer starts or stops than asked, never more.
func (c *Controller) StepTrigger(ctx context.Context, now time.Time, trigger string, nudge bool) (Decision, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.q == nil || c.f == nil {
		return Decision{Reason: "controller misconfigured"}, errors.New("scaling: controller needs both a Queue and a Fleet (ControllerOptions)")
	}
	obs := Observation{Now: now, Max: c.max, Trigger: trigger, Nudge: nudge}
	counts, err := c.q.Counts(ctx)
	if err != nil {
		return c.failObserve(obs, fmt.Errorf("scaling: reading queue counts: %w", err))
	}
	insts, err := c.f.List(ctx)
	if err != nil {
		return c.failObserve(obs, fmt.Errorf("scaling: listing fleet instances: %w", err))
	}
	obs.Visible, obs.InFlight = max(counts.Visible, 0), max(counts.InFlight, 0)
	by := fleet.CountByState(insts)
	obs.Pending, obs.Running, obs.Stopping, obs.Stopped = by[fleet.Pending], by[fleet.Running], by[fleet.Stopping], by[fleet.Stopped]
	retirer, canRetire := c.f.(Retirer)
	obs.CanRetire = canRetire
	if c.ov != nil {
		if obs.Overflow, obs.OverflowMax, err = c.ov.Active(ctx); err != nil {
			return c.failObserve(obs, fmt.Errorf("scaling: counting overflow invocations: %w", err))
		}
	}

	d := c.policy.Decide(obs)
	d.Observation = obs
	// Never above Max, never stop more than exist.
	d.Start = min(max(d.Start, 0), max(c.max-obs.Pending-obs.Running, 0))
	d.Stop = min(max(d.Stop, 0), obs.Pending+obs.Running)
	d.Retire = min(max(d.Retire, 0), obs.Running)
	d.Overflow = min(max(d.Overflow, 0), max(obs.OverflowMax-obs.Overflow, 0))
	if !canRetire {
		d.Retire = 0
	}
	if d.Start > 0 { // a policy bug; starting and stopping at once only burns money
		d.Stop, d.Retire = 0, 0
	}

	var actErr error
	switch {
	case d.Start > 0:
		actErr = c.start(ctx, insts, &d)
	case d.Stop > 0:
		actErr = c.stop(ctx, insts, &d)
	case d.Retire > 0:
		actErr = c.retire(ctx, retirer, insts, now, &d)
	}
	if d.Overflow > 0 {
		if err := c.ov.Invoke(ctx, d.Overflow); err != nil {
			actErr = errors.Join(actErr, fmt.Errorf("scaling: invoking %d overflow workers: %w", d.Overflow, err))
			d.Overflow = 0
		}
	}
	if actErr != nil {
		d.Error = actErr.Error()
		c.log.Warn("scaling: fleet action failed; decision reduced to what was done",
			"policy", c.policy.Name(), "error", actErr, "started", d.Started, "launched", d.Launched, "stop", d.Stop)
	}
	// Decisions that act are logged at info; the no-op ones of an idle system (one a
	// second in local mode) at debug, so logs stay readable yet complete with -log-level debug.
	level := slog.LevelDebug
	if d.Start > 0 || d.Stop > 0 || d.Retire > 0 || d.Overflow > 0 || actErr != nil {
		level = slog.LevelInfo
	}
	c.log.Log(ctx, level, "scaling decision", "policy", c.policy.Name(), "trigger", trigger, "nudge", nudge,
		"visible", obs.Visible, "in_flight", obs.InFlight, "pending", obs.Pending, "running", obs.Running,
		"stopping", obs.Stopping, "stopped", obs.Stopped, "max", c.max,
		"desired", d.Desired, "start", d.Start, "stop", d.Stop, "retire", d.Retire, "overflow", d.Overflow, "reason", d.Reason)
	c.remember(d)
	return d, actErr
}

func (c *Controller) failObserve(obs Observation, err error) (Decision, error) {
	d := Decision{Observation: obs, Reason: "no action: observation failed", Error: err.Error()}
	c.log.Warn("scaling: cannot observe; doing nothing this step", "policy", c.policy.Name(), "error", err)
	c.remember(d)
	return d, err
}

// start brings up d.Start instances: stopped ones first (they are faster and keep
// the pool small), then launches. On error it records what was actually done.
func (c *Controller) start(ctx context.Context, insts []fleet.Instance, d *Decision) error {
	want := d.Start
	var stopped []fleet.Instance
	for _, in := range insts {
		if in.State == fleet.Stopped {
			stopped = append(stopped, in)
		}
	}
	// Longest-stopped first, then by ID: deterministic.
	sort.Slice(stopped, func(i, j int) bool {
		if !stopped[i].Since.Equal(stopped[j].Since) {
			return stopped[i].Since.Before(stopped[j].Since)
		}
		return stopped[i].ID < stopped[j].ID
	})
	var errs []error
	if n := min(want, len(stopped)); n > 0 {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = stopped[i].ID
		}
		if err := c.f.Start(ctx, ids...); err != nil {
			// A stopped instance may have been taken meanwhile (ErrIncorrectState):
			// fall back to launching rather than leaving the backlog waiting.
			errs = append(errs, fmt.Errorf("starting %d stopped instances: %w", n, err))
		} else {
			d.Started = n
		}
	}
	if rest := want - d.Started; rest > 0 {
		launched, err := c.f.Launch(ctx, rest)
		d.Launched = min(len(launched), rest)
		switch {
		case err != nil && ctx.Err() != nil:
			// No answer in time says nothing about what EC2 did: the launch may
			// have happened. The next step counts it among the pending ones.
			errs = append(errs, fmt.Errorf("launching %d instances: no answer before the step's deadline, so they may still start (the next step counts them): %w", rest, err))
		case err != nil:
			errs = append(errs, fmt.Errorf("launching %d instances: %w", rest, err))
		}
	}
	d.Start = d.Started + d.Launched
	if len(errs) > 0 {
		return fmt.Errorf("scaling: %w", errors.Join(errs...))
	}
	return nil
}

// stop stops up to d.Stop running instances, the most recently started first: the
// fleet port does not say which workers are busy, and those are the least likely
// to hold a long job. Pending ones are left to come up and idle out, since EC2
// refuses to stop an instance that never reached running (IncorrectInstanceState).
// Our policy never asks for stops: workers stop themselves when idle.
func (c *Controller) stop(ctx context.Context, insts []fleet.Instance, d *Decision) error {
	var cand []fleet.Instance
	for _, in := range insts {
		if in.State == fleet.Running {
			cand = append(cand, in)
		}
	}
	sort.Slice(cand, func(i, j int) bool {
		a, b := cand[i], cand[j]
		if !a.Since.Equal(b.Since) {
			return a.Since.After(b.Since)
		}
		return a.ID < b.ID
	})
	n := min(d.Stop, len(cand))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = cand[i].ID
	}
	if n == 0 {
		d.Stop = 0
		return nil
	}
	if err := c.f.Stop(ctx, ids...); err != nil {
		d.Stop = 0
		return fmt.Errorf("scaling: stopping %d instances: %w", n, err)
	}
	d.Stop = n
	return nil
}

// retire asks d.Retire running instances, oldest first among those running at
// least RetireAfter, to stop after their current job. Asking again for the same
// instances is harmless: the order is stable until they stop.
func (c *Controller) retire(ctx context.Context, r Retirer, insts []fleet.Instance, now time.Time, d *Decision) error {
	var cand []fleet.Instance
	for _, in := range insts {
		if in.State == fleet.Running && now.Sub(in.Since) >= c.retireAfter {
			cand = append(cand, in)
		}
	}
	sort.Slice(cand, func(i, j int) bool {
		if !cand[i].Since.Equal(cand[j].Since) {
			return cand[i].Since.Before(cand[j].Since)
		}
		return cand[i].ID < cand[j].ID
	})
	n := min(d.Retire, len(cand))
	d.Retire = 0
	if n == 0 {
		return nil
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = cand[i].ID
	}
	if err := r.Retire(ctx, ids...); err != nil {
		return fmt.Errorf("scaling: retiring %d instances: %w", n, err)
	}
	d.Retire = n
	return nil
}

func (c *Controller) remember(d Decision) {
	c.recent = append(c.recent, d)
	if over := len(c.recent) - c.history; over > 0 {
		c.recent = append(c.recent[:0:0], c.recent[over:]...)
	}
}

// Recent returns the last decisions, newest last (a copy).
func (c *Controller) Recent() []Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Decision(nil), c.recent...)
}
