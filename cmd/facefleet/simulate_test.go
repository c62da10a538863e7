package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateJSONAndPlot(t *testing.T) {
	t.Run("deployed", func(t *testing.T) { testSimulateJSON(t, nil, false) })
	t.Run("overflow", func(t *testing.T) { testSimulateJSON(t, []string{"-overflow", "10"}, true) })
}

// testSimulateJSON checks simulate -json's rows; withOverflow says whether the
// simulated Lambda overflow workers are on (off by default: they are not deployed).
func testSimulateJSON(t *testing.T, extra []string, withOverflow bool) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := append([]string{"-workload", "burst-100", "-policy", "all", "-max", "15", "-boot", "20s", "-seed", "3", "-json", "-plot", dir}, extra...)
	if err := runSimulate(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var rows []struct {
		Workload, Policy string
		DrainS           float64 `json:"drain_s"`
		BusyStops        int     `json:"busy_stops"`
		Default          bool    `json:"default"`
	}
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 5 {
		t.Fatalf("want one JSON array of 5 rows: %v\n%s", err, out.String())
	}
	defaults := 0
	for _, r := range rows {
		// The default policy and the oracle use the simulated overflow workers and
		// drain before an EC2 boot could; the others wait for EC2 (20 s).
		overflow := withOverflow && (r.Policy == "backlog-drain" || r.Policy == "oracle")
		if r.Workload != "burst-100" || (overflow && r.DrainS > 10) || (!overflow && r.DrainS <= 20) {
			t.Errorf("row %+v", r)
		}
		if r.Default != (r.Policy == "backlog-drain") {
			t.Errorf("row %+v: only the default policy's row is marked default", r)
		}
		if r.Default {
			defaults++
		}
	}
	if defaults != 1 {
		t.Errorf("%d rows marked default, want 1", defaults)
	}
	if _, err := os.Stat(filepath.Join(dir, "burst-100_backlog-drain.svg")); err != nil {
		t.Fatal(err)
	}
}

func TestSimulateRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-workload", "zigzag"}, {"-policy", "magic"}, {"-boot", "soon"}, {"-load", "1m"}, {"extra"}, {"-overflow-memory", "64"},
	} {
		var out, errb bytes.Buffer
		err := runSimulate(context.Background(), args, &out, &errb)
		if err == nil {
			t.Errorf("%v: accepted", args)
		} else if strings.Contains(err.Error(), "panic") {
			t.Errorf("%v: %v", args, err)
		}
	}
}
