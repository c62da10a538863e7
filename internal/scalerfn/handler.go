// Package scalerfn is the scaler Lambda's handler: it runs the same
// scaling.Controller as local mode, driven by EventBridge's 1-minute schedule, by a
// CloudWatch alarm whose actions invoke the function directly, or by a hand-made
// invoke. Within one invocation it re-evaluates every Interval until shortly before
// the deadline, so a burst is seen in seconds rather than at the next schedule, and
// returns early once queue and fleet are empty (Idle): the web tier's nudge
// (NudgeEvent) wakes it when a request then finds no worker.
package scalerfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/decisionlog"
	"github.com/facefleet/facefleet/internal/metrics"
	"github.com/facefleet/facefleet/internal/pause"
	"github.com/facefleet/facefleet/scaling"
)

// Controller is the part of scaling.Controller the handler uses.
type Controller interface {
	StepTrigger(ctx context.Context, now time.Time, trigger string, nudge bool) (scaling.Decision, error)
}

// Metrics publishes samples; *metrics.CloudWatch (PutMetricData) in the Lambda.
type Metrics interface {
	Publish(ctx context.Context, data ...metrics.Datum) error
}

// Clock is the time source; tests inject a fake so nothing sleeps.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done (returning ctx's error).
	Sleep(ctx context.Context, d time.Duration) error
}

// Metric names published each step.
const (
	MetricBacklog = "Backlog" // visible messages on the request queue
	MetricDesired = "DesiredInstances"
	MetricRunning = "RunningInstances"
)

// Defaults for Options.
const (
	DefaultInterval = 5 * time.Second
	DefaultMargin   = 3 * time.Second
	// DefaultFlushTimeout bounds the final PutMetricData.
	DefaultFlushTimeout = 2 * time.Second
)

// Options configure the handler.
type Options struct {
	Controller Controller // required
	Metrics    Metrics    // nil: no metrics
	Clock      Clock      // nil: wall clock
	Logger     *slog.Logger
	// Interval between controller steps within one invocation.
	Interval time.Duration
	// Margin is kept free before the invocation's deadline for the metrics flush
	// and the response.
	Margin time.Duration
	// FlushTimeout bounds the metrics flush at the end of an invocation.
	FlushTimeout time.Duration
	// Dimensions are added to every published datum: the Lambda sets
	// DimensionStack, so two stacks sharing a namespace keep their numbers apart.
	Dimensions map[string]string
	// DecisionLog, when set, is the output store: at the end of each invocation
	// the decisions that acted or failed, and the last one, are appended to
	// decisionlog.Key there (one read and one write), which the web tier shows
	// on /v1/status and the page. Nil: decisions are only logged.
	DecisionLog blob.Store
}

// DimensionStack names the stack (the fleet's tag value) on every metric.
const DimensionStack = "Stack"

// Handler handles invocations. Safe for sequential use (Lambda delivers one event
// at a time per execution environment).
type Handler struct {
	ctrl     Controller
	metrics  Metrics
	clock    Clock
	log      *slog.Logger
	interval time.Duration
	margin   time.Duration
	flush    time.Duration
	dims     map[string]string
	declog   blob.Store
	// unwritten holds decisions whose decision-log write failed (a slow or
	// refused S3 call at the end of an invocation); the next invocation of
	// this execution environment writes them first, so a start is not missing
	// from the log because one write timed out. At most decisionlog.Max.
	unwritten []scaling.Decision
}

// New validates opts.
func New(opts Options) (*Handler, error) {
	if opts.Controller == nil {
		return nil, errors.New("scalerfn: Options.Controller is required")
	}
	h := &Handler{ctrl: opts.Controller, metrics: opts.Metrics, clock: opts.Clock, log: opts.Logger,
		interval: opts.Interval, margin: opts.Margin, flush: opts.FlushTimeout, dims: maps.Clone(opts.Dimensions),
		declog: opts.DecisionLog}
	if h.clock == nil {
		h.clock = wallClock{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.interval == 0 {
		h.interval = DefaultInterval
	}
	if h.margin == 0 {
		h.margin = DefaultMargin
	}
	if h.flush == 0 {
		h.flush = DefaultFlushTimeout
	}
	if h.interval < 0 || h.margin < 0 || h.flush < 0 {
		return nil, fmt.Errorf("scalerfn: negative Interval %v, Margin %v or FlushTimeout %v", h.interval, h.margin, h.flush)
	}
	return h, nil
}

// Result is the invocation's answer (the Lambda response body).
type Result struct {
	Trigger Trigger `json:"trigger"`
	// Alarm and AlarmState are set for alarm invokes.
	Alarm      string `json:"alarm,omitempty"`
	AlarmState string `json:"alarm_state,omitempty"`
	// Steps counts controller steps; Failed those that returned an error (no
	// action is taken on a failed step).
	Steps  int `json:"steps"`
	Failed int `json:"failed"`
	// Idle is true when a looping invocation returned early because queue and
	// fleet were empty (see Idle).
	Idle bool `json:"idle,omitempty"`
	// Started and Stopped sum the decisions' Start and Stop over the steps.
	Started int `json:"started"`
	Stopped int `json:"stopped"`
	// Last is the last successful decision.
	Last       *scaling.Decision `json:"last,omitempty"`
	LastError  string            `json:"last_error,omitempty"`
	MetricsErr string            `json:"metrics_error,omitempty"`
	// DecisionsErr says why the decision log was not written (see
	// Options.DecisionLog); the invocation still succeeds.
	DecisionsErr string `json:"decisions_error,omitempty"`
}

// ErrAllStepsFailed matches (errors.Is) the *StepsFailedError returned when no
// step of an invocation succeeded, so Lambda's Errors metric shows a scaler that
// cannot see its queue or fleet.
var ErrAllStepsFailed = errors.New("scalerfn: every controller step failed")

// StepsFailedError reports an invocation whose every step failed (Lambda shows
// errorType "StepsFailedError"); Err is the last step's error.
type StepsFailedError struct {
	Steps int
	Err   error
}

func (e *StepsFailedError) Error() string {
	return fmt.Sprintf("%v (%d of %d): %v", ErrAllStepsFailed, e.Steps, e.Steps, e.Err)
}

func (e *StepsFailedError) Unwrap() []error { return []error{ErrAllStepsFailed, e.Err} }

// Invoke is the Lambda handler: lambda.Start(h.Invoke).
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (res Result, err error) {
	ev, err := ParseEvent(payload)
	if err != nil {
		h.log.ErrorContext(ctx, "scaler: rejected event", "err", err, "bytes", len(payload))
		return Result{}, err
	}
	res = Result{Trigger: ev.Trigger}
	if ev.Alarm != nil {
		res.Alarm, res.AlarmState = ev.Alarm.AlarmData.AlarmName, ev.Alarm.AlarmData.State.Value
	}
	h.log.InfoContext(ctx, "scaler: invoked", "trigger", ev.Trigger, "loop", ev.Loop, "alarm", res.Alarm, "alarm_state", res.AlarmState)

	// Without a deadline (a direct call outside Lambda) only one step runs.
	stopAt := h.clock.Now()
	stepCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		if ev.Loop {
			stopAt = dl.Add(-h.margin)
		}
		// A hung AWS call must not eat the time kept for the metrics flush.
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithDeadline(ctx, dl.Add(-h.margin/2))
		defer cancel()
	}
	var (
		samples []metrics.Datum
		lastErr error
		record  []scaling.Decision // for the decision log
	)
	trigger, nudge := stepTrigger(ev), ev.Nudge
	for {
		now := h.clock.Now()
		d, serr := h.step(stepCtx, now, trigger, nudge)
		// Later steps of a loop are periodic re-evaluations.
		trigger, nudge = scaling.TriggerTick, false
		res.Steps++
		// The controller reduces Start/Stop to what it really did when an action
		// fails (and leaves them 0 when it could not observe), so they always count.
		res.Started += max(d.Start, 0)
		res.Stopped += max(d.Stop, 0)
		record = appendRecord(record, d, serr, now)
		if serr != nil {
			res.Failed++
			lastErr = serr
			res.LastError = serr.Error()
			h.log.ErrorContext(ctx, "scaler: step failed; only safe actions taken", "step", res.Steps, "err", serr,
				"start", d.Start, "stop", d.Stop)
		} else {
			dc := d
			res.Last = &dc
			samples = append(samples,
				metrics.Datum{Name: MetricBacklog, Value: float64(d.Observation.Visible), Unit: metrics.Count, Time: now, Dimensions: h.dims},
				metrics.Datum{Name: MetricDesired, Value: float64(d.Desired), Unit: metrics.Count, Time: now, Dimensions: h.dims},
				metrics.Datum{Name: MetricRunning, Value: float64(d.Observation.Running), Unit: metrics.Count, Time: now, Dimensions: h.dims})
			h.log.InfoContext(ctx, "scaler: step", "step", res.Steps, "visible", d.Observation.Visible,
				"in_flight", d.Observation.InFlight, "running", d.Observation.Running, "pending", d.Observation.Pending,
				"stopped", d.Observation.Stopped, "desired", d.Desired, "start", d.Start, "stop", d.Stop, "reason", d.Reason)
		}
		if !ev.Loop || stepCtx.Err() != nil || now.Add(h.interval).After(stopAt) {
			break
		}
		if serr == nil && Idle(d) {
			res.Idle = true
			break
		}
		if err := h.clock.Sleep(ctx, h.interval); err != nil {
			break
		}
	}
	// The metrics flush and the decision log write run side by side, so both
	// fit in the margin kept before the deadline.
	decErr := make(chan error, 1)
	go func() { decErr <- h.writeDecisions(ctx, record) }()
	if err := h.publish(ctx, samples); err != nil {
		res.MetricsErr = err.Error()
		h.log.WarnContext(ctx, "scaler: metrics not published", "err", err)
	}
	if err := <-decErr; err != nil {
		res.DecisionsErr = err.Error()
		h.log.WarnContext(ctx, "scaler: decision log not written", "err", err)
	}
	h.log.InfoContext(ctx, "scaler: done", "steps", res.Steps, "failed", res.Failed, "started", res.Started, "stopped", res.Stopped)
	if res.Failed == res.Steps {
		return res, &StepsFailedError{Steps: res.Steps, Err: lastErr}
	}
	return res, nil
}

// step runs one controller step, turning a panic into an error so one bad step
// never takes the runtime down.
func (h *Handler) step(ctx context.Context, now time.Time, trigger string, nudge bool) (d scaling.Decision, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("scalerfn: controller panicked: %v", r)
		}
	}()
	return h.ctrl.StepTrigger(ctx, now, trigger, nudge)
}

// appendRecord adds one step's decision to what the decision log gets: the
// steps that acted or failed are kept, and the last step is always kept (it
// says what the scaler thinks now), so a quiet minute of steps every 5 s costs
// one entry rather than twelve, as the page's local history keeps only acting
// decisions plus the newest.
func appendRecord(rec []scaling.Decision, d scaling.Decision, serr error, now time.Time) []scaling.Decision {
	if serr != nil && d.Error == "" {
		d.Error = serr.Error()
	}
	if d.Observation.Now.IsZero() {
		d.Observation.Now = now
	}
	if n := len(rec); n > 0 && !rec[n-1].Acted() {
		rec = rec[:n-1] // the previous "last" was a no-op: drop it
	}
	return append(rec, d)
}

// writeDecisions appends rec, after any decisions an earlier invocation could
// not write, to the decision log within the flush timeout. On failure they are
// kept for the next invocation (the newest decisionlog.Max of them).
func (h *Handler) writeDecisions(ctx context.Context, rec []scaling.Decision) error {
	if h.declog == nil || len(rec)+len(h.unwritten) == 0 {
		return nil
	}
	all := append(h.unwritten, rec...)
	h.unwritten = nil
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.flush)
	defer cancel()
	readErr, err := decisionlog.Append(fctx, h.declog, all...)
	if readErr != nil {
		h.log.WarnContext(ctx, "scaler: decision log unreadable; starting it afresh", "err", readErr)
	}
	if err != nil {
		h.unwritten = all[max(len(all)-decisionlog.Max, 0):]
		return fmt.Errorf("%w (%d decisions kept for the next invocation)", err, len(h.unwritten))
	}
	return nil
}

// stepTrigger names the first step of an invocation for the controller's log
// and the policy.
func stepTrigger(ev Event) string {
	switch ev.Trigger {
	case TriggerSchedule:
		return scaling.TriggerSchedule
	case TriggerAlarm:
		return scaling.TriggerAlarm
	case TriggerNudge:
		return scaling.TriggerNudge
	}
	return scaling.TriggerTick
}

// publish sends the invocation's samples in one batch: one PutMetricData per
// invocation instead of one per step keeps the request charge ~12x lower.
func (h *Handler) publish(ctx context.Context, samples []metrics.Datum) error {
	if h.metrics == nil || len(samples) == 0 {
		return nil
	}
	// The invocation context may be nearly spent; the margin was kept for this.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.flush)
	defer cancel()
	return h.metrics.Publish(fctx, samples...)
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error { return pause.For(ctx, d) }
