// Package overflow_test runs the overflow Lambda (functions/overflow) as `sam
// build` packages it, under the Runtime Interface Emulator, with the real
// engine, against moto with IAM enforced: the function's IAM user holds
// template.yaml's own OverflowFunction policies and its environment is the
// template's own OverflowFunction variables.
package overflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/lambdatest"
	"github.com/facefleet/facefleet/internal/overflowfn"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

var moto *awstest.Moto

func TestMain(m *testing.M) {
	code := awstest.MotoMain(m, &moto)
	lambdatest.Cleanup()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the package, built once per test binary (removed by TestMain).
var built struct {
	sync.Mutex
	dir string
}

// buildPackage runs the Makefile target `sam build` runs for OverflowFunction
// (template.yaml: BuildMethod makefile) into a fresh ARTIFACTS_DIR, with the
// models already built (-o models), once per test binary, and returns that
// directory: what Lambda unpacks at LAMBDA_TASK_ROOT.
func buildPackage(t *testing.T, models string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		return built.dir
	}
	dir, err := os.MkdirTemp("", "facefleet-overflow-")
	if err != nil {
		t.Fatal(err)
	}
	mods := os.Getenv("FACEFLEET_NODE_MODULES")
	if mods == "" {
		mods = filepath.Join(testenv.Root(), "tools/node/node_modules")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-o", "models", "build-OverflowFunction", "ARTIFACTS_DIR="+dir)
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "FACEFLEET_MODELS="+models, "FACEFLEET_NODE_MODULES="+mods)
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("make build-OverflowFunction: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "overflow package:") {
			t.Log(l)
		}
	}
	built.dir = dir
	return dir
}

// rig is one stack on moto: queues, buckets, the gallery, the overflow user
// and the template's overflow variables.
type rig struct {
	m                        *awstest.Moto
	st                       *awstest.Stack
	tmpl                     *awstest.Template
	admin                    *awsconfig.Clients
	reqQ, respQ              awstest.Queue
	env                      map[string]string // the overflow function's
	pkg                      string
	people                   []e2ekit.Person
	inputs                   *s3blob.Store
	requests, responses, dlq *sqsqueue.Queue
}

func newRig(t *testing.T, ctx context.Context) *rig {
	t.Helper()
	if testing.Short() {
		t.Skip("the overflow RIE tests build the cgo package and run the real engine; skipped with -short")
	}
	m := awstest.NeedMoto(t, moto)
	models, ortLib := testenv.Models(t), testenv.ORTLib(t)
	people := e2ekit.LoadFaces(t, 3)
	pkg := buildPackage(t, models)

	st := m.NewStack(awstest.Unique(t, "ovf")[:12])
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	plane, err := awstest.CreateDataPlane(ctx, admin, st)
	if err != nil {
		t.Fatal(err)
	}
	reqQ, respQ := plane.Requests, plane.Responses
	creds, err := m.TierUser(ctx, "overflow", st)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := awstest.LoadTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	env, err := tmpl.FunctionEnv("OverflowFunction", st)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range m.EnvFor(creds) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env["FACEFLEET_S3_PATH_STYLE"] = "1" // moto on 127.0.0.1

	// The gallery: each person's first photo, enrolled with the same engine
	// (in this process), as the web tier stores it.
	eng, err := engine.New(engine.Options{ModelDir: models, LibraryPath: ortLib})
	if err != nil {
		t.Fatal(err)
	}
	g := gallery.New()
	for _, p := range people {
		res, err := eng.Analyze(ctx, p.Photos[0])
		if err != nil || len(res.Faces) == 0 {
			t.Fatalf("enroll %s/%s: %v", p.Name, p.Files[0], err)
		}
		if err := g.Add(p.Name, res.Faces[0].Descriptor); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()
	outputs, err := s3blob.New(admin.S3(), st.BucketName("OutputBucket"))
	if err != nil {
		t.Fatal(err)
	}
	// Stored as the web tier stores it: an edit in the shared gallery's journal.
	gs, err := gallery.OpenStore(ctx, outputs, gallery.DefaultStorePrefix, gallery.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gs.Apply(ctx, gallery.Edit{Op: gallery.OpReplace, Faces: g, Tx: "overflow-test"}); err != nil {
		t.Fatal(err)
	}
	gs.Close()
	r := &rig{m: m, st: st, tmpl: tmpl, admin: admin, reqQ: reqQ, respQ: respQ, env: env, pkg: pkg, people: people}
	if r.inputs, err = s3blob.New(admin.S3(), st.BucketName("InputBucket")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		dst **sqsqueue.Queue
		url string
	}{{&r.requests, reqQ.URL}, {&r.responses, respQ.URL}, {&r.dlq, reqQ.DLQURL}} {
		if *q.dst, err = sqsqueue.New(admin.SQS(), q.url, sqsqueue.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// send stores photo under key and queues a classify request for it, as the
// web tier does.
func (r *rig) send(t *testing.T, ctx context.Context, id, key string, photo []byte) {
	t.Helper()
	etag, err := r.inputs.Put(ctx, key, photo, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	body, err := protocol.EncodeRequest(protocol.Request{ID: id, Key: key, ETag: etag, Kind: protocol.Classify, SentAt: time.Now(), ReplyTo: r.respQ.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.requests.Send(ctx, body); err != nil {
		t.Fatal(err)
	}
}

// startOverflow starts one execution environment of the overflow function.
func (r *rig) startOverflow(t *testing.T) *lambdatest.Function {
	return lambdatest.Start(t, lambdatest.Options{Bootstrap: filepath.Join(r.pkg, "bootstrap"), TaskRoot: r.pkg, Env: r.env,
		Timeout: 30 * time.Second, MemoryMB: 1769, Name: r.st.Name + "-OverflowFunction"})
}

// collect receives and deletes answers for up to wait, recording each by id.
func (r *rig) collect(t *testing.T, ctx context.Context, wait time.Duration, got map[string][]protocol.Response) int {
	t.Helper()
	msgs, err := r.responses.Receive(ctx, queue.ReceiveOptions{MaxMessages: 10, WaitTime: wait})
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		resp, err := protocol.DecodeResponse(msg.Body)
		if err != nil {
			t.Fatal(err)
		}
		got[resp.ID] = append(got[resp.ID], resp)
		if err := r.responses.Delete(ctx, msg.ReceiptHandle); err != nil {
			t.Fatal(err)
		}
	}
	return len(msgs)
}

// check asserts every request in want was answered once, right, by an
// overflow worker, and that the request queue and its dead-letter queue are
// empty; it returns the answers' inference times, sorted, and the workers.
func (r *rig) check(t *testing.T, ctx context.Context, want map[string]string, got map[string][]protocol.Response) ([]float64, map[string]int) {
	t.Helper()
	var inference []float64
	workers := map[string]int{}
	for id, name := range want {
		rs := got[id]
		switch {
		case len(rs) == 0:
			t.Errorf("%s: no answer", id)
			continue
		case len(rs) > 1:
			t.Errorf("%s: answered %d times", id, len(rs))
		}
		a := rs[0]
		if a.Error != nil || a.Name != name || !strings.HasPrefix(a.Worker, "overflow/") {
			t.Errorf("%s: name %q worker %q error %v; want %q from an overflow worker", id, a.Name, a.Worker, a.Error, name)
		}
		workers[a.Worker]++
		inference = append(inference, a.Timings.InferenceMS)
	}
	if len(got) != len(want) {
		t.Errorf("%d requests answered, %d sent", len(got), len(want))
	}
	for _, q := range []*sqsqueue.Queue{r.requests, r.dlq} {
		if n, err := q.Counts(ctx); err != nil || n.Visible+n.InFlight+n.Delayed != 0 {
			t.Errorf("%s: %+v %v; want empty", q.URL(), n, err)
		}
	}
	slices.Sort(inference)
	return inference, workers
}

// TestOverflowUnderRIE: two execution environments of the overflow function
// (two RIE processes, as Lambda runs two concurrent invocations) answer ten
// queued requests with the right names, none twice, and return when the queue
// has stayed empty for their idle timeout, leaving it and its dead-letter
// queue empty; then, with an app-tier instance running, an invocation returns
// at once and leaves the queued requests to EC2.
func TestOverflowUnderRIE(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r := newRig(t, ctx)
	admin, st, env, people := r.admin, r.st, r.env, r.people
	want := map[string]string{} // request id -> name
	send := func(id, key string, photo []byte) { r.send(t, ctx, id, key, photo) }
	requests := r.requests
	pkg := r.pkg

	// Two execution environments; each loads the engine and models from the
	// package at init, as Lambda's cold start does.
	fns := make([]*lambdatest.Function, 2)
	for i := range fns {
		fns[i] = r.startOverflow(t)
	}
	invoke := func(f *lambdatest.Function) (overflowfn.Result, error) {
		resp, err := f.Invoke(ctx, []byte(overflowfn.WorkEvent))
		if err != nil {
			return overflowfn.Result{}, err
		}
		if resp.ErrorType != "" {
			return overflowfn.Result{}, fmt.Errorf("%s: %s", resp.ErrorType, resp.ErrorMessage)
		}
		var r overflowfn.Result
		if err := json.Unmarshal(resp.Body, &r); err != nil {
			return r, fmt.Errorf("response %q: %w", resp.Body, err)
		}
		return r, nil
	}

	// Phase 1: ten requests, two overflow invocations, no EC2.
	for _, p := range people {
		for k := 1; k <= 2; k++ {
			id := fmt.Sprintf("%s-%d", p.Name, k)
			want[id] = p.Name
			send(id, fmt.Sprintf("ovf_%s_%s", p.Name, p.Files[k]), p.Photos[k])
		}
	}
	start := time.Now()
	results := make([]overflowfn.Result, len(fns))
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Go(func() { results[i], errs[i] = invoke(f) })
	}
	got := map[string][]protocol.Response{}
	var first time.Duration
	collect := func(wait time.Duration) {
		if r.collect(t, ctx, wait, got) > 0 && first == 0 {
			first = time.Since(start)
		}
	}
	invoked := make(chan struct{})
	go func() { wg.Wait(); close(invoked) }()
	for done := false; !done; {
		select {
		case <-invoked:
			done = true
		default:
			collect(time.Second)
		}
	}
	took := time.Since(start)
	collect(time.Second)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("invocation %d: %v", i, err)
		}
		if results[i].Stop != overflowfn.StopIdle || !strings.HasPrefix(results[i].Worker, "overflow") {
			t.Errorf("invocation %d: %+v; want it to stop idle once the queue emptied", i, results[i])
		}
	}
	inference, workers := r.check(t, ctx, want, got)
	var inits []string // RIE's INIT REPORT: the bootstrap's init (engine and models loaded, queues and buckets checked)
	for _, f := range fns {
		if m := initReport.FindStringSubmatch(f.Logs()); m != nil {
			ms, _ := strconv.ParseFloat(m[1], 64)
			inits = append(inits, fmt.Sprintf("%.1f", ms/1000))
		}
	}
	t.Logf("overflow: %d answers from %d invocations %v: first answer %v after the invokes (cold start included), all in %v; inference p50 %.0f ms; peak RSS per environment %s",
		len(got), len(fns), workers, first.Round(time.Millisecond), took.Round(time.Millisecond), inference[len(inference)/2], peakRSS(filepath.Join(pkg, "bootstrap")))
	fmt.Printf("overflow-rie: answers=%d/%d right, none twice, queues empty; first_answer_s=%.2f returned_s=%.2f (idle wait included) init_s=%s invocations=%d inference_p50_ms=%.0f\n",
		len(got), len(want), first.Seconds(), took.Seconds(), strings.Join(inits, ","), len(fns), inference[len(inference)/2])

	// Phase 2: an app-tier instance runs: a (late) invocation takes nothing.
	imgs, err := admin.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no AMI: %v", err)
	}
	run, err := admin.EC2().RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
			Tags: []ec2types.Tag{{Key: aws.String(env["FACEFLEET_APP_TAG_KEY"]), Value: aws.String(st.Name)}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.EC2().TerminateInstances(context.WithoutCancel(ctx), &ec2.TerminateInstancesInput{InstanceIds: []string{aws.ToString(run.Instances[0].InstanceId)}})
	// It takes over once running for FACEFLEET_OVERFLOW_EC2_WARMUP (default 2 s).
	time.Sleep(3 * time.Second)
	for k := range 2 {
		send(fmt.Sprintf("late-%d", k), fmt.Sprintf("late_%d.png", k), people[0].Photos[k])
	}
	late, err := invoke(fns[0])
	if err != nil || late.Stop != overflowfn.StopEC2Running || late.FleetErrors != 0 {
		t.Fatalf("with an instance running: %+v %v; want ec2-running at once, the fleet listed under the template's policy", late, err)
	}
	if n, err := requests.Counts(ctx); err != nil || n.Visible != 2 || n.InFlight != 0 {
		t.Fatalf("request queue %+v %v; want the 2 requests left to EC2", n, err)
	}
}

var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// peakRSS is the largest VmHWM of the running processes executing exe.
func peakRSS(exe string) string {
	entries, _ := os.ReadDir("/proc")
	best := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err != nil || l != exe {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
				if kb, err := strconv.Atoi(f[1]); err == nil && kb > best {
					best = kb
				}
			}
		}
	}
	if best == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d MiB", best/1024)
}
