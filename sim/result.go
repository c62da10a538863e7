package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/facefleet/facefleet/internal/stats"
	"github.com/facefleet/facefleet/scaling"
)

// Result is one (workload, policy) run. Times are seconds from the first arrival.
type Result struct {
	Workload string `json:"workload"`
	Policy   string `json:"policy"`
	Requests int    `json:"requests"`
	Answered int    `json:"answered"`
	// FirstAnswerS: first arrival to first answer. DrainS: first arrival to last answer.
	FirstAnswerS float64 `json:"first_answer_s"`
	DrainS       float64 `json:"drain_s"`
	P50S         float64 `json:"p50_s"`
	P95S         float64 `json:"p95_s"`
	P99S         float64 `json:"p99_s"`
	// BilledInstanceSeconds: per start, max(running time, the billing minimum).
	BilledInstanceSeconds float64 `json:"billed_instance_seconds"`
	Starts                int     `json:"starts"`
	Stops                 int     `json:"stops"`
	// BusyStops: instances stopped by the scaler while processing a request.
	BusyStops int `json:"busy_stops"`
	// Flaps: starts within 60 s of a stop while the backlog never emptied between.
	Flaps int `json:"flaps"`
	// ZeroAfterS: from the last answer until no instance was pending or running.
	ZeroAfterS float64 `json:"zero_after_s"`
	// StepErrors counts controller steps that returned an error.
	StepErrors int `json:"step_errors"`
	// Overflow (Lambda) invocations, how many of them were cold starts, how
	// many were refused at the concurrency limit, and their GB-seconds.
	OverflowInvocations int     `json:"overflow_invocations"`
	OverflowColdStarts  int     `json:"overflow_cold_starts"`
	OverflowThrottles   int     `json:"overflow_throttles"`
	LambdaGBSeconds     float64 `json:"lambda_gb_seconds"`
	// CostUSD is the billed EC2 time at the instance's per-second price plus
	// the Lambda GB-seconds and requests (Config.Overflow's prices).
	CostUSD float64 `json:"cost_usd"`
	// Default marks the default policy's rows.
	Default bool `json:"default,omitempty"`

	Timeline  []Point         `json:"-"`
	Trace     []TraceEvent    `json:"-"`
	Latencies []time.Duration `json:"-"` // per request, in arrival order; -1 if unanswered
}

func (w *world) result(wl Workload, policy string) Result {
	r := Result{Workload: wl.Name, Policy: policy, Requests: len(w.msgs), Answered: w.answered,
		BilledInstanceSeconds: round(w.billed.Seconds()), Starts: w.starts, Stops: w.stops,
		BusyStops: w.busyStops, Flaps: w.flaps, StepErrors: w.stepErrors,
		Timeline: w.timeline, Trace: w.trace, Default: policy == scaling.DefaultPolicy().Name()}
	gbs, usd := w.overflowCost()
	r.LambdaGBSeconds, r.CostUSD = round(gbs), math.Round(usd*1e7)/1e7
	if w.ov != nil {
		r.OverflowInvocations, r.OverflowColdStarts, r.OverflowThrottles = w.ov.invocations, w.ov.cold, w.ov.throttles
	}
	first := wl.Arrivals[0]
	lat := make([]time.Duration, 0, len(w.msgs))
	r.Latencies = make([]time.Duration, len(w.msgs))
	for i, m := range w.msgs {
		if m.state != msgDone {
			r.Latencies[i] = -1
			continue
		}
		r.Latencies[i] = m.answerAt - m.arrival
		lat = append(lat, m.answerAt-m.arrival)
	}
	if w.answered > 0 {
		r.FirstAnswerS = round((w.firstAnswer - first).Seconds())
		r.DrainS = round((w.lastAnswer - first).Seconds())
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		r.P50S, r.P95S, r.P99S = pct(lat, 50), pct(lat, 95), pct(lat, 99)
		if w.zeroAt >= w.lastAnswer {
			r.ZeroAfterS = round((w.zeroAt - w.lastAnswer).Seconds())
		}
	}
	if w.answered < len(w.msgs) { // unanswered requests: latency is unbounded
		r.DrainS, r.P99S = math.Inf(1), math.Inf(1)
		if len(w.msgs)-w.answered > len(w.msgs)/20 {
			r.P95S = math.Inf(1)
		}
	}
	return r
}

// pct is the nearest-rank percentile in seconds.
func pct(sorted []time.Duration, p float64) float64 {
	return round(stats.Percentile(sorted, p).Seconds())
}

func round(s float64) float64 { return math.Round(s*1000) / 1000 }

// RunAll runs every policy over every workload, workload-major.
func RunAll(ctx context.Context, cfg Config, workloads []Workload, policies []string) ([]Result, error) {
	var out []Result
	for _, wl := range workloads {
		for _, p := range policies {
			r, err := Run(ctx, cfg, wl, p)
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// WriteTable writes a markdown table, one row per result.
func WriteTable(out io.Writer, rs []Result) error {
	var b strings.Builder
	b.WriteString("| workload | policy | requests | first_answer_s | drain_s | p50_s | p95_s | p99_s | billed_instance_seconds | starts | stops | busy_stops | flaps | zero_after_s | overflow_invocations | lambda_gb_s | cost_musd |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		name := r.Policy
		if r.Default {
			name += " (default)"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %d | %d | %d | %d | %s | %d | %s | %.3f |\n",
			r.Workload, name, r.Requests, num(r.FirstAnswerS), num(r.DrainS), num(r.P50S), num(r.P95S), num(r.P99S),
			num(r.BilledInstanceSeconds), r.Starts, r.Stops, r.BusyStops, r.Flaps, num(r.ZeroAfterS),
			r.OverflowInvocations, num(r.LambdaGBSeconds), r.CostUSD*1000)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func num(f float64) string {
	if math.IsInf(f, 1) {
		return "unanswered"
	}
	return fmt.Sprintf("%.1f", f)
}

// WriteJSON writes one JSON array with an object per result. Unbounded values
// (requests left unanswered at the horizon) are written as -1.
func WriteJSON(out io.Writer, rs []Result) error {
	cp := make([]Result, len(rs))
	for i, r := range rs {
		for _, f := range []*float64{&r.DrainS, &r.P50S, &r.P95S, &r.P99S} {
			if math.IsInf(*f, 0) {
				*f = -1
			}
		}
		cp[i] = r
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(cp)
}
