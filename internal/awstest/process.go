package awstest

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/testenv"
)

// process is an emulator child process (fauxqs or moto_server) on a loopback
// port: its own process group, killed with the test binary, its output kept in
// a LogBuffer for failure messages.
type process struct {
	name    string
	cmd     *exec.Cmd
	logs    *LogBuffer
	done    chan struct{}
	waitErr error
}

// launch starts the emulator name on a free 127.0.0.1 port (newCmd makes its
// command for that port) and polls GET base+readyPath until it answers 200.
// A free port can be taken between FreePort and the emulator's bind, so a
// failed start is tried again on another port, up to three times.
func launch(ctx context.Context, name string, newCmd func(port int) *exec.Cmd, readyPath string) (*process, string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, "", fmt.Errorf("awstest: find a free port for %s: %w", name, err)
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		p, err := launchOnce(ctx, name, newCmd(port), base+readyPath)
		if err == nil {
			return p, base, nil
		}
		if ctx.Err() != nil { // out of time: another try would only spawn it again
			return nil, "", err
		}
		lastErr = err
	}
	return nil, "", lastErr
}

func launchOnce(ctx context.Context, name string, cmd *exec.Cmd, readyURL string) (*process, error) {
	p := &process{name: name, cmd: cmd, logs: NewLogBuffer(1 << 20), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	// Own process group (Stop ends children too), and killed if the test
	// binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("awstest: start %s: %w", name, err)
	}
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("awstest: %s exited during start-up (%v):\n%s", name, p.waitErr, p.logs.String())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		default:
		}
		resp, err := client.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("awstest: %s not ready on %s after 30s (last error %v):\n%s", name, readyURL, err, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop terminates the process group (SIGTERM, then SIGKILL after 3 s).
func (p *process) stop() {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// pid is the process id (0 when there is none).
func (p *process) pid() int {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// logText is the process's recent output ("" when there is none).
func (p *process) logText() string {
	if p == nil {
		return ""
	}
	return p.logs.String()
}

// forPackage starts an emulator for a test package's TestMain. Under -short it
// starts nothing (make check needs no emulator). When start fails, the
// package's tests skip with the reason (unavailable), or, under
// FACEFLEET_REQUIRE_DEPS=1, ok is false and the package fails.
func forPackage(name string, start func(context.Context) error) (unavailable string, ok bool) {
	if !flag.Parsed() {
		flag.Parse() // testing.Short reads the -short flag; TestMain runs before m.Run parses
	}
	if testing.Short() {
		return "not started with -short", true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := start(ctx); err != nil {
		if testenv.Required() {
			fmt.Fprintf(os.Stderr, "FAIL: %s is required (FACEFLEET_REQUIRE_DEPS=1) but did not start: %v\n", name, err)
			return "", false
		}
		return err.Error(), true
	}
	return "", true
}

// need skips the test when the package's emulator is not running: under -short,
// or when it could not start (unavailable says why).
func need(t testing.TB, name string, started bool, unavailable string) {
	t.Helper()
	testenv.NoShort(t, "needs "+name)
	if !started {
		t.Fatalf("awstest: no %s; start it from TestMain (awstest.Main, MotoMain or Both)", name)
	}
	if unavailable != "" {
		t.Skipf("skipping: %s unavailable: %s", name, unavailable)
	}
}

// forTest starts an emulator for one test and stops it when the test ends; it
// skips under -short or when the emulator cannot start (fails under
// FACEFLEET_REQUIRE_DEPS=1).
func forTest[T any](t testing.TB, name string, start func(context.Context) (T, error), stop func(T)) T {
	t.Helper()
	testenv.NoShort(t, "starts "+name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := start(ctx)
	if err != nil {
		testenv.Missing(t, "%s did not start: %v", name, err)
	}
	t.Cleanup(func() { stop(s) })
	return s
}
