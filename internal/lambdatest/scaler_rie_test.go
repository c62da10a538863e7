package lambdatest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/metrics/cloudwatchtest"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/internal/testenv"
)

const (
	tagKey   = "facefleet-app"
	tagValue = "facefleet-test"
	ltID     = "lt-0123456789abcdef0"
	maxInst  = 3
)

type scalerEnv struct {
	sqs *fakeSQS
	ec2 *fakeEC2
	cw  *cloudwatchtest.Server
	fn  *Function
}

// startScaler runs the real scaler bootstrap under RIE against loopback fakes of
// SQS, EC2 and CloudWatch, configured through the env vars template.yaml sets.
func startScaler(t *testing.T, ec2States ...string) *scalerEnv {
	t.Helper()
	e := &scalerEnv{sqs: &fakeSQS{}, ec2: newFakeEC2(tagKey, tagValue, ec2States...), cw: cloudwatchtest.New(t)}
	e.fn = Start(t, Options{
		Timeout: 2 * time.Second,
		Env: map[string]string{
			"AWS_ENDPOINT_URL_SQS":        serve(t, e.sqs),
			"AWS_ENDPOINT_URL_EC2":        serve(t, e.ec2),
			"AWS_ENDPOINT_URL_CLOUDWATCH": e.cw.URL,
			"AWS_MAX_ATTEMPTS":            "1", // fail fast on the injected errors
			scalerfn.EnvQueueURL:          "https://sqs.us-east-1.amazonaws.com/123456789012/facefleet-requests",
			scalerfn.EnvLaunchTemplateID:  ltID,
			scalerfn.EnvTagKey:            tagKey,
			scalerfn.EnvTagValue:          tagValue,
			scalerfn.EnvMaxInstances:      "3",
			scalerfn.EnvNamespace:         "FacefleetTest",
			// 2 s timeout - 1 s margin: a looping invoke steps ~5 times, 200 ms apart.
			scalerfn.EnvInterval: "200ms",
			scalerfn.EnvMargin:   "1s",
		},
	})
	return e
}

func (e *scalerEnv) invoke(t *testing.T, payload []byte) (scalerfn.Result, Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := e.fn.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	var res scalerfn.Result
	if resp.ErrorType == "" {
		if err := json.Unmarshal(resp.Body, &res); err != nil {
			t.Fatalf("response %q is not a scalerfn.Result: %v", resp.Body, err)
		}
	}
	return res, resp
}

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func event(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEveryEventFile invokes the emulated function with each events/*.json, with a
// backlog, two stopped app-tier instances and one running.
func TestEveryEventFile(t *testing.T) {
	e := startScaler(t, "stopped", "stopped", "running")
	files, err := filepath.Glob(filepath.Join(testenv.Root(), "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no events/*.json: %v", err)
	}
	want := map[string]struct {
		trigger scalerfn.Trigger
		loop    bool
		alarm   string
	}{
		"scheduled.json": {scalerfn.TriggerSchedule, true, ""},
		"alarm.json":     {scalerfn.TriggerAlarm, true, "ALARM"},
		"alarm-ok.json":  {scalerfn.TriggerAlarm, true, "OK"},
		"direct.json":    {scalerfn.TriggerDirect, false, ""},
		"nudge.json":     {scalerfn.TriggerNudge, true, ""},
	}
	sort.Strings(files)
	for _, path := range files {
		name := filepath.Base(path)
		if name == "env.json" { // sam local's --env-vars file, not an event
			continue
		}
		t.Run(name, func(t *testing.T) {
			e.sqs.set(0, false)
			before := e.sqs.count()
			res, resp := e.invoke(t, event(t, name))
			if name == "malformed.json" {
				if resp.ErrorType != "EventError" || !strings.Contains(resp.ErrorMessage, "alarmArn") {
					t.Fatalf("malformed event: got %d %s %q, want an EventError naming alarmArn", resp.Status, resp.ErrorType, resp.ErrorMessage)
				}
				if e.sqs.count() != before {
					t.Error("a rejected event still read the queue")
				}
				return
			}
			w, ok := want[name]
			if !ok {
				t.Fatalf("events/%s has no expectation in this test; add one", name)
			}
			if resp.ErrorType != "" {
				t.Fatalf("function error %s: %s", resp.ErrorType, resp.ErrorMessage)
			}
			if res.Trigger != w.trigger || res.AlarmState != w.alarm || res.Failed != 0 {
				t.Errorf("result = %+v, want trigger %s alarm state %q", res, w.trigger, w.alarm)
			}
			if w.loop && res.Steps < 2 {
				t.Errorf("looping trigger took %d steps, want several within the 1 s window", res.Steps)
			}
			if !w.loop && res.Steps != 1 {
				t.Errorf("direct step took %d steps, want 1", res.Steps)
			}
			if got := e.sqs.count() - before; got < res.Steps {
				t.Errorf("%d GetQueueAttributes calls for %d steps: depth must come from SQS each step", got, res.Steps)
			}
			if res.Started != 0 {
				t.Errorf("empty queue with one running worker started %d instances", res.Started)
			}
		})
	}
	if a, _ := e.ec2.snapshot(); len(a) != 0 {
		t.Errorf("EC2 actions with an empty queue: %v", a)
	}
}

// TestBurstStartsStoppedThenLaunchesUpToMax drives a backlog through the alarm
// invoke and checks the fleet actions and the published metrics.
func TestBurstStartsStoppedThenLaunchesUpToMax(t *testing.T) {
	e := startScaler(t, "stopped")
	// 20000 messages want far more instances than the cap of 3 under any sane policy.
	e.sqs.set(20000, false)
	res, resp := e.invoke(t, event(t, "alarm.json"))
	if resp.ErrorType != "" {
		t.Fatalf("function error %s: %s\n%s", resp.ErrorType, resp.ErrorMessage, e.fn.Logs())
	}
	actions, live := e.ec2.snapshot()
	if live > maxInst {
		t.Errorf("%d instances after the burst, above the cap of %d", live, maxInst)
	}
	if len(actions) == 0 || !strings.HasPrefix(actions[0], "StartInstances i-") {
		t.Fatalf("actions = %v, want the stopped instance started first", actions)
	}
	var launched bool
	for _, a := range actions[1:] {
		launched = launched || strings.HasPrefix(a, "RunInstances")
	}
	if !launched || res.Started < 2 {
		t.Errorf("actions %v, started %d: want a launch after the stopped pool ran out", actions, res.Started)
	}
	e.ec2.mu.Lock()
	for _, run := range e.ec2.runs {
		if run.Get("LaunchTemplate.LaunchTemplateId") != ltID || run.Get("TagSpecification.1.Tag.1.Key") != tagKey ||
			run.Get("TagSpecification.1.Tag.1.Value") != tagValue {
			t.Errorf("RunInstances without the launch template and app-tier tag: %v", run)
		}
	}
	e.ec2.mu.Unlock()
	ns, backlog, puts := e.cw.Last(scalerfn.MetricBacklog)
	if puts != 1 || ns != "FacefleetTest" || len(backlog) != res.Steps-res.Failed || backlog[0] != 20000 {
		t.Errorf("PutMetricData: %d calls, namespace %q, backlog %v; want one batch in FacefleetTest with 20000 per step", puts, ns, backlog)
	}
	if _, desired, _ := e.cw.Last(scalerfn.MetricDesired); len(desired) == 0 || desired[0] != maxInst {
		t.Errorf("desired samples %v, want %d (the cap)", desired, maxInst)
	}
}

// TestEndpointErrorsDecideSafely: with SQS denying access or EC2 failing, the
// function reports the error and touches no instance.
func TestEndpointErrorsDecideSafely(t *testing.T) {
	e := startScaler(t, "stopped", "stopped")
	e.sqs.set(500, true)
	_, resp := e.invoke(t, event(t, "scheduled.json"))
	if resp.ErrorType != "StepsFailedError" || !strings.Contains(resp.ErrorMessage, "every controller step failed") ||
		!strings.Contains(resp.ErrorMessage, "GetQueueAttributes") {
		t.Errorf("SQS denied: got %s %q, want an error naming the failed read", resp.ErrorType, resp.ErrorMessage)
	}
	e.sqs.set(500, false)
	e.ec2.mu.Lock()
	e.ec2.down = true
	e.ec2.mu.Unlock()
	_, resp = e.invoke(t, event(t, "direct.json"))
	if resp.ErrorType != "StepsFailedError" || !strings.Contains(resp.ErrorMessage, "UnauthorizedOperation") {
		t.Errorf("EC2 down: got %s %q, want an error naming EC2's", resp.ErrorType, resp.ErrorMessage)
	}
	if a, _ := e.ec2.snapshot(); len(a) != 0 {
		t.Errorf("EC2 actions despite failed observations: %v", a)
	}
	// The runtime survived both: the next invoke works.
	e.ec2.mu.Lock()
	e.ec2.down = false
	e.ec2.mu.Unlock()
	res, resp := e.invoke(t, event(t, "direct.json"))
	if resp.ErrorType != "" || res.Steps != 1 || res.Started < 1 {
		t.Errorf("after recovery: %+v %s %q, want one step starting instances", res, resp.ErrorType, resp.ErrorMessage)
	}
	// The backlog is served from the stopped pool first: no launch while any is stopped.
	actions, _ := e.ec2.snapshot()
	if len(actions) == 0 || !strings.HasPrefix(actions[0], "StartInstances i-") {
		t.Errorf("actions after recovery = %v, want StartInstances of the stopped pool", actions)
	}
}

// TestMisconfiguredFunctionSaysWhy: a missing env var fails every invoke with a
// message naming it, and the runtime does not crash-loop.
func TestMisconfiguredFunctionSaysWhy(t *testing.T) {
	fn := Start(t, Options{Timeout: 2 * time.Second, Env: map[string]string{scalerfn.EnvTagKey: tagKey}})
	for range 2 {
		resp, err := fn.Invoke(context.Background(), event(t, "direct.json"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ErrorType == "" || !strings.Contains(resp.ErrorMessage, scalerfn.EnvQueueURL) ||
			!strings.Contains(resp.ErrorMessage, scalerfn.EnvLaunchTemplateID) {
			t.Fatalf("got %d %s %q, want a configuration error naming the missing variables", resp.Status, resp.ErrorType, resp.ErrorMessage)
		}
	}
}

// TestMakefilePinsTheSameRIE keeps `make rie` and the harness on one version.
func TestMakefilePinsTheSameRIE(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "RIE_VERSION := "+RIEVersion+"\n") {
		t.Errorf("Makefile's RIE_VERSION is not %s (lambdatest.RIEVersion)", RIEVersion)
	}
}
