package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/facefleet/facefleet/scaling"
)

// Worked out by hand: three requests at t=0, 1 s per image, one stopped EC2
// instance, overflow cold start fixed at 1 s, 50 ms from Invoke to the handler,
// 1 s idle wait. The nudge at 0.5 s sees a backlog of 1 (the count lags) and a
// second of work, which the overflow alone clears: one invocation, no EC2 start.
// It runs from 0.55 s, is ready at 1.55 s, answers at 2.55, 3.55 and 4.55 s,
// and returns at 5.55 s after 1 s without work: 5 s billed at 1769 MB.
func TestOverflowHandChecked(t *testing.T) {
	cfg := handConfig()
	cfg.Overflow = OverflowConfig{Concurrency: 2, ColdStart: Fixed(time.Second), IdleWait: time.Second}
	wl := Workload{Name: "three", Arrivals: []time.Duration{0, 0, 0}}
	r, err := Run(context.Background(), cfg, wl, scaling.NameBacklogDrain)
	if err != nil {
		t.Fatal(err)
	}
	var answers []time.Duration
	for _, e := range r.Trace {
		if e.What != "answer" {
			t.Errorf("unexpected EC2 event %v", e)
			continue
		}
		answers = append(answers, e.At)
	}
	want := []time.Duration{sec(2.55), sec(3.55), sec(4.55)}
	if len(answers) != len(want) {
		t.Fatalf("answers at %v, want %v", answers, want)
	}
	for i := range want {
		if answers[i] != want[i] {
			t.Errorf("answer %d at %v, want %v", i, answers[i], want[i])
		}
	}
	if r.Starts != 0 || r.OverflowInvocations != 1 || r.OverflowColdStarts != 1 {
		t.Errorf("EC2 starts %d, overflow invocations %d (cold %d); want 0, 1, 1", r.Starts, r.OverflowInvocations, r.OverflowColdStarts)
	}
	if wantGBs := round(5 * 1769.0 / 1024); r.LambdaGBSeconds != wantGBs {
		t.Errorf("lambda GB-s %v, want %v", r.LambdaGBSeconds, wantGBs)
	}
	wantUSD := 5*1769.0/1024*0.0000166667 + 0.2/1e6
	if math.Abs(r.CostUSD-wantUSD) > 1e-7 {
		t.Errorf("cost $%.7f, want $%.7f", r.CostUSD, wantUSD)
	}
}

// Issue 15's goal on burst-100 from zero, cap 15, 20 s boot: first answer <= 3 s,
// drain <= 10 s, billed cost (Lambda + EC2) <= 1.2x the EC2-only run's, on the
// tuning seeds and the held-out ones.
func TestOverflowIssue15Burst100(t *testing.T) {
	for _, seed := range append(slices.Clone(tuningSeeds), heldOutSeeds...) {
		with, without := withAndWithout(t, "burst-100", seed)
		if with.Answered != with.Requests || with.FirstAnswerS > 3 || with.DrainS > 10 || with.CostUSD > 1.2*without.CostUSD {
			t.Errorf("seed %d: answered %d/%d, first %.1f s (<= 3), drain %.1f s (<= 10), cost $%.5f (<= 1.2 x $%.5f)",
				seed, with.Answered, with.Requests, with.FirstAnswerS, with.DrainS, with.CostUSD, without.CostUSD)
		}
	}
}

// withAndWithout runs the workload on the seed with backlog-drain, with the
// overflow function and EC2 only.
func withAndWithout(t *testing.T, workload string, seed uint64) (with, without Result) {
	t.Helper()
	cfg := issueConfig(seed)
	wl := mustWorkload(t, workload, seed)
	var err error
	if with, err = Run(context.Background(), cfg, wl, scaling.NameBacklogDrain); err != nil {
		t.Fatal(err)
	}
	if without, err = Run(context.Background(), ec2Only(cfg), wl, scaling.NameBacklogDrain); err != nil {
		t.Fatal(err)
	}
	return with, without
}

// Seeds the overflow's knobs (Alone, Sustain, Quiet, DrainTarget, IdleWait)
// were tuned on, and seeds held out from that tuning: the claims below are
// asserted on the held-out ones.
var (
	tuningSeeds  = []uint64{1, 2, 3, 4, 5}
	heldOutSeeds = []uint64{6, 7, 8, 9, 10}
)

// The bridge's price elsewhere, as measured on the tuning seeds 1-5 (the worst
// case of each, rounded up; docs/scaling.md): p95 rises by at most 0.35 s
// (poisson-2 on seed 4: requests that arrive while no invocation runs wait for
// the next scaler step or the web tier's nudge, at most one per 5 s) and cost
// by at most 3% (poisson-10: 2.2-2.6%, where steady traffic from zero needs
// EC2 anyway, its boot is unbilled and the bridge's Lambda seconds are extra).
const (
	maxP95Rise  = 0.35 // seconds
	maxCostRise = 0.03 // fraction
)

// Every other workload, on the held-out seeds: with the overflow, p95 and cost
// stay within the tuning seeds' bounds above, everything is answered, with no
// busy stops and no flaps.
func TestOverflowOtherWorkloads(t *testing.T) {
	for _, name := range WorkloadNames() {
		if name == "burst-100" {
			continue
		}
		for _, seed := range heldOutSeeds {
			with, without := withAndWithout(t, name, seed)
			if with.Answered != with.Requests || with.BusyStops != 0 || with.Flaps != 0 ||
				with.P95S > without.P95S+maxP95Rise || with.CostUSD > (1+maxCostRise)*without.CostUSD {
				t.Errorf("%s seed %d: answered %d/%d, busy stops %d, flaps %d, p95 %.3f s (EC2 only %.3f), cost $%.5f (EC2 only $%.5f)",
					name, seed, with.Answered, with.Requests, with.BusyStops, with.Flaps, with.P95S, without.P95S, with.CostUSD, without.CostUSD)
			}
		}
	}
}

// Concurrency is a hard limit, and a small memory size slows images and cold
// starts in proportion to the vCPU share.
func TestOverflowConcurrencyAndMemory(t *testing.T) {
	cfg := issueConfig(1)
	cfg.Overflow.Concurrency = 3
	wl := mustWorkload(t, "burst-1000", 1)
	r, err := Run(context.Background(), cfg, wl, scaling.NameBacklogDrain)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answered != r.Requests || r.OverflowInvocations == 0 || r.StepErrors != 0 {
		t.Fatalf("answered %d/%d, overflow invocations %d, step errors %d", r.Answered, r.Requests, r.OverflowInvocations, r.StepErrors)
	}
	w := &world{cfg: cfg.withDefaults(), ov: &overflowState{}, delays: rand.New(rand.NewPCG(1, 2))}
	w.cfg.Overflow.Concurrency = 1
	o := simOverflow{w: w}
	if err := o.Invoke(context.Background(), 2); err == nil || w.ov.throttles != 1 {
		t.Errorf("second invocation over a limit of 1: err %v, throttles %d", err, w.ov.throttles)
	}
	c := DefaultOverflowConfig()
	if c.scale(time.Second) != time.Second {
		t.Errorf("1769 MB: %v per second of one-vCPU work, want 1s", c.scale(time.Second))
	}
	c.MemoryMB = 3538
	if c.scale(time.Second) != time.Second {
		t.Errorf("3538 MB: %v, want 1s (one engine thread gains nothing past one vCPU)", c.scale(time.Second))
	}
	c.MemoryMB = 884
	if got := c.scale(time.Second); got < 2*time.Second || got > 2010*time.Millisecond {
		t.Errorf("884 MB: %v, want about 2s (half a vCPU)", got)
	}
	bad := DefaultConfig()
	bad.Overflow.MemoryMB = 64
	if err := bad.Validate(); err == nil {
		t.Error("64 MB accepted; Lambda's minimum is 128")
	}
}

// simulate -json marks the default policy's rows.
func TestJSONMarksDefaultPolicy(t *testing.T) {
	wl := mustWorkload(t, "burst-100", 1)
	rs, err := RunAll(context.Background(), issueConfig(1), []Workload{wl}, PolicyNames())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rs); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		def, _ := row["default"].(bool)
		if want := row["policy"] == scaling.DefaultPolicy().Name(); def != want {
			t.Errorf("%v: default %v, want %v", row["policy"], row["default"], want)
		}
	}
}
