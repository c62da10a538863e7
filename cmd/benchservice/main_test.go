package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/testenv"
)

// A small run end to end: every name checked, the table with the bare
// handler's column, the summary line, and a return.
func TestBenchServiceSmallRun(t *testing.T) {
	testenv.NoShort(t, "runs the engine")
	models, lib, faces := testenv.Models(t), testenv.ORTLib(t), testenv.Shared(t, "faces")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errs bytes.Buffer
	err := run(ctx, []string{"-models", models, "-ort-lib", lib, "-faces", faces, "-data", t.TempDir(),
		"-max-instances", "2", "-baseline", "20", "-bursts", "6", "-sequential", "2"}, &out, &errs)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errs.String())
	}
	row := regexp.MustCompile(`(?m)^\| 6 \|.*\| ([0-9.]+) \|$`).FindStringSubmatch(out.String())
	if row == nil {
		t.Fatalf("no row for the burst of 6 ending in the bare handler's ratio:\n%s", out.String())
	}
	if r, _ := strconv.ParseFloat(row[1], 64); r <= 0 {
		t.Errorf("bare handler ratio %v, want > 0", r)
	}
	if !regexp.MustCompile(`(?m)^throughput_vs_engine=[0-9.]+ overhead_p50_ms=[0-9.]+$`).Match(out.Bytes()) {
		t.Errorf("no summary line:\n%s", out.String())
	}
	if ctx.Err() != nil {
		t.Errorf("the run outlived its context")
	}
}
