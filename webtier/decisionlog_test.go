package webtier_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/decisionlog"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/webtier"
)

// On AWS the scaler is a Lambda: the web tier reads its decision log from the
// output store with the status snapshot (once per StatusTTL) and shows the
// decisions on /v1/status and /v1/status/history as local mode does.
func TestStatusShowsDecisionLog(t *testing.T) {
	outputs := memblob.New()
	var reads atomic.Int64
	req, _ := memqueue.New(memqueue.Options{Name: "req"})
	resp, _ := memqueue.New(memqueue.Options{Name: "resp"})
	s, err := webtier.New(webtier.Options{
		Requests: req, Responses: resp, Inputs: memblob.New(), Outputs: outputs, StatusTTL: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		DecisionLog: func(ctx context.Context) ([]scaling.Decision, error) {
			reads.Add(1)
			return decisionlog.Read(ctx, outputs)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := decisionlog.Append(context.Background(), outputs,
		scaling.Decision{Observation: scaling.Observation{Now: now.Add(-time.Minute), Visible: 9}, Desired: 3, Start: 3, Reason: "backlog 9 over 3 per worker"},
		scaling.Decision{Observation: scaling.Observation{Now: now}, Reason: "queue empty"}); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Decisions []scaling.Decision `json:"decisions"`
		Errors    []string           `json:"errors"`
	}
	for range 3 {
		if err := json.Unmarshal([]byte(get(t, s, "/v1/status")), &st); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.Decisions) != 2 || st.Decisions[0].Start != 3 || st.Decisions[0].Reason != "backlog 9 over 3 per worker" || st.Decisions[1].Reason != "queue empty" {
		t.Fatalf("/v1/status decisions = %+v", st.Decisions)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("decision log read %d times for 3 status calls within the TTL, want 1", n)
	}

	var h webtier.History
	if err := json.Unmarshal([]byte(get(t, s, "/v1/status/history")), &h); err != nil {
		t.Fatal(err)
	}
	if !h.DecisionsAvailable {
		t.Error("history says decisions are unavailable with a decision log")
	}

	// A read error is reported in words, not hidden and not fatal.
	s2, err := webtier.New(webtier.Options{Requests: req, Responses: resp, Inputs: memblob.New(), Outputs: outputs,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		DecisionLog: func(context.Context) ([]scaling.Decision, error) { return nil, errors.New("s3: AccessDenied") }})
	if err != nil {
		t.Fatal(err)
	}
	body := get(t, s2, "/v1/status")
	if !strings.Contains(body, "scaler decisions: s3: AccessDenied") {
		t.Errorf("status without a readable log = %s", body)
	}
}
