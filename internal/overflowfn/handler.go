// Package overflowfn is the overflow Lambda's handler (functions/overflow,
// issue 15): short-lived workers that answer from the request queue while the
// EC2 capacity the scaler asked for boots.
//
// Each invocation runs one app-tier worker (apptier.Worker built by
// service.NewWorker, the same engine, store and answer path as the EC2 tier)
// and stops it when the first of these happens:
//
//   - an app-tier instance has been running for EC2Warmup: the invocation
//     lists the fleet by its tag (ec2:DescribeInstances) before it takes
//     anything and then every FleetCheck, and drains once one has (EC2's
//     "running" comes before its worker has loaded the models: the simulator
//     assumes 2 s, its Load), so the overflow bridges the boot and does not
//     compete for long with capacity that is already paid for;
//   - the deadline nears: it drains Margin before the invocation's deadline,
//     Margin being longer than one receive (WorkerWait) plus one image;
//   - the queue stays empty for the worker's idle timeout (FACEFLEET_IDLE_TIMEOUT).
//
// Draining (apptier.Worker.Drain) lets the receive in progress finish and the
// images in hand be answered; nothing is cancelled mid-receive. A request still
// in hand when Lambda ends the invocation anyway (an image slower than the
// margin) is never deleted: it returns to the queue when its visibility timeout
// lapses and is answered by whoever receives it next.
//
// The payload is the scaler's WorkEvent ({"action":"work"}) or {}; the
// invocation decides when to stop by its own checks, so a late asynchronous
// delivery (Lambda retries a throttled event for up to its maximum event age)
// returns at once when EC2 already runs.
package overflowfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// WorkEvent is the payload the scaler sends (InvocationType Event).
const WorkEvent = scalerfn.OverflowEvent

// Stop reasons in Result.Stop.
const (
	StopEC2Running = "ec2-running" // an app-tier instance runs
	StopDeadline   = "deadline"    // Margin before the invocation's deadline
	StopIdle       = "idle"        // the worker's idle timeout passed without work
)

// Worker is the part of *apptier.Worker the handler uses.
type Worker interface {
	Run(ctx context.Context) error
	Drain()
}

// Marker is the part of blob.Store the markers need.
type Marker interface {
	Put(ctx context.Context, key string, data []byte, contentType string) (string, error)
	Delete(ctx context.Context, key string) error
}

// Lister lists the app tier's instances (ec2fleet's List).
type Lister interface {
	List(ctx context.Context) ([]fleet.Instance, error)
}

// Options configure a Handler.
type Options struct {
	// NewWorker builds the invocation's worker with the given id (required).
	NewWorker func(id string) (Worker, error)
	// Fleet is the app tier (required).
	Fleet Lister
	// Margin: stop receiving this long before the deadline (required, > WorkerWait).
	Margin time.Duration
	// WorkerWait is the worker's long-poll wait, which a drain may have to sit
	// out (required).
	WorkerWait time.Duration
	// FleetCheck is how often the fleet is listed (default 3 s).
	FleetCheck time.Duration
	// EC2Warmup: an instance counts once it has been running this long (its
	// worker still loads the models after EC2 reports it running); 0: at once.
	EC2Warmup time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Markers, when set, is the output bucket: while it works, the invocation
	// keeps a marker at scalerfn.OverflowMarkerPrefix+<request id>, which the
	// scaler lists to count running invocations (scalerfn.OverflowInvoker).
	Markers Marker
	Logger  *slog.Logger
}

// Handler handles invocations, one at a time per execution environment.
type Handler struct {
	o   Options
	log *slog.Logger
}

// New validates o.
func New(o Options) (*Handler, error) {
	switch {
	case o.NewWorker == nil:
		return nil, errors.New("overflowfn: Options.NewWorker is required")
	case o.Fleet == nil:
		return nil, errors.New("overflowfn: Options.Fleet (the app tier, to see EC2 capacity running) is required")
	case o.WorkerWait <= 0:
		return nil, errors.New("overflowfn: Options.WorkerWait is required")
	case o.Margin <= o.WorkerWait:
		return nil, fmt.Errorf("overflowfn: margin %v must exceed the worker's long-poll wait %v plus one image (FACEFLEET_OVERFLOW_MARGIN, FACEFLEET_WORKER_WAIT)", o.Margin, o.WorkerWait)
	case o.FleetCheck < 0 || o.EC2Warmup < 0:
		return nil, fmt.Errorf("overflowfn: negative FleetCheck %v or EC2Warmup %v", o.FleetCheck, o.EC2Warmup)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FleetCheck == 0 {
		o.FleetCheck = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{o: o, log: o.Logger}, nil
}

// Result is the invocation's answer.
type Result struct {
	Worker string `json:"worker"`
	// Stop says why it stopped: StopEC2Running, StopDeadline or StopIdle.
	Stop string `json:"stop"`
	// RanMS is the time from the handler's start to its return.
	RanMS int64 `json:"ran_ms"`
	// FleetChecks counts fleet listings; FleetErrors those that failed (the
	// invocation goes on working: a failed listing is not a running instance).
	FleetChecks int    `json:"fleet_checks"`
	FleetErrors int    `json:"fleet_errors,omitempty"`
	LastError   string `json:"last_error,omitempty"`
}

// EventError is returned for a payload the function does not understand.
type EventError struct{ Reason string }

func (e *EventError) Error() string { return "overflow: unsupported event: " + e.Reason }

// ParseEvent accepts {} and WorkEvent.
func ParseEvent(payload []byte) error {
	if len(payload) > 4096 {
		return &EventError{Reason: fmt.Sprintf("payload is %d bytes; want {} or %s", len(payload), WorkEvent)}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var ev struct {
		Action string `json:"action"`
	}
	if err := dec.Decode(&ev); err != nil {
		return &EventError{Reason: fmt.Sprintf("want {} or %s: %v", WorkEvent, err)}
	}
	if ev.Action != "" && ev.Action != "work" {
		return &EventError{Reason: fmt.Sprintf("action %q (want \"work\")", ev.Action)}
	}
	return nil
}

// Invoke is the Lambda handler: lambda.Start(h.Invoke).
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (Result, error) {
	start := time.Now()
	if err := ParseEvent(payload); err != nil {
		return Result{}, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return Result{}, errors.New("overflow: the invocation has no deadline (run it as a Lambda function)")
	}
	stopAt := dl.Add(-h.o.Margin)
	if !stopAt.After(start) {
		return Result{}, fmt.Errorf("overflow: %v left before the deadline, less than the margin %v: raise the function's timeout or lower FACEFLEET_OVERFLOW_MARGIN",
			dl.Sub(start).Round(time.Millisecond), h.o.Margin)
	}
	id := "overflow"
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		id += "/" + lc.AwsRequestID
	}
	res := Result{Worker: id}
	log := h.log.With("worker", id)
	done := func(stop string) (Result, error) {
		res.Stop, res.RanMS = stop, time.Since(start).Milliseconds()
		log.InfoContext(ctx, "overflow: done", "stop", res.Stop, "ran_ms", res.RanMS, "fleet_checks", res.FleetChecks, "fleet_errors", res.FleetErrors)
		return res, nil
	}
	// A late delivery (a throttled event retried) finds EC2 running: nothing to do.
	if h.running(ctx, &res, log) {
		return done(StopEC2Running)
	}
	w, err := h.o.NewWorker(id)
	if err != nil {
		return res, fmt.Errorf("overflow: %w", err)
	}
	if h.o.Markers != nil {
		key := scalerfn.OverflowMarkerPrefix + markerName(id)
		if _, err := h.o.Markers.Put(ctx, key, []byte(id), "text/plain"); err != nil {
			log.WarnContext(ctx, "overflow: marker not written; the scaler may start another invocation", "key", key, "err", err)
		}
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := h.o.Markers.Delete(dctx, key); err != nil {
				log.WarnContext(ctx, "overflow: marker not deleted; the scaler ignores it after its maximum age", "key", key, "err", err)
			}
		}()
	}
	log.InfoContext(ctx, "overflow: working", "stop_receiving_at", stopAt, "deadline", dl)

	// The watcher drains the worker when EC2 runs or the margin is reached; it
	// ends when Run returns (idle, or drained).
	why := make(chan string, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := make(chan struct{})
	var checks, errs int
	var lastErr string
	go func() {
		defer close(watched)
		for {
			next := time.Now().Add(h.o.FleetCheck)
			reason := ""
			if !next.Before(stopAt) {
				next, reason = stopAt, StopDeadline
			}
			t := time.NewTimer(time.Until(next))
			select {
			case <-watchCtx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if reason == "" {
				var r Result
				if h.running(watchCtx, &r, log) {
					reason = StopEC2Running
				}
				checks += r.FleetChecks
				errs += r.FleetErrors
				if r.LastError != "" {
					lastErr = r.LastError
				}
			}
			if reason != "" {
				why <- reason
				w.Drain()
				return
			}
		}
	}()
	runErr := w.Run(ctx)
	stopWatch()
	<-watched
	res.FleetChecks += checks
	res.FleetErrors += errs
	if lastErr != "" {
		res.LastError = lastErr
	}
	if runErr != nil {
		return res, fmt.Errorf("overflow: worker: %w", runErr)
	}
	select {
	case r := <-why:
		return done(r)
	default:
		return done(StopIdle)
	}
}

// markerName is the worker id as one key segment.
func markerName(id string) string { return strings.ReplaceAll(id, "/", "-") }

// running lists the fleet once and reports whether an instance has been
// running for EC2Warmup (one whose start time EC2 did not report counts at
// once); a failed listing counts as none (logged and counted in r).
func (h *Handler) running(ctx context.Context, r *Result, log *slog.Logger) bool {
	r.FleetChecks++
	insts, err := h.o.Fleet.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.FleetErrors++
			r.LastError = err.Error()
			log.WarnContext(ctx, "overflow: cannot list the app tier; working on", "err", err)
		}
		return false
	}
	now := h.o.Now()
	for _, in := range insts {
		if in.State == fleet.Running && (in.Since.IsZero() || now.Sub(in.Since) >= h.o.EC2Warmup) {
			log.InfoContext(ctx, "overflow: an app-tier instance runs; stopping", "instance", in.ID, "since", in.Since)
			return true
		}
	}
	return false
}

// taskRootDefaults: in Lambda the models and the ONNX Runtime library travel in
// the function's zip next to bootstrap (template.yaml's build-OverflowFunction
// puts them at models/ and lib/libonnxruntime.so.1), unpacked at
// LAMBDA_TASK_ROOT; FACEFLEET_MODELS and FACEFLEET_ORT_LIB, when set, win.
func taskRootDefaults(getenv func(string) string) func(string) string {
	root := strings.TrimRight(getenv("LAMBDA_TASK_ROOT"), "/")
	return func(name string) string {
		v := getenv(name)
		if strings.TrimSpace(v) != "" || root == "" {
			return v
		}
		switch name {
		case "FACEFLEET_MODELS":
			return root + "/" + ModelsDir
		case "FACEFLEET_ORT_LIB":
			return root + "/" + ORTLibPath
		}
		return v
	}
}

// Where the zip holds the models and the ONNX Runtime library, relative to
// LAMBDA_TASK_ROOT (the Makefile's build-OverflowFunction lays them out so).
const (
	ModelsDir  = "models"
	ORTLibPath = "lib/libonnxruntime.so.1"
)
