package cloude2e_test

// The rig the cloud e2e tests share (fauxqs and moto alike): the facefleet
// binary, child processes with their output in files, the web tier started and
// waited for, and a deployment's queues and buckets on fauxqs.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// proc is a child process with its output in a file (dumped when the test fails).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) (*proc, error) {
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM and waits, then kills.
func (p *proc) stop(wait time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// procGroup is every process a test started, for stopAll.
type procGroup struct {
	mu  sync.Mutex
	all []*proc
}

// start starts a process (see startProc) and keeps it for stopAll.
func (g *procGroup) start(t *testing.T, name, bin string, env []string, args ...string) (*proc, error) {
	p, err := startProc(t, name, bin, env, args...)
	if err == nil {
		g.mu.Lock()
		g.all = append(g.all, p)
		g.mu.Unlock()
	}
	return p, err
}

// stopAll stops every process (each given wait after SIGTERM) and, when the
// test failed, logs the last lines of each one's output.
func (g *procGroup) stopAll(t *testing.T, wait time.Duration) {
	g.mu.Lock()
	ps := append([]*proc(nil), g.all...)
	g.mu.Unlock()
	for _, p := range ps {
		p.stop(wait)
	}
	if t.Failed() {
		for _, p := range ps {
			t.Logf("--- %s (exit %v):\n%s", p.name, p.err, p.tail(15))
		}
	}
}

// startWebTier starts `facefleet webtier` as name on 127.0.0.1:port (polling
// its response queue every second, extra flags after) and waits up to wait for
// its /healthz; the test fails if the process exits first.
func startWebTier(t *testing.T, g *procGroup, name, bin string, env []string, port int, wait time.Duration, extra ...string) *proc {
	t.Helper()
	args := append([]string{"webtier", "-host", "127.0.0.1", "-port", strconv.Itoa(port), "-poll-wait", "1s"}, extra...)
	p, err := g.start(t, name, bin, env, args...)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	hc := &http.Client{Timeout: 5 * time.Second}
	e2ekit.WaitFor(t, name+"'s /healthz", wait, func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", name, p.err, p.tail(20))
		default:
		}
		res, err := hc.Get(url + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return p
}

// freePort is a free loopback port, failing the test when there is none.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := awstest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// deployment is one deployment's queues and buckets on fauxqs, and the
// environment a facefleet process (webtier, apptier, keys) needs to use them
// with the real engine.
type deployment struct {
	clients             *awsconfig.Clients
	reqQ, respQ         awstest.Queue
	inBucket, outBucket string
	env                 []string
}

// newDeployment creates the request queue (visibility, and its dead-letter
// queue after maxReceives), the response queue (with a dead-letter queue after
// respMaxReceives; 0: none) and the two buckets, under unique names.
func newDeployment(ctx context.Context, t *testing.T, s *awstest.Server, visibility time.Duration, maxReceives, respMaxReceives int) *deployment {
	t.Helper()
	clients, err := s.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{clients: clients, inBucket: awstest.Unique(t, "inputs"), outBucket: awstest.Unique(t, "outputs")}
	if d.reqQ, err = awstest.CreateQueue(ctx, clients.SQS(), awstest.QueueSpec{Name: awstest.Unique(t, "requests"), VisibilityTimeout: visibility, MaxReceives: maxReceives}); err != nil {
		t.Fatal(err)
	}
	if d.respQ, err = awstest.CreateQueue(ctx, clients.SQS(), awstest.QueueSpec{Name: awstest.Unique(t, "responses"), MaxReceives: respMaxReceives}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{d.inBucket, d.outBucket} {
		if err := awstest.CreateBucket(ctx, clients.S3(), b); err != nil {
			t.Fatal(err)
		}
	}
	d.env = append(append(os.Environ(), s.Env()...),
		"FACEFLEET_S3_PATH_STYLE=1", "FACEFLEET_MODELS="+testenv.Models(t), "FACEFLEET_ORT_LIB="+testenv.ORTLib(t),
		"FACEFLEET_REQUEST_QUEUE_URL="+d.reqQ.URL, "FACEFLEET_RESPONSE_QUEUE_URL="+d.respQ.URL, "FACEFLEET_REQUEST_DLQ_URL="+d.reqQ.DLQURL,
		"FACEFLEET_INPUT_BUCKET="+d.inBucket, "FACEFLEET_OUTPUT_BUCKET="+d.outBucket, "FACEFLEET_LOG_LEVEL=warn")
	return d
}

// workers are the apptier processes standing for EC2 instances, by instance id:
// each test's "hypervisor" boots one when an instance runs and stops it when the
// instance stops. Each is also in the embedded procGroup, with whatever else
// the test starts there (the web tier), for stopAll.
type workers struct {
	procGroup
	bin   string
	byMu  sync.Mutex
	byID  map[string]*proc
	boots atomic.Int64
}

// boot starts `facefleet apptier -instance-id id` with args for instance id. A
// failure is reported with t.Errorf (hooks run off the test's goroutine).
func (w *workers) boot(t *testing.T, id string, env []string, args ...string) {
	name := fmt.Sprintf("apptier-%s-%d", id, w.boots.Add(1))
	p, err := w.start(t, name, w.bin, env, append([]string{"apptier", "-instance-id", id}, args...)...)
	if err != nil {
		t.Errorf("start apptier for %s: %v", id, err)
		return
	}
	w.byMu.Lock()
	defer w.byMu.Unlock()
	if w.byID == nil {
		w.byID = map[string]*proc{}
	}
	w.byID[id] = p
}

// of is instance id's process (nil when none runs for it).
func (w *workers) of(id string) *proc {
	w.byMu.Lock()
	defer w.byMu.Unlock()
	return w.byID[id]
}

// halt stops instance id's process, if any (wait after SIGTERM), and forgets it.
func (w *workers) halt(id string, wait time.Duration) {
	w.byMu.Lock()
	p := w.byID[id]
	delete(w.byID, id)
	w.byMu.Unlock()
	if p != nil {
		p.stop(wait)
	}
}
