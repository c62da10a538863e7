// Package testenv finds the artefacts that tests need (models, ONNX Runtime, Node 22,
// fauxqs, face-api, the shared datasets). `make test` fetches them and exports their
// paths with FACEFLEET_REQUIRE_DEPS=1, which turns a missing artefact into a failure
// instead of a skip, so CI cannot pass by skipping.
//
// Under -short (`make check`) every dependency is treated as absent: Path, Models,
// ORTLib, Tool and NoShort skip, and awstest starts no emulator, so the short run
// needs no npm package, model, emulator or external tool and takes seconds. -short
// wins over FACEFLEET_REQUIRE_DEPS=1 (make test never passes -short).
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Root is the repository root (found from this file's location).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func required() bool { return os.Getenv("FACEFLEET_REQUIRE_DEPS") == "1" }

// Required reports FACEFLEET_REQUIRE_DEPS=1: a missing dependency fails the test.
func Required() bool { return required() }

// NoShort skips the test under -short; what names the dependency or the cost
// (e.g. "starts moto_server"), for the skip message.
func NoShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipping with -short: %s (make test runs it)", what)
	}
}

// Missing skips the test because a dependency is absent, or fails it under
// FACEFLEET_REQUIRE_DEPS=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if required() {
		t.Fatalf(format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// Tool finds an executable on PATH; like Path, it skips without it (and under
// -short), or fails under FACEFLEET_REQUIRE_DEPS=1. hint says how to install it.
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	NoShort(t, "needs "+name)
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found: %s", name, hint)
	}
	return p
}

// Path returns the value of env var name, or def (relative to the repo root) when
// unset, if it exists; otherwise the test is skipped, or failed under
// FACEFLEET_REQUIRE_DEPS=1. hint says how to get it (e.g. "run make deps").
func Path(t testing.TB, name, def, hint string) string {
	t.Helper()
	NoShort(t, "needs "+name)
	p := os.Getenv(name)
	if p == "" && def != "" {
		p = filepath.Join(Root(), def)
	}
	if p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	Missing(t, "%s not found (%q): %s", name, p, hint)
	return ""
}

// File is the repository file rel (slash-separated, from the root); the test
// fails when it is missing. Name a script a test executes through File: go's
// test cache reruns a test when a file it opened or stat'ed changes, but does
// not notice a file it only executed (make check reuses cached results).
func File(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Root(), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testenv: %s: %v", rel, err)
	}
	return p
}

// Models is the directory holding the converted .onnx files.
func Models(t testing.TB) string {
	return Path(t, "FACEFLEET_MODELS", "build/models", "run `make models`")
}

// ORTLib is the ONNX Runtime shared library.
func ORTLib(t testing.TB) string {
	return Path(t, "FACEFLEET_ORT_LIB", "build/lib/libonnxruntime.so.1", "run `make deps`")
}

// Shared is ../shared/datasets beside the project; tests skip (never fail) when it
// is absent, because it is not part of the repository.
func Shared(t testing.TB, sub string) string {
	t.Helper()
	base := os.Getenv("FACEFLEET_SHARED")
	if base == "" {
		base = filepath.Join(Root(), "..", "shared")
	}
	p := filepath.Join(base, "datasets", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("skipping: shared dataset %s is absent (set FACEFLEET_SHARED or place ../shared beside the project)", p)
	}
	return p
}

// NoGoroutineLeak fails the test unless the goroutine count falls back to before
// within two seconds (goroutines a Close released may take a moment to exit).
func NoGoroutineLeak(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

// Facefleet is the facefleet command for tests that start it as a process:
// FACEFLEET_BIN when set (`make e2e` passes the one it built), else built
// from ./cmd/facefleet into the test's temp folder.
func Facefleet(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("FACEFLEET_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("FACEFLEET_BIN %s: %v", b, err)
		}
		return b
	}
	out := filepath.Join(t.TempDir(), "facefleet")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/facefleet")
	cmd.Dir = Root()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/facefleet: %v\n%s", err, b)
	}
	return out
}
