package webtier_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/webtier"
)

// countingQueue counts the Counts calls (SQS GetQueueAttributes on AWS).
type countingQueue struct {
	queue.Queue
	n *atomic.Int64
}

func (q countingQueue) Counts(ctx context.Context) (queue.Counts, error) {
	q.n.Add(1)
	return q.Queue.Counts(ctx)
}

// countingFleet counts List calls (DescribeInstances on AWS); only List is used.
type countingFleet struct {
	fleet.Fleet
	n *atomic.Int64
}

func (f countingFleet) List(context.Context) ([]fleet.Instance, error) {
	f.n.Add(1)
	return []fleet.Instance{{ID: "i-1", State: fleet.Running}}, nil
}

func newStatusServer(t *testing.T, ttl time.Duration) (*webtier.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var queueCalls, fleetCalls atomic.Int64
	mk := func(name string) queue.Queue {
		q, err := memqueue.New(memqueue.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return countingQueue{q, &queueCalls}
	}
	s, err := webtier.New(webtier.Options{
		Requests: mk("req"), Responses: mk("resp"), RequestDLQ: mk("dlq"), Inputs: memblob.New(), Outputs: memblob.New(),
		Fleet: countingFleet{n: &fleetCalls}, StatusTTL: ttl, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &queueCalls, &fleetCalls
}

func get(t *testing.T, s *webtier.Server, path string) string {
	t.Helper()
	res, err := s.App().Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", path, res.StatusCode, b)
	}
	return string(b)
}

// Scrapes and status pages within the TTL share one snapshot: three queue
// counts and one fleet listing, not one set per hit (issue 9, defect 10).
func TestStatusSnapshotIsCached(t *testing.T) {
	s, queueCalls, fleetCalls := newStatusServer(t, time.Hour)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { get(t, s, []string{"/v1/status", "/metrics"}[i%2]) })
	}
	wg.Wait()
	if q, f := queueCalls.Load(), fleetCalls.Load(); q != 3 || f != 1 {
		t.Fatalf("20 hits made %d queue counts and %d fleet listings; want 3 and 1", q, f)
	}

	s, queueCalls, fleetCalls = newStatusServer(t, 20*time.Millisecond)
	get(t, s, "/v1/status")
	time.Sleep(40 * time.Millisecond) // past the TTL
	get(t, s, "/metrics")
	if q, f := queueCalls.Load(), fleetCalls.Load(); q != 6 || f != 2 {
		t.Fatalf("two hits a TTL apart made %d queue counts and %d fleet listings; want 6 and 2", q, f)
	}
}

// /metrics is valid Prometheus text that the client's own parser reads, with
// the documented metric names and types.
func TestMetricsParse(t *testing.T) {
	s, _, _ := newStatusServer(t, time.Second)
	get(t, s, "/healthz")
	body := get(t, s, "/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	for name, typ := range map[string]dto.MetricType{
		"facefleet_http_requests_total":      dto.MetricType_COUNTER,
		"facefleet_responses_total":          dto.MetricType_COUNTER,
		"facefleet_dead_letters_total":       dto.MetricType_COUNTER,
		"facefleet_timeouts_total":           dto.MetricType_COUNTER,
		"facefleet_rejected_total":           dto.MetricType_COUNTER,
		"facefleet_pending_requests":         dto.MetricType_GAUGE,
		"facefleet_request_duration_seconds": dto.MetricType_HISTOGRAM,
		"facefleet_overhead_seconds":         dto.MetricType_HISTOGRAM,
		"facefleet_queue_messages":           dto.MetricType_GAUGE,
		"facefleet_instances":                dto.MetricType_GAUGE,
		"facefleet_up":                       dto.MetricType_GAUGE,
	} {
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	if got := len(fams["facefleet_queue_messages"].GetMetric()); got != 6 {
		t.Errorf("facefleet_queue_messages has %d series; want 3 queues x 2 states", got)
	}
	var healthz float64
	for _, m := range fams["facefleet_http_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["route"] == "/healthz" && l["code"] == "200" && l["method"] == "GET" {
			healthz = m.GetCounter().GetValue()
		}
	}
	if healthz != 1 {
		t.Errorf("GET /healthz 200 counted %v times, want 1:\n%s", healthz, body)
	}
}
