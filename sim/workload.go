package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Workload is a named list of request arrival times, sorted, from t=0.
type Workload struct {
	Name     string
	Arrivals []time.Duration
}

// ErrUnknownWorkload is returned by NewWorkload for a name it does not know.
var ErrUnknownWorkload = errors.New("sim: unknown workload")

// WorkloadNames are the built-in workloads that "all" runs.
func WorkloadNames() []string {
	return []string{"burst-100", "burst-1000", "step", "poisson-0.2", "poisson-2", "poisson-10", "diurnal", "spikes"}
}

// MaxRequests bounds a generated or replayed workload so a typo cannot exhaust memory.
const MaxRequests = 2_000_000

// NewWorkload builds a workload by name; seed makes the random ones reproducible.
//
//	burst-N        N requests at t=0
//	step           0.5/s for 5 min, 5/s for 10 min, 0.5/s for 5 min
//	poisson-R      Poisson arrivals at R per second for 10 min
//	diurnal        a compressed day: rate 0 -> 6/s -> 0 as a raised cosine over 30 min
//	spikes         0.05/s for 30 min with 150 requests at once at 5, 15 and 25 min
//	replay:FILE    arrival times in seconds, first CSV column (a header line is skipped)
func NewWorkload(name string, seed uint64) (Workload, error) {
	r := rand.New(rand.NewPCG(seed, 0x5eed_0001))
	w := Workload{Name: name}
	switch {
	case strings.HasPrefix(name, "burst-"):
		n, err := strconv.Atoi(strings.TrimPrefix(name, "burst-"))
		if err != nil || n <= 0 || n > MaxRequests {
			return w, fmt.Errorf("%w %q: burst-N needs 1 <= N <= %d", ErrUnknownWorkload, name, MaxRequests)
		}
		w.Arrivals = make([]time.Duration, n)
	case name == "step":
		w.Arrivals = poisson(r, nil, 0, 5*time.Minute, func(time.Duration) float64 { return 0.5 })
		w.Arrivals = poisson(r, w.Arrivals, 5*time.Minute, 15*time.Minute, func(time.Duration) float64 { return 5 })
		w.Arrivals = poisson(r, w.Arrivals, 15*time.Minute, 20*time.Minute, func(time.Duration) float64 { return 0.5 })
	case strings.HasPrefix(name, "poisson-"):
		rate, err := strconv.ParseFloat(strings.TrimPrefix(name, "poisson-"), 64)
		if err != nil || !(rate > 0) || rate*600 > MaxRequests {
			return w, fmt.Errorf("%w %q: poisson-R needs a rate R > 0 per second (at most %d requests in 10 min)", ErrUnknownWorkload, name, MaxRequests)
		}
		w.Arrivals = poisson(r, nil, 0, 10*time.Minute, func(time.Duration) float64 { return rate })
	case name == "diurnal":
		const period = 30 * time.Minute
		w.Arrivals = poisson(r, nil, 0, period, func(t time.Duration) float64 {
			return 6 * (1 - math.Cos(2*math.Pi*t.Seconds()/period.Seconds())) / 2
		})
	case name == "spikes":
		w.Arrivals = poisson(r, nil, 0, 30*time.Minute, func(time.Duration) float64 { return 0.05 })
		for _, at := range []time.Duration{5 * time.Minute, 15 * time.Minute, 25 * time.Minute} {
			for range 150 {
				w.Arrivals = append(w.Arrivals, at)
			}
		}
	case strings.HasPrefix(name, "replay:"):
		a, err := readReplay(strings.TrimPrefix(name, "replay:"))
		if err != nil {
			return w, err
		}
		w.Arrivals = a
	default:
		return w, fmt.Errorf("%w %q (known: %s, burst-N, poisson-R, replay:FILE)", ErrUnknownWorkload, name, strings.Join(WorkloadNames(), ", "))
	}
	sort.Slice(w.Arrivals, func(i, j int) bool { return w.Arrivals[i] < w.Arrivals[j] })
	if len(w.Arrivals) == 0 {
		return w, fmt.Errorf("%w %q: it has no requests", ErrUnknownWorkload, name)
	}
	return w, nil
}

// poisson appends a non-homogeneous Poisson process on [from, to) by thinning
// against the rate's maximum (sampled on a grid).
func poisson(r *rand.Rand, out []time.Duration, from, to time.Duration, rate func(time.Duration) float64) []time.Duration {
	peak := 0.0
	for t := from; t < to; t += time.Second {
		peak = max(peak, rate(t))
	}
	if peak <= 0 {
		return out
	}
	for t := from.Seconds(); ; {
		t += r.ExpFloat64() / peak
		if t >= to.Seconds() || len(out) >= MaxRequests {
			return out
		}
		at := time.Duration(t * float64(time.Second))
		if r.Float64()*peak <= rate(at) {
			out = append(out, at)
		}
	}
}

func readReplay(path string) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sim: replay workload: %w", err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	var out []time.Duration
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("sim: replay %s: %w", path, err)
		}
		if len(rec) == 0 || strings.TrimSpace(rec[0]) == "" {
			continue
		}
		s, err := strconv.ParseFloat(strings.TrimSpace(rec[0]), 64)
		if err != nil || s < 0 || math.IsInf(s, 0) || s > 1e7 {
			if line == 1 && err != nil {
				continue // header
			}
			return nil, fmt.Errorf("%w: replay %s line %d: %q is not an arrival time in seconds (0..1e7)", ErrUnknownWorkload, path, line, rec[0])
		}
		if len(out) >= MaxRequests {
			return nil, fmt.Errorf("%w: replay %s has more than %d requests", ErrUnknownWorkload, path, MaxRequests)
		}
		out = append(out, time.Duration(s*float64(time.Second)))
	}
	return out, nil
}
