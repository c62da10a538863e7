// Package cloude2e runs facefleet's AWS deployment on loopback: fauxqs for SQS and
// S3 (queues with dead-letter queues, buckets), a fake EC2 whose "instances" are
// real `facefleet apptier` processes, a real `facefleet webtier` process, and the
// scaler Lambda's bootstrap under the Lambda Runtime Interface Emulator, invoked
// with EventBridge's scheduled event. 50 concurrent course-style uploads of the shared faces (enrolled
// first) must all be answered right, the fleet must grow from 0 and return to 0,
// and every queue must end empty. `make e2e` runs it.
package cloude2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet/fakeec2"
	"github.com/facefleet/facefleet/internal/lambdatest"
	"github.com/facefleet/facefleet/internal/metrics/cloudwatchtest"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/internal/stats"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
	"github.com/facefleet/facefleet/webtier"
)

var (
	faux *awstest.Server
	moto *awstest.Moto
)

func TestMain(m *testing.M) { os.Exit(awstest.Both(m, &faux, &moto)) }

// Scenario sizes and timings (small: `make test` runs this too).
const (
	uploads      = 50
	enrollEach   = 2
	maxInstances = 3
	idleTimeout  = 3 * time.Second
	tagKey       = "facefleet-tier"
	tagValue     = "app"
	templateID   = "lt-0e2e0000000000000"
)

// pct is the nearest-rank percentile of ds, p in 0..1.
func pct(ds []time.Duration, p float64) time.Duration { return stats.PercentileOf(ds, 100*p) }

func TestCloudE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("the cloud e2e runs real processes and the real engine; skipped with -short")
	}
	s := awstest.Need(t, faux)
	testenv.Models(t) // skip (or fail) before building when the engine's files are absent
	testenv.ORTLib(t)
	people := e2ekit.LoadFaces(t, enrollEach+1)
	bin := testenv.Facefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Queues, dead-letter queues and buckets, through the SDK.
	d := newDeployment(ctx, t, s, 30*time.Second, 3, 3)
	sqsc, reqQ, respQ := d.clients.SQS(), d.reqQ, d.respQ

	cw := cloudwatchtest.New(t) // the scaler publishes its samples
	cwURL := cw.URL
	env := append(d.env, "AWS_ENDPOINT_URL_CLOUDWATCH="+cwURL)

	// The fake EC2: an instance that becomes running starts an apptier process;
	// one that begins stopping has its process stopped (or, when it stopped itself,
	// waited for).
	procs := &workers{bin: bin}
	var ec2URL string
	fake := fakeec2.New(fakeec2.Options{
		PendingDelay: 100 * time.Millisecond, StoppingDelay: 100 * time.Millisecond, Capacity: maxInstances + 2,
		OnRunning: func(id string) {
			procs.boot(t, id, append(env, "AWS_ENDPOINT_URL_EC2="+ec2URL), "-self-stop", "ec2", "-idle-timeout", idleTimeout.String(),
				"-min-lifetime", "0s", "-worker-wait", "1s", "-log-level", "warn")
		},
		OnStopping: func(id string) { procs.halt(id, 20*time.Second) },
	})
	ec2URL = fake.URL
	defer func() {
		// Close the fake first: it waits for its hooks, so no OnRunning can start
		// an apptier after the list below is taken.
		fake.Close()
		procs.stopAll(t, 5*time.Second)
	}()
	live := func() int { return fake.Count("pending") + fake.Count("running") + fake.Count("stopping") }

	// The scaler: functions/scaler's bootstrap, built as SAM builds it, under the
	// Lambda Runtime Interface Emulator, with the SQS, EC2 and CloudWatch adapters
	// pointed at fauxqs, the fake EC2 and the fake CloudWatch.
	fn := lambdatest.Start(t, lambdatest.Options{
		Timeout: 3 * time.Second,
		Env: map[string]string{
			"AWS_REGION":                  awstest.Region,
			"AWS_ENDPOINT_URL_SQS":        s.Endpoint,
			"AWS_ENDPOINT_URL_EC2":        ec2URL,
			"AWS_ENDPOINT_URL_CLOUDWATCH": cwURL,
			scalerfn.EnvQueueURL:          reqQ.URL,
			scalerfn.EnvLaunchTemplateID:  templateID,
			scalerfn.EnvTagKey:            tagKey,
			scalerfn.EnvTagValue:          tagValue,
			scalerfn.EnvMaxInstances:      strconv.Itoa(maxInstances),
			scalerfn.EnvInterval:          "500ms",
			scalerfn.EnvMargin:            "300ms",
			"FACEFLEET_METRICS_NAMESPACE": "facefleet-e2e",
		},
	})
	// Lambda's side of the invoke API: one invocation at a time (reserved
	// concurrency 1), InvocationType Event queued and answered 202.
	lf := &lambdaFront{fn: fn}
	front := httptest.NewServer(lf)
	defer func() { front.Close(); lf.wait() }()

	// An admin key for enrollment, made by the CLI in the output bucket as an
	// operator would.
	keyCmd := exec.Command(bin, "keys", "create", "-role", "admin", "-name", "e2e")
	keyCmd.Env = env
	keyOut, err := keyCmd.Output()
	if err != nil {
		t.Fatalf("facefleet keys create: %v", err)
	}
	admin := &http.Client{Timeout: 2 * time.Minute, Transport: &apikeys.Transport{Key: strings.TrimSpace(string(keyOut))}}

	// The web tier, on a free loopback port.
	port := freePort(t)
	startWebTier(t, &procs.procGroup, "webtier", bin, env, port, 30*time.Second, "-log-level", "warn",
		// The nudge, as deployed: the web tier invokes the scaler asynchronously.
		"-scaler-function", "function", "-lambda-endpoint", front.URL)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	client := &http.Client{Timeout: 2 * time.Minute}

	scalerCtx, stopScaler := context.WithCancel(ctx)
	scalerDone := make(chan struct{})
	var scalerErrs atomic.Int64
	go func() {
		defer close(scalerDone)
		runScaler(scalerCtx, t, lf, &scalerErrs)
	}()
	defer func() { stopScaler(); <-scalerDone }()

	// Enroll the first photos of each person (this already needs the fleet).
	for _, p := range people {
		for i := range enrollEach {
			code, body, err := e2ekit.Upload(admin, "PUT", url+"/v1/subjects/"+p.Name+"/faces", "image", p.Files[i], p.Photos[i])
			if err != nil || code != http.StatusCreated {
				t.Fatalf("enroll %s/%s: %d %q %v", p.Name, p.Files[i], code, body, err)
			}
		}
	}
	e2ekit.WaitFor(t, "the fleet to go back to 0 after enrollment", 60*time.Second, func() bool { return live() == 0 })

	// Bad input at the edges, just before the burst: a request that is not our
	// JSON, and a well-formed one whose S3 key has vanished. Neither may crash a
	// worker, loop through the dead-letter queue or stay in any queue (checked at
	// the end). And EC2 trouble when the scaler first acts: throttled starts, then
	// no capacity for launches; the scaler must log, act safely and recover.
	rq, err := sqsqueue.New(sqsc, reqQ.URL, sqsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The EC2 trouble is injected before the bad input is queued: the bad
	// input alone may make the scaler start the stopped worker, and that start
	// must be the throttled one (a CI run once started it unthrottled first).
	// The SDK retries throttling 3 times, so 3 throttles fail one StartInstances.
	fake.Inject("StartInstances", "RequestLimitExceeded", "RequestLimitExceeded", "RequestLimitExceeded")
	fake.Inject("RunInstances", "InsufficientInstanceCapacity")
	if _, err := rq.Send(ctx, "this is not a facefleet request {"); err != nil {
		t.Fatal(err)
	}
	vanished, err := protocol.EncodeRequest(protocol.Request{V: protocol.Version, ID: "e2e-vanished", Key: "vanished.png",
		ETag: `"00000000000000000000000000000000"`, Kind: protocol.Classify, SentAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rq.Send(ctx, vanished); err != nil {
		t.Fatal(err)
	}
	// And the idle worker's own StopInstances is throttled once (3 SDK attempts):
	// it must retry rather than leave a running instance with no worker.
	stopsBefore := fake.Calls("StopInstances")
	fake.Inject("StopInstances", "RequestLimitExceeded", "RequestLimitExceeded", "RequestLimitExceeded")

	// The page's fleet history works on AWS too: watching it makes the web tier
	// sample once a second, and the burst must show in it.
	var hist webtier.History
	getHistory := func() {
		res, err := client.Get(url + "/v1/status/history")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if err := json.NewDecoder(res.Body).Decode(&hist); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/status/history: %d %v", res.StatusCode, err)
		}
	}
	getHistory()

	// The burst: 50 concurrent course-style uploads under unique names.
	var peak atomic.Int64
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for watchCtx.Err() == nil {
			if n := int64(fake.Count("pending") + fake.Count("running")); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		correct   int
		latencies []time.Duration
	)
	for i := range uploads {
		p := people[i%len(people)]
		k := (i / len(people)) % len(p.Photos)
		file := fmt.Sprintf("u%03d_%s", i, p.Files[k])
		want := fmt.Sprintf("u%03d_%s:%s", i, strings.TrimSuffix(p.Files[k], filepath.Ext(p.Files[k])), p.Name)
		wg.Go(func() {
			start := time.Now()
			code, body, err := e2ekit.Upload(client, "POST", url+"/", "inputFile", file, p.Photos[k])
			el := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, el)
			if err != nil || code != http.StatusOK || body != want {
				t.Errorf("%s: %d %q %v; want %q", file, code, body, err, want)
				return
			}
			correct++
		})
	}
	wg.Wait()
	burstEnd := time.Now()
	stopWatch()
	<-watchDone

	if peak.Load() == 0 {
		t.Error("no instance ran during the burst")
	}
	e2ekit.WaitFor(t, "the fleet to scale back to 0", 60*time.Second, func() bool { return live() == 0 })
	backToZero := time.Since(burstEnd)
	getHistory()
	histPeak := 0
	for _, sm := range hist.Samples {
		histPeak = max(histPeak, sm.Visible+sm.InFlight)
	}
	// Decisions are available on AWS too: the web tier reads the scaler
	// Lambda's log in the output bucket (internal/decisionlog).
	if histPeak == 0 || len(hist.Samples) < 3 || !hist.DecisionsAvailable {
		t.Errorf("fleet history on AWS: %d samples, peak %d queued or in flight, decisions available %v; want the burst in it and the scaler's decisions available",
			len(hist.Samples), histPeak, hist.DecisionsAvailable)
	}

	// Every queue, and both dead-letter queues, end empty.
	for _, u := range []string{reqQ.URL, reqQ.DLQURL, respQ.URL, respQ.DLQURL} {
		q, err := sqsqueue.New(sqsc, u, sqsqueue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e2ekit.WaitFor(t, "queue "+u+" to be empty", 10*time.Second, func() bool {
			c, err := q.Counts(ctx)
			return err == nil && c == (queue.Counts{})
		})
	}
	if scalerErrs.Load() > 0 {
		t.Errorf("%d scaler invocations failed", scalerErrs.Load())
	}
	if n := fake.Calls("StopInstances") - stopsBefore; n < 4 {
		t.Errorf("StopInstances called %d times after the burst; want the throttled self-stop (3 attempts) retried", n)
	}
	if fake.Calls("StartInstances") < 2 {
		t.Errorf("StartInstances called %d times; the injected throttling was never hit or never recovered from", fake.Calls("StartInstances"))
	}
	if len(cw.Puts()) == 0 || len(cw.Bad()) > 0 {
		t.Errorf("the scaler published %d metric batches, refused requests %v; want some and none", len(cw.Puts()), cw.Bad())
	}
	if lf.events.Load() == 0 {
		t.Error("the web tier never nudged the scaler (InvocationType Event invokes)")
	}
	fmt.Printf("e2e: %d/%d correct, peak instances %d, p50 %d ms, p95 %d ms, fleet back to 0 in %.1f s, queues empty, %d instance boots, %d nudges\n",
		correct, uploads, peak.Load(), pct(latencies, 0.5).Milliseconds(), pct(latencies, 0.95).Milliseconds(),
		backToZero.Seconds(), procs.boots.Load(), lf.events.Load())
}

// runScaler invokes the scaler Lambda until ctx ends, as EventBridge's schedule
// would (every second here, or right after the previous invoke when that ran
// longer); each invoke loops its steps until its deadline, or returns after one
// step when queue and fleet are empty.
func runScaler(ctx context.Context, t *testing.T, fn *lambdaFront, failures *atomic.Int64) {
	const every = time.Second
	event, _ := json.Marshal(map[string]any{
		"version": "0", "id": "e2e", "detail-type": "Scheduled Event", "source": "aws.events",
		"account": "000000000000", "region": awstest.Region, "time": time.Now().UTC().Format(time.RFC3339),
		"resources": []string{"arn:aws:events:us-east-1:000000000000:rule/facefleet-scaler"},
		"detail":    map[string]any{},
	})
	for ctx.Err() == nil {
		start := time.Now()
		res, err := fn.Invoke(ctx, event)
		if ctx.Err() != nil {
			return
		}
		if wait := every - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		// Invocations that acted, failed a step or lost their decision-log
		// write are shown when the test fails.
		var r scalerfn.Result
		if json.Unmarshal(res.Body, &r) == nil && (r.Started+r.Stopped+r.Failed > 0 || r.DecisionsErr != "") {
			t.Logf("scaler invoke: %s", res.Body)
		}
		if err != nil || res.ErrorType != "" || res.Status != http.StatusOK {
			failures.Add(1)
			t.Logf("scaler invoke: status %d, %s: %s, %v", res.Status, res.ErrorType, res.ErrorMessage, err)
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// lambdaFront stands where Lambda's Invoke API stands for the web tier: RIE runs
// one invocation at a time and fails a concurrent one, so invokes are serialised
// here (as reserved concurrency 1 does), and an InvocationType Event invoke is
// answered 202 at once and run when the function is free (Lambda's async
// queue). Not modelled: the queue's retry backoff and maximum event age, IAM.
type lambdaFront struct {
	fn     *lambdatest.Function
	mu     sync.Mutex
	wg     sync.WaitGroup
	events atomic.Int64
}

func (f *lambdaFront) Invoke(ctx context.Context, payload []byte) (lambdatest.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fn.Invoke(ctx, payload)
}

func (f *lambdaFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case r.Method != http.MethodPost || r.URL.Path != "/2015-03-31/functions/function/invocations":
		http.Error(w, "not the scaler's invoke path: "+r.URL.Path, http.StatusNotFound)
		return
	case r.Header.Get("X-Amz-Invocation-Type") != "Event":
		http.Error(w, "only InvocationType Event is expected from the web tier", http.StatusBadRequest)
		return
	}
	f.events.Add(1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = f.Invoke(ctx, body)
	}()
	w.WriteHeader(http.StatusAccepted)
}

func (f *lambdaFront) wait() { f.wg.Wait() }
