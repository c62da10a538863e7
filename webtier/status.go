package webtier

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/scaling"
)

// DefaultStatusTTL is how long /v1/status and /metrics reuse one snapshot of the
// queue counts and the fleet when Options.StatusTTL is 0.
const DefaultStatusTTL = 2 * time.Second

// backendSnapshot is what /v1/status and /metrics read from the queues and the
// fleet: three queue-attribute calls and a fleet listing (DescribeInstances on
// AWS). Taken at most once per StatusTTL, however often they are scraped, so
// a busy dashboard or a scrape loop costs the backend nothing more.
type backendSnapshot struct {
	at        time.Time
	queues    map[string]*queue.Counts
	instances map[fleet.State]int
	// decisions are Options.DecisionLog's (oldest first), when set.
	decisions []scaling.Decision
	errors    []string
}

// snapshotCache holds the latest snapshot; its mutex also makes concurrent
// callers of an expired snapshot wait for one refresh instead of each calling
// the backend. A snapshot is never modified once stored.
type snapshotCache struct {
	mu   sync.Mutex
	snap *backendSnapshot
}

// decisionsAvailable reports whether this web tier can see the scaler's
// decisions: in process (local mode) or through its decision log (AWS).
func (s *Server) decisionsAvailable() bool {
	return s.o.Decisions != nil || s.o.DecisionLog != nil
}

// scalerDecisions returns the scaler's recent decisions, oldest first: the
// in-process controller's, else the decision log's as of snapshot sn.
func (s *Server) scalerDecisions(sn *backendSnapshot) []scaling.Decision {
	if s.o.Decisions != nil {
		return s.o.Decisions()
	}
	return sn.decisions
}

// backendStatus returns a snapshot at most StatusTTL old.
func (s *Server) backendStatus(ctx context.Context) *backendSnapshot {
	s.snapshots.mu.Lock()
	defer s.snapshots.mu.Unlock()
	if sn := s.snapshots.snap; sn != nil && time.Since(sn.at) < s.o.StatusTTL {
		return sn
	}
	sn := &backendSnapshot{queues: map[string]*queue.Counts{}}
	for _, q := range []struct {
		name string
		q    queue.Queue
	}{{"requests", s.o.Requests}, {"responses", s.o.Responses}, {"dead_letter", s.o.RequestDLQ}} {
		if q.q == nil {
			continue
		}
		n, err := q.q.Counts(ctx)
		if err != nil {
			sn.errors = append(sn.errors, fmt.Sprintf("%s queue: %v", q.name, err))
			continue
		}
		sn.queues[q.name] = &n
	}
	if s.o.Fleet != nil {
		insts, err := s.o.Fleet.List(ctx)
		if err != nil {
			sn.errors = append(sn.errors, fmt.Sprintf("fleet: %v", err))
		} else {
			sn.instances = fleet.CountByState(insts)
		}
	}
	if s.o.Decisions == nil && s.o.DecisionLog != nil {
		d, err := s.o.DecisionLog(ctx)
		if err != nil {
			sn.errors = append(sn.errors, fmt.Sprintf("scaler decisions: %v", err))
		}
		sn.decisions = d
	}
	sn.at = time.Now()
	s.snapshots.snap = sn
	return sn
}
