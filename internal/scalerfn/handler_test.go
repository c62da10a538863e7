package scalerfn

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/metrics"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/scaling"
)

// fakeClock advances only when Sleep is called, so loops run instantly.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	sleepE error
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sleepE != nil {
		return c.sleepE
	}
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	return nil
}

// fakeController returns scripted decisions (or errors, or panics) per step and
// records the times it was stepped at.
type fakeController struct {
	visible []int // backlog per step; the decision wants one instance per message
	fail    map[int]error
	panicAt int
	partial bool
	// idleFrom: steps from this index on observe an empty queue and fleet (0: never).
	idleFrom int
	times    []time.Time
	triggers []string
	nudges   []bool
}

func (f *fakeController) StepTrigger(_ context.Context, now time.Time, trigger string, nudge bool) (scaling.Decision, error) {
	i := len(f.times)
	f.times = append(f.times, now)
	f.triggers = append(f.triggers, trigger)
	f.nudges = append(f.nudges, nudge)
	if f.panicAt == i+1 {
		panic("boom")
	}
	if err := f.fail[i]; err != nil {
		// Like scaling.Controller after a failed action: the decision says what
		// was really done (here one start of the two wanted).
		if f.partial {
			return scaling.Decision{Observation: scaling.Observation{Now: now, Visible: 2}, Desired: 2, Start: 1, Error: err.Error()}, err
		}
		return scaling.Decision{}, err
	}
	v := 0
	if i < len(f.visible) {
		v = f.visible[i]
	}
	if f.idleFrom > 0 && i >= f.idleFrom {
		return scaling.Decision{Observation: scaling.Observation{Now: now}, Reason: "idle"}, nil
	}
	return scaling.Decision{Observation: scaling.Observation{Now: now, Visible: v, Running: 1}, Desired: v, Start: v, Reason: "test"}, nil
}

type fakeMetrics struct {
	calls [][]metrics.Datum
	err   error
}

func (m *fakeMetrics) Publish(_ context.Context, d ...metrics.Datum) error {
	m.calls = append(m.calls, append([]metrics.Datum(nil), d...))
	return m.err
}

func readEvent(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newHandler(t *testing.T, ctrl Controller, m Metrics, clk Clock) *Handler {
	t.Helper()
	opts := Options{Controller: ctrl, Clock: clk, Interval: 5 * time.Second, Margin: 3 * time.Second}
	if m != nil {
		opts.Metrics = m
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// withDeadline returns a context whose deadline is d after the fake clock's now
// (which starts at the wall clock, so the context does not expire during the test).
func withDeadline(t *testing.T, clk *fakeClock, d time.Duration) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(d))
	t.Cleanup(cancel)
	return ctx
}

func TestParseEventFiles(t *testing.T) {
	for _, tc := range []struct {
		file    string
		trigger Trigger
		loop    bool
	}{
		{"scheduled.json", TriggerSchedule, true},
		{"alarm.json", TriggerAlarm, true},
		{"alarm-ok.json", TriggerAlarm, true},
		{"direct.json", TriggerDirect, false},
		{"nudge.json", TriggerNudge, true},
	} {
		ev, err := ParseEvent(readEvent(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if ev.Trigger != tc.trigger || ev.Loop != tc.loop {
			t.Errorf("%s: got trigger %s loop %v, want %s %v", tc.file, ev.Trigger, ev.Loop, tc.trigger, tc.loop)
		}
	}
	ev, _ := ParseEvent(readEvent(t, "alarm.json"))
	if ev.Alarm.AlarmData.AlarmName != "facefleet-request-backlog" || ev.Alarm.AlarmData.State.Value != "ALARM" ||
		ev.Alarm.AlarmData.PreviousState.Value != "OK" || ev.Alarm.AccountID != "123456789012" {
		t.Errorf("alarm fields not decoded: %+v", ev.Alarm)
	}
	when, err := ev.Alarm.When()
	if err != nil || !when.Equal(time.Date(2026, 11, 27, 22, 1, 15, 490e6, time.UTC)) {
		t.Errorf("alarm time = %v, %v", when, err)
	}
	if m := ev.Alarm.AlarmData.Configuration.Metrics; len(m) != 1 || m[0].MetricStat.Metric.Name != "ApproximateNumberOfMessagesVisible" {
		t.Errorf("alarm configuration metrics = %+v", m)
	}
}

func TestParseEventRejects(t *testing.T) {
	for name, payload := range map[string]string{
		"malformed.json":     string(readEvent(t, "malformed.json")),
		"empty":              "",
		"null":               "null",
		"string":             `"hello"`,
		"array":              `[1,2]`,
		"truncated":          `{"source": "aws.events"`,
		"unknown source":     `{"source": "aws.s3"}`,
		"other detail-type":  `{"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}`,
		"alarm bad time":     strings.Replace(string(readEvent(t, "alarm.json")), "2026-11-27T22:01:15.490+0000\",\n  \"region", "yesterday\",\n  \"region", 1),
		"alarm no name":      strings.Replace(string(readEvent(t, "alarm.json")), `"alarmName": "facefleet-request-backlog"`, `"alarmName": ""`, 1),
		"direct bad action":  `{"action": "explode"}`,
		"nudge extra field":  `{"action": "nudge", "now": true}`,
		"direct extra field": `{"action": "step", "force": true}`,
		"alarm wrong types":  `{"source": "aws.cloudwatch", "alarmData": 5}`,
		"huge":               `{"action":"` + strings.Repeat("x", maxEventBytes) + `"}`,
	} {
		_, err := ParseEvent([]byte(payload))
		var ee *EventError
		if !errors.As(err, &ee) {
			t.Errorf("%s: got %v, want *EventError", name, err)
		}
	}
}

func TestLoopUntilDeadlineMargin(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	start := clk.Now()
	ctrl := &fakeController{visible: []int{0, 7, 3, 0}}
	m := &fakeMetrics{}
	h := newHandler(t, ctrl, m, clk)
	// Deadline 20 s away, margin 3 s: steps at 0, 5, 10, 15 (15+5 > 17 stops).
	res, err := h.Invoke(withDeadline(t, clk, 20*time.Second), readEvent(t, "scheduled.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Trigger != TriggerSchedule || res.Steps != 4 || res.Failed != 0 {
		t.Fatalf("result = %+v, want 4 scheduled steps", res)
	}
	for i, at := range ctrl.times {
		if want := start.Add(time.Duration(i) * 5 * time.Second); !at.Equal(want) {
			t.Errorf("step %d at %v, want %v", i, at.Sub(start), want.Sub(start))
		}
	}
	if res.Started != 10 || res.Last == nil || res.Last.Observation.Visible != 0 {
		t.Errorf("started %d last %+v, want 10 started and last backlog 0", res.Started, res.Last)
	}
	// One batch: three metrics per step, backlog as observed.
	if len(m.calls) != 1 || len(m.calls[0]) != 12 {
		t.Fatalf("metrics calls = %v, want one batch of 12", m.calls)
	}
	var backlog []float64
	for _, d := range m.calls[0] {
		if d.Name == MetricBacklog {
			backlog = append(backlog, d.Value)
		}
	}
	if len(backlog) != 4 || backlog[1] != 7 || backlog[2] != 3 {
		t.Errorf("backlog samples = %v, want [0 7 3 0]", backlog)
	}
}

func TestAlarmLoopsDirectSteps(t *testing.T) {
	for _, tc := range []struct {
		payload string
		steps   int
	}{
		{string(readEvent(t, "alarm.json")), 3}, // 0, 5, 10 with deadline 16 s - 3 s
		{`{"action":"run"}`, 3},
		{`{}`, 1},
		{string(readEvent(t, "direct.json")), 1},
	} {
		clk := &fakeClock{now: time.Now()}
		ctrl := &fakeController{}
		h := newHandler(t, ctrl, nil, clk)
		res, err := h.Invoke(withDeadline(t, clk, 16*time.Second), json.RawMessage(tc.payload))
		if err != nil {
			t.Fatalf("%s: %v", tc.payload, err)
		}
		if res.Steps != tc.steps {
			t.Errorf("%.40s: %d steps, want %d", tc.payload, res.Steps, tc.steps)
		}
	}
}

func TestNoDeadlineRunsOneStep(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	ctrl := &fakeController{}
	h := newHandler(t, ctrl, nil, clk)
	res, err := h.Invoke(context.Background(), readEvent(t, "scheduled.json"))
	if err != nil || res.Steps != 1 {
		t.Fatalf("got %+v, %v; want one step", res, err)
	}
}

func TestStepErrorsAreSurvived(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	sqsDown := errors.New("sqs: connection refused")
	ctrl := &fakeController{visible: []int{0, 4, 0, 0}, fail: map[int]error{0: sqsDown, 2: sqsDown}}
	m := &fakeMetrics{}
	h := newHandler(t, ctrl, m, clk)
	res, err := h.Invoke(withDeadline(t, clk, 20*time.Second), readEvent(t, "alarm.json"))
	if err != nil {
		t.Fatalf("partial failure should not fail the invocation: %v", err)
	}
	if res.Steps != 4 || res.Failed != 2 || !strings.Contains(res.LastError, "connection refused") || res.Started != 4 {
		t.Errorf("result = %+v", res)
	}
	if len(m.calls) != 1 || len(m.calls[0]) != 6 {
		t.Errorf("metrics = %v, want 6 samples from the 2 good steps", m.calls)
	}
}

func TestAllStepsFailed(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	down := errors.New("ec2: 503")
	ctrl := &fakeController{fail: map[int]error{0: down, 1: down}}
	m := &fakeMetrics{}
	h := newHandler(t, ctrl, m, clk)
	res, err := h.Invoke(withDeadline(t, clk, 12*time.Second), readEvent(t, "scheduled.json"))
	if !errors.Is(err, ErrAllStepsFailed) || !errors.Is(err, down) {
		t.Fatalf("err = %v, want ErrAllStepsFailed wrapping the cause", err)
	}
	if res.Steps != 2 || res.Started != 0 || len(m.calls) != 0 {
		t.Errorf("result %+v metrics %v: want 2 failed steps, nothing started or published", res, m.calls)
	}
}

func TestControllerPanicBecomesError(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	h := newHandler(t, &fakeController{panicAt: 1}, nil, clk)
	res, err := h.Invoke(context.Background(), []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "panicked") || res.Failed != 1 {
		t.Fatalf("got %+v, %v; want the panic as an error", res, err)
	}
}

func TestMetricsErrorIsReportedNotFatal(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	m := &fakeMetrics{err: errors.New("cloudwatch: throttled")}
	h := newHandler(t, &fakeController{visible: []int{2}}, m, clk)
	res, err := h.Invoke(context.Background(), []byte(`{}`))
	if err != nil || !strings.Contains(res.MetricsErr, "throttled") {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestCancelledSleepEndsLoop(t *testing.T) {
	clk := &fakeClock{now: time.Now(), sleepE: context.Canceled}
	ctrl := &fakeController{}
	h := newHandler(t, ctrl, nil, clk)
	res, err := h.Invoke(withDeadline(t, clk, time.Minute), readEvent(t, "scheduled.json"))
	if err != nil || res.Steps != 1 {
		t.Fatalf("got %+v, %v; want one step then stop", res, err)
	}
}

func TestRejectedEventTakesNoStep(t *testing.T) {
	ctrl := &fakeController{}
	h := newHandler(t, ctrl, nil, &fakeClock{now: time.Now()})
	_, err := h.Invoke(context.Background(), readEvent(t, "malformed.json"))
	var ee *EventError
	if !errors.As(err, &ee) || len(ctrl.times) != 0 {
		t.Fatalf("err = %v, steps = %d; want *EventError and no step", err, len(ctrl.times))
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a controller succeeded")
	}
	if _, err := New(Options{Controller: &fakeController{}, Interval: -time.Second}); err == nil {
		t.Error("New with a negative interval succeeded")
	}
}

func TestPartialActionCounts(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	capErr := errors.New("fleet: insufficient capacity")
	ctrl := &fakeController{fail: map[int]error{0: capErr}, partial: true}
	h := newHandler(t, ctrl, nil, clk)
	res, err := h.Invoke(context.Background(), []byte(`{}`))
	if !errors.Is(err, capErr) || res.Started != 1 || res.Failed != 1 {
		t.Fatalf("got %+v, %v; want the one start that happened counted and the error returned", res, err)
	}
}

// blockingController hangs until its context ends, like an AWS call that never
// answers.
type blockingController struct{}

func (blockingController) StepTrigger(ctx context.Context, _ time.Time, _ string, _ bool) (scaling.Decision, error) {
	<-ctx.Done()
	return scaling.Decision{}, ctx.Err()
}

func TestHungStepLeavesTimeToFlush(t *testing.T) {
	m := &fakeMetrics{}
	h, err := New(Options{Controller: blockingController{}, Metrics: m, Interval: time.Second, Margin: 1600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = h.Invoke(ctx, []byte(`{"action":"run"}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the step cut at its deadline", err)
	}
	if ctx.Err() != nil {
		t.Error("the invocation used its whole deadline; the step should stop margin/2 before it")
	}
}

// TestNudgeEvent: the web tier's nudge is a TriggerNudge step with the nudge flag,
// then a loop of plain ticks, as the simulator models it.
func TestNudgeEvent(t *testing.T) {
	ev, err := ParseEvent([]byte(NudgeEvent))
	if err != nil || ev.Trigger != TriggerNudge || !ev.Loop || !ev.Nudge {
		t.Fatalf("ParseEvent(NudgeEvent) = %+v, %v; want a looping nudge", ev, err)
	}
	if file := readEvent(t, "nudge.json"); !json.Valid(file) || strings.TrimSpace(string(file)) != NudgeEvent {
		t.Errorf("events/nudge.json = %q, want NudgeEvent %q", file, NudgeEvent)
	}
	clk := &fakeClock{now: time.Now()}
	ctrl := &fakeController{}
	h := newHandler(t, ctrl, nil, clk)
	res, err := h.Invoke(withDeadline(t, clk, 16*time.Second), json.RawMessage(NudgeEvent))
	if err != nil || res.Trigger != TriggerNudge || res.Steps != 3 {
		t.Fatalf("got %+v, %v; want 3 nudge-invocation steps", res, err)
	}
	if want := []string{scaling.TriggerNudge, scaling.TriggerTick, scaling.TriggerTick}; !slices.Equal(ctrl.triggers, want) {
		t.Errorf("triggers = %v, want %v", ctrl.triggers, want)
	}
	if want := []bool{true, false, false}; !slices.Equal(ctrl.nudges, want) {
		t.Errorf("nudge flags = %v, want %v", ctrl.nudges, want)
	}
	// The other triggers label their first step and never set the nudge flag.
	for payload, first := range map[string]string{
		string(readEvent(t, "scheduled.json")): scaling.TriggerSchedule,
		string(readEvent(t, "alarm.json")):     scaling.TriggerAlarm,
		`{"action":"run"}`:                     scaling.TriggerTick,
	} {
		ctrl := &fakeController{}
		if _, err := newHandler(t, ctrl, nil, clk).Invoke(withDeadline(t, clk, 16*time.Second), json.RawMessage(payload)); err != nil {
			t.Fatal(err)
		}
		if ctrl.triggers[0] != first || slices.Contains(ctrl.nudges, true) {
			t.Errorf("%.30s: triggers %v nudges %v, want first %s and no nudge", payload, ctrl.triggers, ctrl.nudges, first)
		}
	}
}

// TestLoopEndsWhenIdle: a looping invocation returns after the first step that
// sees nothing queued, in flight, pending or running and starts nothing.
func TestLoopEndsWhenIdle(t *testing.T) {
	clk := &fakeClock{now: time.Now()}
	ctrl := &fakeController{visible: []int{3, 0}, idleFrom: 2}
	h := newHandler(t, ctrl, nil, clk)
	res, err := h.Invoke(withDeadline(t, clk, 60*time.Second), readEvent(t, "scheduled.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Step 0 starts 3, step 1 still has a running worker, step 2 is idle.
	if res.Steps != 3 || !res.Idle {
		t.Errorf("got %d steps idle=%v, want 3 steps ending idle", res.Steps, res.Idle)
	}
	// A single step never reports Idle; a failed step never ends the loop early.
	ctrl = &fakeController{idleFrom: 1, fail: map[int]error{1: errors.New("sqs down")}}
	res, _ = newHandler(t, ctrl, nil, clk).Invoke(withDeadline(t, clk, 60*time.Second), readEvent(t, "scheduled.json"))
	if res.Steps != 3 || !res.Idle || res.Failed != 1 {
		t.Errorf("after a failed step: %+v, want steps 3 (ok, failed, idle)", res)
	}
	for _, d := range []scaling.Decision{
		{Observation: scaling.Observation{Visible: 1}},
		{Observation: scaling.Observation{InFlight: 1}},
		{Observation: scaling.Observation{Pending: 1}},
		{Observation: scaling.Observation{Running: 1}},
		{Start: 1},
		{Error: "capacity"},
	} {
		if Idle(d) {
			t.Errorf("Idle(%+v) = true", d)
		}
	}
	if !Idle(scaling.Decision{Observation: scaling.Observation{Stopping: 2, Stopped: 5}}) {
		t.Error("stopping and stopped instances need no watching")
	}
}
