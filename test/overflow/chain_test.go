package overflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/lambdatest"
	"github.com/facefleet/facefleet/internal/overflowfn"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// overflowFront stands where Lambda's Invoke API stands for the scaler. It
// authorises each request with the template's scaler policies
// (awstest.Authorize on the resource Lambda derives from the request; moto
// cannot, see docs/emulators.md) and, as Lambda does with an Event invoke,
// answers 202 and queues the event: it runs on a free execution environment
// at once, or waits for one when all are busy (Lambda throttles at the
// function's reserved concurrency, here the pool's size, and retries the event
// until it is MaximumEventAgeInSeconds old, then drops it).
type overflowFront struct {
	arn, account string
	pols         []awstest.Policy
	maxAge       time.Duration

	mu      sync.Mutex
	free    []*lambdatest.Function
	queued  []queuedEvent
	results []overflowfn.Result
	errs    []string
	wg      sync.WaitGroup

	accepted, waited, dropped, refused atomic.Int64
}

type queuedEvent struct {
	body []byte
	at   time.Time
}

func (f *overflowFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fail := func(status int, typ, msg string) {
		f.refused.Add(1)
		w.Header().Set("X-Amzn-Errortype", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
	res, err := awstest.LambdaInvokeResource(r.URL.EscapedPath(), r.URL.RawQuery, awstest.Region, f.account)
	if err != nil {
		fail(http.StatusBadRequest, "InvalidRequestContentException", err.Error())
		return
	}
	if ok, err := awstest.Authorize(f.pols, "lambda:InvokeFunction", res); err != nil || !ok {
		fail(http.StatusForbidden, "AccessDeniedException", fmt.Sprintf("not authorized to perform lambda:InvokeFunction on %s (%v)", res, err))
		return
	}
	if res != f.arn {
		fail(http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+res)
		return
	}
	if r.Header.Get("X-Amz-Invocation-Type") != "Event" {
		fail(http.StatusBadRequest, "InvalidParameterValueException", "the scaler invokes the overflow with InvocationType Event")
		return
	}
	f.accepted.Add(1)
	f.mu.Lock()
	if len(f.free) == 0 {
		f.waited.Add(1)
	}
	f.queued = append(f.queued, queuedEvent{body: body, at: time.Now()})
	f.dispatchLocked()
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// dispatchLocked runs queued events on free environments, dropping those older
// than maxAge; f.mu is held.
func (f *overflowFront) dispatchLocked() {
	for len(f.free) > 0 && len(f.queued) > 0 {
		ev := f.queued[0]
		f.queued = f.queued[1:]
		if time.Since(ev.at) > f.maxAge {
			f.dropped.Add(1)
			continue
		}
		fn := f.free[len(f.free)-1]
		f.free = f.free[:len(f.free)-1]
		f.wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp, err := fn.Invoke(ctx, ev.body)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.free = append(f.free, fn)
			var out overflowfn.Result
			switch {
			case err != nil:
				f.errs = append(f.errs, err.Error())
			case resp.ErrorType != "":
				f.errs = append(f.errs, resp.ErrorType+": "+resp.ErrorMessage)
			case json.Unmarshal(resp.Body, &out) != nil:
				f.errs = append(f.errs, fmt.Sprintf("response %q", resp.Body))
			default:
				f.results = append(f.results, out)
			}
			f.dispatchLocked()
		})
	}
}

// chain is the scaler Lambda under RIE (the scaler's IAM user, the template's
// ScalerFunction variables with OverflowReservedConcurrency 2) whose Lambda
// endpoint is an overflowFront over two overflow environments.
type chain struct {
	front  *overflowFront
	scaler *lambdatest.Function
	env    map[string]string // the scaler's

	stop                   func()
	steps, started, failed atomic.Int64
}

func startChain(t *testing.T, ctx context.Context, r *rig) *chain {
	t.Helper()
	st := r.st
	imgs, err := r.admin.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no AMI: %v", err)
	}
	lt, err := r.admin.EC2().CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(st.Name + "-app"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: imgs.Images[0].ImageId, InstanceType: ec2types.InstanceTypeC7iLarge},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Refs["AppLaunchTemplate"] = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	st.Params["OverflowReservedConcurrency"] = "2"
	scalerCreds, err := r.m.TierUser(ctx, "scaler", st)
	if err != nil {
		t.Fatal(err)
	}
	scalerPols, _, err := r.tmpl.TierPolicies("scaler", st)
	if err != nil {
		t.Fatal(err)
	}
	env, err := r.tmpl.FunctionEnv("ScalerFunction", st)
	if err != nil {
		t.Fatal(err)
	}
	arn := env[scalerfn.EnvOverflowFunction]
	if !strings.HasSuffix(arn, ":function:"+st.Name+"-OverflowFunction") || env[scalerfn.EnvOverflowMax] != "2" {
		t.Fatalf("the template gives the scaler overflow function %q, max %q", arn, env[scalerfn.EnvOverflowMax])
	}
	// EventInvokeConfig.MaximumEventAgeInSeconds: 60 in the template.
	c := &chain{front: &overflowFront{arn: arn, account: st.Account, pols: scalerPols, maxAge: time.Minute}, env: env}
	for range 2 {
		c.front.free = append(c.front.free, r.startOverflow(t))
	}
	srv := httptest.NewServer(c.front)
	t.Cleanup(srv.Close)
	for _, kv := range r.m.EnvFor(scalerCreds) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env["AWS_ENDPOINT_URL_LAMBDA"] = srv.URL
	env["FACEFLEET_S3_PATH_STYLE"] = "1"
	// A 10 s invocation stepping every 500 ms (the deployed 60 s and 5 s, scaled
	// down so the loop re-invokes it often), keeping the deployed 3 s margin
	// for its metrics flush and decision log: on moto a step can take a second,
	// and an invocation that times out loses the controller's state with its
	// runtime, as on Lambda.
	env[scalerfn.EnvInterval], env[scalerfn.EnvMargin] = "500ms", "3s"
	c.scaler = lambdatest.Start(t, lambdatest.Options{Timeout: 10 * time.Second, Env: env, Name: st.Name + "-ScalerFunction"})
	return c
}

// run nudges the scaler, as the web tier does on the first upload, then
// invokes it back to back, as its schedule and alarm would, until stop.
func (c *chain) run(t *testing.T, ctx context.Context) {
	scalerCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	c.stop = func() { stop(); <-done }
	go func() {
		defer close(done)
		payload := scalerfn.NudgeEvent
		for scalerCtx.Err() == nil {
			resp, err := c.scaler.Invoke(scalerCtx, []byte(payload))
			payload = `{"action":"run"}`
			var res scalerfn.Result
			if err == nil && resp.ErrorType == "" && json.Unmarshal(resp.Body, &res) == nil {
				c.steps.Add(int64(res.Steps))
				c.started.Add(int64(res.Started))
				c.failed.Add(int64(res.Failed))
			} else if scalerCtx.Err() == nil {
				t.Logf("scaler invoke: %v: status %d %s %s %.300q", err, resp.Status, resp.ErrorType, resp.ErrorMessage, resp.Body)
				c.failed.Add(1)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
}

// checkFront asserts every overflow invoke was authorised and ran without error.
func (c *chain) checkFront(t *testing.T) []overflowfn.Result {
	t.Helper()
	c.front.wg.Wait()
	c.front.mu.Lock()
	results, errs := c.front.results, c.front.errs
	c.front.mu.Unlock()
	if c.front.accepted.Load() == 0 || c.front.refused.Load() != 0 || c.front.dropped.Load() != 0 || len(errs) != 0 {
		t.Errorf("overflow invokes: %d accepted, %d refused (IAM, path, type), %d dropped, errors %v",
			c.front.accepted.Load(), c.front.refused.Load(), c.front.dropped.Load(), errs)
	}
	for _, res := range results {
		if res.Stop != overflowfn.StopIdle && res.Stop != overflowfn.StopEC2Running && res.Stop != overflowfn.StopDeadline {
			t.Errorf("overflow invocation %+v", res)
		}
	}
	if c.failed.Load() != 0 {
		t.Errorf("%d scaler steps or invocations failed", c.failed.Load())
	}
	return results
}

// instances counts the stack's app-tier instances by state.
func (r *rig) instances(t *testing.T, ctx context.Context, tagKey string) map[ec2types.InstanceStateName]int {
	t.Helper()
	out, err := r.admin.EC2().DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + tagKey), Values: []string{r.st.Name}}}})
	if err != nil {
		t.Fatal(err)
	}
	n := map[ec2types.InstanceStateName]int{}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			n[in.State.Name]++
		}
	}
	return n
}

// TestScalerInvokesTheOverflow is the whole chain from a cold fleet: ten
// uploads are queued, the scaler Lambda (under RIE, as the scaler's IAM user,
// with the template's ScalerFunction variables for OverflowReservedConcurrency
// 2) is nudged, its policy hands the burst to the overflow, its
// OverflowInvoker's Event invokes pass the template's scaler policy and start
// overflow environments (under RIE, as the overflow's user), and every upload
// is answered right by them, none twice, without an EC2 instance: a burst the
// overflow clears alone buys no EC2 minute.
func TestScalerInvokesTheOverflow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	r := newRig(t, ctx)
	c := startChain(t, ctx, r)
	want := map[string]string{}
	for _, p := range r.people {
		for k := 1; k <= 2; k++ {
			id := fmt.Sprintf("%s-%d", p.Name, k)
			want[id] = p.Name
			r.send(t, ctx, id, fmt.Sprintf("chain_%s_%s", p.Name, p.Files[k]), p.Photos[k])
		}
	}
	start := time.Now()
	c.run(t, ctx)
	got := map[string][]protocol.Response{}
	var first time.Duration
	for len(got) < len(want) && time.Since(start) < 3*time.Minute {
		if r.collect(t, ctx, time.Second, got) > 0 && first == 0 {
			first = time.Since(start)
		}
	}
	answered := time.Since(start)
	c.stop()
	c.checkFront(t)
	r.collect(t, ctx, time.Second, got)
	_, workers := r.check(t, ctx, want, got)
	n := 0
	for _, k := range r.instances(t, ctx, c.env[scalerfn.EnvTagKey]) {
		n += k
	}
	if n != 0 || c.started.Load() != 0 {
		t.Errorf("%d EC2 instances (%d started by the scaler); want none for a burst the overflow clears alone", n, c.started.Load())
	}
	fmt.Printf("overflow-chain: nudge -> scaler -> %d overflow invokes (%d waited for a free environment at concurrency 2) -> %d/%d answered right by %d overflow workers, none twice, queues empty; first answer %.1f s, last %.1f s after the nudge (cold starts included); %d EC2 instances\n",
		c.front.accepted.Load(), c.front.waited.Load(), len(got), len(want), len(workers), first.Seconds(), answered.Seconds(), n)
}
