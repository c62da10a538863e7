// Package lambdatest runs a Go Lambda function under the AWS Lambda Runtime
// Interface Emulator (RIE) on 127.0.0.1, built exactly as SAM builds it
// (GOOS=linux CGO_ENABLED=0 -tags lambda.norpc, named bootstrap), so tests exercise
// the real aws-lambda-go runtime loop, the Runtime API and the function's env
// wiring. The RIE binary is built from its pinned module version into build/bin on
// first use, so `make test` works on a fresh machine with only the Go proxy.
package lambdatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/testenv"
)

// RIEModule and RIEVersion pin the emulator.
const (
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
)

// InvokePath is RIE's invoke endpoint (the Lambda Invoke API's path).
const InvokePath = "/2015-03-31/functions/function/invocations"

// Options configure Start.
type Options struct {
	// Package is the function's main package, relative to the repository root.
	// Default "./functions/scaler".
	Package string
	// Env is added to the function's environment (which otherwise holds only PATH,
	// HOME, a region, dummy credentials and AWS_EC2_METADATA_DISABLED, never the
	// caller's AWS settings).
	Env map[string]string
	// Timeout is the function timeout (AWS_LAMBDA_FUNCTION_TIMEOUT, whole seconds;
	// default 10 s).
	Timeout time.Duration
	// StartTimeout bounds building and starting (default 10 min: a cold build of
	// the AWS SDK for linux with cgo off, on two busy cores, takes minutes).
	StartTimeout time.Duration
	// Bootstrap, when set, is a bootstrap already built (the overflow
	// function's, built by its Makefile target as SAM builds it); Package is
	// then not built.
	Bootstrap string
	// TaskRoot, when set, is the unpacked package: the function runs there with
	// LAMBDA_TASK_ROOT pointing at it, as Lambda runs /var/task.
	TaskRoot string
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (default 128).
	MemoryMB int
	// Name is AWS_LAMBDA_FUNCTION_NAME (default facefleet-scaler-test).
	Name string
}

// Function is a running emulated function.
type Function struct {
	// URL is the invoke URL: http://127.0.0.1:PORT/2015-03-31/functions/function/invocations
	URL  string
	cmd  *exec.Cmd
	logs *awstest.LogBuffer
	done chan struct{}
}

// Response is one invocation's answer.
type Response struct {
	Status int
	Body   []byte
	// ErrorType and ErrorMessage are set when the function returned an error
	// (aws-lambda-go's {"errorMessage","errorType"} body).
	ErrorType    string
	ErrorMessage string
}

// Start builds the function, starts RIE with it and waits until it accepts
// connections. RIE (and the bootstrap it runs) is killed when the test ends.
// Under -short the test is skipped.
func Start(t testing.TB, o Options) *Function {
	t.Helper()
	testenv.NoShort(t, "builds the function and runs the Lambda Runtime Interface Emulator")
	if runtime.GOOS != "linux" {
		t.Skip("skipping: the Lambda Runtime Interface Emulator runs only on Linux")
	}
	if o.Package == "" {
		o.Package = "./functions/scaler"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.StartTimeout)
	defer cancel()
	rie, err := EnsureRIE(ctx, filepath.Join(testenv.Root(), "build", "bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bootstrap := o.Bootstrap
	if bootstrap == "" {
		if bootstrap, err = builtBootstrap(ctx, o.Package); err != nil {
			t.Fatal(err)
		}
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 128
	}
	if o.Name == "" {
		o.Name = "facefleet-scaler-test"
	}
	apiPort, err := awstest.FreePort()
	if err != nil {
		t.Fatalf("lambdatest: find a free port: %v", err)
	}
	rieAddr, err := awstest.FreePort()
	if err != nil {
		t.Fatalf("lambdatest: find a free port: %v", err)
	}
	secs := int(o.Timeout.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_LAMBDA_FUNCTION_NAME=" + o.Name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(o.MemoryMB),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(secs),
	}
	for k, v := range o.Env {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(rie,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
		"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(rieAddr),
		bootstrap)
	cmd.Dir = dir
	if o.TaskRoot != "" {
		cmd.Dir = o.TaskRoot
		env = append(env, "LAMBDA_TASK_ROOT="+o.TaskRoot)
	}
	cmd.Env = env
	// Own process group, so cleanup kills the bootstrap RIE started as well; and
	// RIE is killed if the test binary dies before its cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	f := &Function{
		URL:  "http://127.0.0.1:" + strconv.Itoa(rieAddr) + InvokePath,
		cmd:  cmd,
		logs: awstest.NewLogBuffer(8 << 20),
		done: make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = f.logs, f.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("lambdatest: start %s: %v", rie, err)
	}
	go func() { _ = cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("lambdatest: RIE and function output:\n%s", f.Logs())
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(rieAddr)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-f.done:
			t.Fatalf("lambdatest: RIE exited before listening on %s:\n%s", addr, f.Logs())
		case <-ctx.Done():
			t.Fatalf("lambdatest: RIE not listening on %s after %v:\n%s", addr, o.StartTimeout, f.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return f
}

func (f *Function) stop() {
	if f.cmd.Process == nil {
		return
	}
	// Negative pid: the whole process group (RIE and bootstrap).
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
	}
}

// Logs returns everything RIE and the function wrote so far.
func (f *Function) Logs() string { return f.logs.String() }

// Invoke posts payload to the function and returns its answer. A function error
// is a Response with ErrorType set, not a Go error; err reports transport trouble.
func (f *Function) Invoke(ctx context.Context, payload []byte) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(payload))
	if err != nil {
		return Response{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("lambdatest: invoke: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 6<<20)) // Lambda's response limit
	if err != nil {
		return Response{}, fmt.Errorf("lambdatest: read response: %w", err)
	}
	r := Response{Status: resp.StatusCode, Body: body}
	var fe struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(body, &fe) == nil && fe.ErrorType != "" {
		r.ErrorType, r.ErrorMessage = fe.ErrorType, fe.ErrorMessage
	}
	return r, nil
}

// BuildBootstrap builds pkg (relative to the repository root) for linux/goarch
// exactly as SAM's go1.x build method does for provided.al2023, plus the
// lambda.norpc tag that drops the unused net/rpc code: the output is a static
// binary named as given (call it bootstrap).
func BuildBootstrap(ctx context.Context, pkg, goarch, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-o", out, pkg)
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lambdatest: build %s for linux/%s: %w\n%s", pkg, goarch, err, b)
	}
	return nil
}

// rieMu serialises installs within one test binary.
var rieMu sync.Mutex

// built caches one bootstrap per package for the life of the test binary: tests
// start RIE many times, and relinking a 15 MB binary each time costs seconds.
var built struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

func builtBootstrap(ctx context.Context, pkg string) (string, error) {
	built.Lock()
	defer built.Unlock()
	if p, ok := built.paths[pkg]; ok {
		return p, nil
	}
	if built.dir == "" {
		d, err := cacheDir()
		if err != nil {
			return "", err
		}
		built.dir, built.paths = d, map[string]string{}
	}
	out := filepath.Join(built.dir, strconv.Itoa(len(built.paths)), "bootstrap")
	if err := BuildBootstrap(ctx, pkg, runtime.GOARCH, out); err != nil {
		return "", err
	}
	built.paths[pkg] = out
	return out, nil
}

// cacheDir is beside the test binary: under `go test` that is go's $WORK, which
// go removes when the run ends, so nothing is left behind even without Cleanup.
func cacheDir() (string, error) {
	if exe, err := os.Executable(); err == nil {
		if d, err := os.MkdirTemp(filepath.Dir(exe), "lambdatest-"); err == nil {
			return d, nil
		}
	}
	d, err := os.MkdirTemp("", "lambdatest-")
	if err != nil {
		return "", fmt.Errorf("lambdatest: cache directory for bootstrap builds: %w", err)
	}
	return d, nil
}

// Cleanup removes the cached bootstrap builds now (optional: call it from
// TestMain after m.Run when the test binary is not run by go test).
func Cleanup() {
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
		built.dir, built.paths = "", nil
	}
}

// EnsureRIE returns binDir/aws-lambda-rie, building the pinned version with
// `go install` first when it is missing.
func EnsureRIE(ctx context.Context, binDir string) (string, error) {
	rieMu.Lock()
	defer rieMu.Unlock()
	p := filepath.Join(binDir, "aws-lambda-rie")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("lambdatest: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "install", RIEModule+"@"+RIEVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "CGO_ENABLED=0", "GOOS=", "GOARCH=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lambdatest: go install %s@%s (needs the Go module proxy): %w\n%s", RIEModule, RIEVersion, err, b)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("lambdatest: go install did not produce %s: %w", p, err)
	}
	return p, nil
}
