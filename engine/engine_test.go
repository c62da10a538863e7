package engine_test

import (
	"os"
	"testing"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/testenv"
)

// newEngine loads the real models and ONNX Runtime (skipping, or failing under
// FACEFLEET_REQUIRE_DEPS=1, when they are absent).
func newEngine(t testing.TB, opt engine.Options) *engine.Engine {
	t.Helper()
	opt.ModelDir = testenv.Models(t)
	opt.LibraryPath = testenv.ORTLib(t)
	e, err := engine.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func faceAPIDemo(t testing.TB) string {
	return testenv.Path(t, "FACEFLEET_NODE_MODULES", "tools/node/node_modules", "run `make deps`")
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
