package webtier

import (
	"crypto/rand"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/internal/fleet"
)

// metrics are exposed in Prometheus text format by hand: a handful of counters
// and two histograms do not justify a client library.
type metrics struct {
	http        counterVec
	responses   counterVec
	pending     atomic.Int64
	deadLetters atomic.Int64
	timeouts    atomic.Int64
	rejected    atomic.Int64
	latency     *histogram // seconds, upload to answer
	overhead    *histogram // seconds, total - queued - inference
}

func newMetrics() *metrics {
	return &metrics{
		latency:  newHistogram(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
		overhead: newHistogram(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
	}
}

type counterVec struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (c *counterVec) inc(label string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]uint64{}
	}
	c.m[label]++
	c.mu.Unlock()
}

func (c *counterVec) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

type histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64
	sum    float64
	n      uint64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) observe(v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, b := range h.bounds {
		if v <= b {
			h.counts[i]++
		}
	}
	h.sum += v
	h.n++
}

func (h *histogram) write(b *strings.Builder, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for i, bound := range h.bounds {
		fmt.Fprintf(b, "%s_bucket{le=\"%g\"} %d\n", name, bound, h.counts[i])
	}
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, h.n, name, h.sum, name, h.n)
}

func label(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

func (s *Server) metrics(c *fiber.Ctx) error {
	var b strings.Builder
	counter := func(name, help string, v int64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	fmt.Fprintf(&b, "# HELP facefleet_http_requests_total HTTP requests by method, route and status.\n# TYPE facefleet_http_requests_total counter\n")
	httpc := s.m.http.snapshot()
	keys := make([]string, 0, len(httpc))
	for k := range httpc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := strings.SplitN(k, " ", 3)
		fmt.Fprintf(&b, "facefleet_http_requests_total{method=\"%s\",route=\"%s\",code=\"%s\"} %d\n", label(p[0]), label(p[1]), label(p[2]), httpc[k])
	}
	fmt.Fprintf(&b, "# HELP facefleet_responses_total Responses received by the dispatcher, by outcome (delivered, late, duplicate, foreign, invalid).\n# TYPE facefleet_responses_total counter\n")
	resp := s.m.responses.snapshot()
	for _, o := range []string{"delivered", "late", "duplicate", "foreign", "invalid"} {
		fmt.Fprintf(&b, "facefleet_responses_total{outcome=\"%s\"} %d\n", o, resp[o])
	}
	counter("facefleet_dead_letters_total", "Requests that reached the dead-letter queue.", s.m.deadLetters.Load())
	counter("facefleet_timeouts_total", "Callers answered 504 because no answer came in time.", s.m.timeouts.Load())
	counter("facefleet_rejected_total", "Callers answered 503 because too many requests were pending.", s.m.rejected.Load())
	gauge("facefleet_pending_requests", "Callers waiting for an answer.", float64(s.m.pending.Load()))
	s.m.latency.write(&b, "facefleet_request_duration_seconds", "Upload to answer, as the web tier sees it.")
	s.m.overhead.write(&b, "facefleet_overhead_seconds", "Web tier and queue overhead per answer: total minus queue wait minus inference.")
	st := s.collectStatus(c.UserContext())
	fmt.Fprintf(&b, "# HELP facefleet_queue_messages Approximate queue counts.\n# TYPE facefleet_queue_messages gauge\n")
	qs := make([]string, 0, len(st.Queues))
	for q := range st.Queues {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	for _, q := range qs {
		n := st.Queues[q]
		fmt.Fprintf(&b, "facefleet_queue_messages{queue=\"%s\",state=\"visible\"} %d\n", q, n.Visible)
		fmt.Fprintf(&b, "facefleet_queue_messages{queue=\"%s\",state=\"in_flight\"} %d\n", q, n.InFlight)
	}
	if st.Instances != nil {
		fmt.Fprintf(&b, "# HELP facefleet_instances App-tier instances by state.\n# TYPE facefleet_instances gauge\n")
		for _, state := range []fleet.State{fleet.Pending, fleet.Running, fleet.Stopping, fleet.Stopped, fleet.Terminated} {
			fmt.Fprintf(&b, "facefleet_instances{state=\"%s\"} %d\n", state, st.Instances[state])
		}
	}
	gauge("facefleet_up", "1 while the web tier serves.", 1)
	c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4; charset=utf-8")
	return c.SendString(b.String())
}

func urlUnescape(s string) (string, error) { return url.PathUnescape(s) }

func randRead(b []byte) (int, error) { return rand.Read(b) }
