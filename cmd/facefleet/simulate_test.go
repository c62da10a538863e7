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
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"-workload", "burst-100", "-policy", "all", "-max", "15", "-boot", "20s", "-seed", "3", "-json", "-plot", dir}
	if err := runSimulate(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var rows []struct {
		Workload, Policy string
		DrainS           float64 `json:"drain_s"`
		BusyStops        int     `json:"busy_stops"`
	}
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 5 {
		t.Fatalf("want one JSON array of 5 rows: %v\n%s", err, out.String())
	}
	for _, r := range rows {
		if r.Workload != "burst-100" || r.DrainS <= 20 {
			t.Errorf("row %+v", r)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "burst-100_backlog-drain.svg")); err != nil {
		t.Fatal(err)
	}
}

func TestSimulateRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"-workload", "zigzag"}, {"-policy", "magic"}, {"-boot", "soon"}, {"-load", "1m"}, {"extra"},
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
