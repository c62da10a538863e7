package sim

import (
	"context"
	"os"
	"testing"
)

// TestPrintTable prints the full table when FACEFLEET_SIM_PRINT=1 (a development
// aid while the CLI's other dependencies are being built).
func TestPrintTable(t *testing.T) {
	if os.Getenv("FACEFLEET_SIM_PRINT") != "1" {
		t.Skip("set FACEFLEET_SIM_PRINT=1 to print the table")
	}
	cfg := DefaultConfig()
	cfg.Max = 15
	var wls []Workload
	for _, n := range WorkloadNames() {
		wl, err := NewWorkload(n, cfg.Seed)
		if err != nil {
			t.Fatal(err)
		}
		wls = append(wls, wl)
	}
	rs, err := RunAll(context.Background(), cfg, wls, PolicyNames())
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(os.Stdout, rs); err != nil {
		t.Fatal(err)
	}
}
