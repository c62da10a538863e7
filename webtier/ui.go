package webtier

import (
	"context"
	"embed"
	"io/fs"
	"mime"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/scaling"
)

// The page (GET /) and its files are plain HTML, CSS and JavaScript embedded in
// the binary: no build step, no third-party code.
//
//go:embed ui
var uiFiles embed.FS

// pageCSP lets the page load its own files only; photos are shown from blob:
// URLs the page makes of the files the user picked.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func (s *Server) uiRoutes() {
	a := s.app
	a.Get("/ui/:file", s.uiFile)
	a.Get("/v1/subjects/:name/faces/:id/thumbnail", s.admin(), s.faceThumbnail)
	a.Get("/v1/status/history", s.statusHistory)
}

func (s *Server) page(c *fiber.Ctx) error {
	return s.sendUI(c, "index.html")
}

func (s *Server) uiFile(c *fiber.Ctx) error {
	name := c.Params("file")
	if name == "index.html" {
		return c.Redirect("/", fiber.StatusMovedPermanently)
	}
	return s.sendUI(c, name)
}

func (s *Server) sendUI(c *fiber.Ctx, name string) error {
	data, err := fs.ReadFile(uiFiles, path.Join("ui", path.Clean("/" + name)[1:]))
	if err != nil {
		return errf(fiber.StatusNotFound, "not_found", "no page file %q", name)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = fiber.MIMEOctetStream
	}
	c.Set(fiber.HeaderContentType, ct)
	c.Set(fiber.HeaderContentSecurityPolicy, pageCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(data)
}

// History of the fleet for the page's chart: one sample every HistoryEvery while
// someone watched within the last two minutes, one every HistoryIdleEvery
// otherwise, kept for HistoryWindow. A sample is the status snapshot that
// /v1/status and /metrics share (status.go), so samples come no faster than
// Options.StatusTTL and cost the backend nothing when scrapes refresh it anyway;
// otherwise one costs a count per queue and a fleet listing (on AWS three SQS
// GetQueueAttributes and one EC2 DescribeInstances).
const (
	HistoryWindow    = 15 * time.Minute
	HistoryEvery     = time.Second
	HistoryIdleEvery = 15 * time.Second
	historyWatched   = 2 * time.Minute
	maxDecisions     = 30
)

// Sample is one point of the fleet's history.
type Sample struct {
	T          int64               `json:"t"` // Unix milliseconds
	Visible    int                 `json:"visible"`
	InFlight   int                 `json:"in_flight"`
	Waiting    int                 `json:"waiting"` // callers this web tier holds
	DeadLetter int                 `json:"dead_letter"`
	Instances  map[fleet.State]int `json:"instances"`
	Errors     []string            `json:"errors,omitempty"`
}

// History is GET /v1/status/history.
type History struct {
	WindowS   int                `json:"window_s"`
	EveryMS   int64              `json:"every_ms"`
	Samples   []Sample           `json:"samples"`
	Decisions []scaling.Decision `json:"decisions"`
	// DecisionsAvailable is false when this web tier cannot see the scaler:
	// neither in process (local mode) nor through the scaler Lambda's decision
	// log in the output bucket (AWS).
	DecisionsAvailable bool `json:"decisions_available"`
}

// history is the ring the sampler fills.
type history struct {
	mu        sync.Mutex
	samples   []Sample
	decisions []scaling.Decision
	// logNewest is the decision log's newest decision at the last sample
	// (Options.DecisionLog; the in-process scaler is asked directly).
	logNewest []scaling.Decision
	watched   time.Time
	wake      chan struct{}
}

func (s *Server) hist() *history {
	s.histOnce.Do(func() { s.history = &history{wake: make(chan struct{}, 1)} })
	return s.history
}

// runHistory samples until ctx is cancelled (Serve runs it).
func (s *Server) runHistory(ctx context.Context) {
	h := s.hist()
	for {
		s.sample(ctx, time.Now())
		h.mu.Lock()
		every := max(HistoryIdleEvery, s.o.StatusTTL)
		if time.Since(h.watched) < historyWatched {
			every = max(HistoryEvery, s.o.StatusTTL)
		}
		h.mu.Unlock()
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-h.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *Server) sample(ctx context.Context, now time.Time) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st := s.backendStatus(cctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	waiting := len(s.pending)
	s.mu.Unlock()
	sm := Sample{T: st.at.UnixMilli(), Waiting: waiting, Instances: st.instances, Errors: st.errors}
	if q := st.queues["requests"]; q != nil {
		sm.Visible, sm.InFlight = q.Visible+q.Delayed, q.InFlight
	}
	if q := st.queues["dead_letter"]; q != nil {
		sm.DeadLetter = q.Visible + q.InFlight
	}
	if sm.Instances == nil {
		sm.Instances = map[fleet.State]int{}
	}
	h := s.hist()
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.samples); n > 0 && h.samples[n-1].T >= sm.T {
		return // the same snapshot as the last sample
	}
	h.samples = append(h.samples, sm)
	cut := 0
	for cut < len(h.samples) && now.Sub(time.UnixMilli(h.samples[cut].T)) > HistoryWindow {
		cut++
	}
	h.samples = append(h.samples[:0:0], h.samples[cut:]...)
	if !s.decisionsAvailable() {
		return
	}
	// Keep the decisions that did something (or failed), newest last.
	last := time.Time{}
	if n := len(h.decisions); n > 0 {
		last = h.decisions[n-1].Observation.Now
	}
	all := s.scalerDecisions(st)
	if s.o.Decisions == nil && len(all) > 0 {
		h.logNewest = all[len(all)-1:]
	}
	for _, d := range all {
		if !d.Observation.Now.After(last) || d.Start+d.Stop+d.Retire == 0 && d.Error == "" {
			continue
		}
		h.decisions = append(h.decisions, d)
	}
	if over := len(h.decisions) - maxDecisions; over > 0 {
		h.decisions = append(h.decisions[:0:0], h.decisions[over:]...)
	}
}

// statusHistory answers the samples newer than ?since= (Unix ms; all when
// absent) and the recent scaling decisions.
func (s *Server) statusHistory(c *fiber.Ctx) error {
	var since int64
	if v := c.Query("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errf(fiber.StatusBadRequest, "bad_since", "since=%q is not a Unix time in milliseconds", v)
		}
		since = n
	}
	h := s.hist()
	h.mu.Lock()
	first := time.Since(h.watched) >= historyWatched
	h.watched = time.Now()
	out := History{WindowS: int(HistoryWindow / time.Second), EveryMS: HistoryEvery.Milliseconds(),
		Samples: []Sample{}, DecisionsAvailable: s.decisionsAvailable()}
	for _, sm := range h.samples {
		if sm.T > since {
			out.Samples = append(out.Samples, sm)
		}
	}
	out.Decisions = append([]scaling.Decision{}, h.decisions...)
	newest := h.logNewest
	if s.o.Decisions != nil {
		newest = s.o.Decisions()
	}
	// The newest decision, acted on or not, says what the scaler thinks now.
	if d := newest; len(d) > 0 {
		if n := len(out.Decisions); n == 0 || out.Decisions[n-1].Observation.Now.Before(d[len(d)-1].Observation.Now) {
			out.Decisions = append(out.Decisions, d[len(d)-1])
		}
	}
	h.mu.Unlock()
	if first {
		select { // switch the sampler to the fast pace now
		case h.wake <- struct{}{}:
		default:
		}
	}
	return c.JSON(out)
}
