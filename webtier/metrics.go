package webtier

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/facefleet/facefleet/internal/fleet"
)

// metrics are the web tier's Prometheus metrics, in a registry of the Server's
// own (no global registry). The queue and fleet gauges come from the cached
// status snapshot at scrape time (see status.go).
type metrics struct {
	reg         *prometheus.Registry
	http        counterVec
	responses   counterVec
	pending     atomic.Int64
	deadLetters prometheus.Counter
	timeouts    prometheus.Counter
	rejected    prometheus.Counter
	latency     histogram // seconds, upload to answer
	overhead    histogram // seconds, total - queued - inference
}

// responseOutcomes are the dispatcher's outcomes, exported at 0 before the first.
var responseOutcomes = [...]string{"delivered", "late", "duplicate", "foreign", "invalid"}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.http = counterVec{prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "facefleet_http_requests_total", Help: "HTTP requests by method, route and status.",
	}, []string{"method", "route", "code"})}
	m.responses = counterVec{prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "facefleet_responses_total",
		Help: "Responses received by the dispatcher, by outcome (delivered, late, duplicate, foreign, invalid).",
	}, []string{"outcome"})}
	for _, o := range responseOutcomes {
		m.responses.WithLabelValues(o)
	}
	m.deadLetters = prometheus.NewCounter(prometheus.CounterOpts{Name: "facefleet_dead_letters_total", Help: "Requests that reached the dead-letter queue."})
	m.timeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "facefleet_timeouts_total", Help: "Callers answered 504 because no answer came in time."})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "facefleet_rejected_total", Help: "Callers answered 503 because too many requests were pending."})
	m.latency = histogram{prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "facefleet_request_duration_seconds", Help: "Upload to answer, as the web tier sees it.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	})}
	m.overhead = histogram{prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "facefleet_overhead_seconds", Help: "Web tier and queue overhead per answer: total minus queue wait minus inference.",
		Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5},
	})}
	m.reg.MustRegister(m.http.CounterVec, m.responses.CounterVec, m.deadLetters, m.timeouts, m.rejected,
		m.latency.Histogram, m.overhead.Histogram,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "facefleet_pending_requests", Help: "Callers waiting for an answer."},
			func() float64 { return float64(m.pending.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "facefleet_up", Help: "1 while the web tier serves."},
			func() float64 { return 1 }))
	return m
}

// counterVec counts by label values.
type counterVec struct{ *prometheus.CounterVec }

func (c counterVec) inc(labels ...string) { c.WithLabelValues(labels...).Inc() }

type histogram struct{ prometheus.Histogram }

func (h histogram) observe(v float64) { h.Observe(v) }

var (
	queueMessagesDesc = prometheus.NewDesc("facefleet_queue_messages", "Approximate queue counts.", []string{"queue", "state"}, nil)
	instancesDesc     = prometheus.NewDesc("facefleet_instances", "App-tier instances by state.", []string{"state"}, nil)
)

// statusCollector exports one status snapshot's queue and fleet gauges.
type statusCollector struct{ st Status }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessagesDesc
	ch <- instancesDesc
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	for q, n := range c.st.Queues {
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(n.Visible), q, "visible")
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(n.InFlight), q, "in_flight")
	}
	if c.st.Instances != nil {
		for _, state := range []fleet.State{fleet.Pending, fleet.Running, fleet.Stopping, fleet.Stopped, fleet.Terminated} {
			ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(c.st.Instances[state]), string(state))
		}
	}
}

func (s *Server) metrics(c *fiber.Ctx) error {
	scrape := prometheus.NewRegistry()
	if err := scrape.Register(statusCollector{s.collectStatus(c.UserContext())}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	families, err := prometheus.Gatherers{s.m.reg, scrape}.Gather()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	c.Set(fiber.HeaderContentType, string(format))
	return c.Send(b.Bytes())
}
