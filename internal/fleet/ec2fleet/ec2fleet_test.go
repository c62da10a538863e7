package ec2fleet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet/fakeec2"
	"github.com/facefleet/facefleet/internal/fleet/fleettest"
	"github.com/facefleet/facefleet/scaling"
)

func client(url string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  aws.AnonymousCredentials{},
		// The tests inject throttling and want to see it, not the SDK's backoff.
		RetryMaxAttempts: 1,
		HTTPClient:       awsconfig.NewHTTPClient(),
	})
}

func newFleet(t *testing.T, fo fakeec2.Options, max int) (*ec2fleet.Fleet, *fakeec2.Server) {
	t.Helper()
	fake := fakeec2.New(fo)
	t.Cleanup(fake.Close)
	f, err := ec2fleet.New(client(fake.URL), ec2fleet.Options{LaunchTemplateID: "lt-0123456789", TagKey: "facefleet", TagValue: "app", Max: max})
	if err != nil {
		t.Fatal(err)
	}
	return f, fake
}

func waitState(t *testing.T, f fleet.Fleet, want fleet.State, n int) []fleet.Instance {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		insts, err := f.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if fleet.CountByState(insts)[want] == n {
			return insts
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d %s: have %+v", n, want, insts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	var running, stopping = make(chan string, 10), make(chan string, 10)
	f, fake := newFleet(t, fakeec2.Options{
		PendingDelay: 50 * time.Millisecond, StoppingDelay: 50 * time.Millisecond,
		OnRunning: func(id string) { running <- id }, OnStopping: func(id string) { stopping <- id },
	}, 3)
	other := fake.Add("running", map[string]string{"facefleet": "web"})
	ctx := context.Background()

	got, err := f.Launch(ctx, 2)
	if err != nil || len(got) != 2 || got[0].State != fleet.Pending {
		t.Fatalf("Launch(2) = %+v, %v; want 2 pending", got, err)
	}
	insts := waitState(t, f, fleet.Running, 2)
	if len(insts) != 2 {
		t.Fatalf("List = %+v; want only the 2 tagged instances (not %s)", insts, other)
	}
	for range 2 {
		<-running
	}
	if _, err := f.Launch(ctx, 2); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch over the cap = %v; want ErrCapacity", err)
	}
	if err := f.Stop(ctx, got[0].ID); err != nil {
		t.Fatal(err)
	}
	if id := <-stopping; id != got[0].ID {
		t.Fatalf("OnStopping(%s); want %s", id, got[0].ID)
	}
	insts = waitState(t, f, fleet.Stopped, 1)
	for _, in := range insts {
		if in.ID == got[0].ID && (in.State != fleet.Stopped || time.Since(in.Since) > time.Minute) {
			t.Fatalf("stopped instance = %+v; want Since from the transition reason", in)
		}
	}
	if err := f.Stop(ctx, other); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Stop(untagged instance) = %v; want ErrNotFound, and it must not be stopped", err)
	}
	if fake.Count("running") != 2 { // the web instance and one app instance
		t.Fatalf("running = %d; want 2", fake.Count("running"))
	}
	// The stopped one starts again and a launch fills the pool to its cap.
	if err := f.Start(ctx, got[0].ID); err != nil {
		t.Fatalf("Start(stopped) = %v", err)
	}
	if _, err := f.Launch(ctx, 1); err != nil {
		t.Fatalf("Launch(1) below the cap = %v", err)
	}
	waitState(t, f, fleet.Running, 3)
	if _, err := f.Launch(ctx, 1); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch at the cap = %v; want ErrCapacity", err)
	}
}

func TestErrors(t *testing.T) {
	f, fake := newFleet(t, fakeec2.Options{}, 5)
	ctx := context.Background()
	fake.Inject("RunInstances", "InsufficientInstanceCapacity")
	if _, err := f.Launch(ctx, 1); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch with no capacity = %v; want ErrCapacity", err)
	}
	fake.Inject("DescribeInstances", "RequestLimitExceeded")
	if _, err := f.List(ctx); !errors.Is(err, ec2fleet.ErrThrottled) {
		t.Fatalf("List when throttled = %v; want ErrThrottled", err)
	}
	if err := f.Start(ctx, "i-00000000000000bad"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Start(unknown) = %v; want ErrNotFound", err)
	}
	if err := f.Start(ctx, "nonsense"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Start(malformed) = %v; want ErrNotFound", err)
	}
	id := fake.Add("stopping", map[string]string{"facefleet": "app"})
	if err := f.Start(ctx, id); !errors.Is(err, fleet.ErrIncorrectState) {
		t.Fatalf("Start(stopping) = %v; want ErrIncorrectState", err)
	}
	if _, err := f.Launch(ctx, 0); err == nil {
		t.Fatal("Launch(0) succeeded")
	}
	// The fake's capacity limit, reached through RunInstances itself.
	g, fake2 := newFleet(t, fakeec2.Options{Capacity: 1}, 5)
	if _, err := g.Launch(ctx, 2); !errors.Is(err, fleet.ErrCapacity) || fake2.Count("pending")+fake2.Count("running") != 0 {
		t.Fatalf("Launch(2) with capacity 1 = %v; want ErrCapacity and nothing launched", err)
	}
}

func TestListPaginates(t *testing.T) {
	f, fake := newFleet(t, fakeec2.Options{}, 2000)
	for range 1203 {
		fake.Add("stopped", map[string]string{"facefleet": "app"})
	}
	insts, err := f.List(context.Background())
	if err != nil || len(insts) != 1203 {
		t.Fatalf("List = %d, %v; want 1203 across pages", len(insts), err)
	}
	if fake.Calls("DescribeInstances") < 2 {
		t.Fatalf("DescribeInstances called %d times; want pagination", fake.Calls("DescribeInstances"))
	}
}

func TestNewValidates(t *testing.T) {
	c := client("http://127.0.0.1:1")
	for _, o := range []ec2fleet.Options{{TagKey: "k", TagValue: "v"}, {TagKey: "k", Max: 1}, {TagValue: "v", Max: 1}} {
		if _, err := ec2fleet.New(c, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// TestConformance runs the fleet port's suite against the fake EC2 endpoint,
// exactly as localfleet runs it in process.
func TestConformance(t *testing.T) {
	const phase = 700 * time.Millisecond
	fleettest.Run(t, fleettest.Harness{
		MinDelay: 500 * time.Millisecond,
		New: func(t *testing.T, max int) fleet.Fleet {
			f, _ := newFleet(t, fakeec2.Options{PendingDelay: phase, StoppingDelay: phase}, max)
			return f
		},
	})
}

// Retire (the controller's scale-in through scaling.Retirer) is an EC2 stop: the
// OS shutdown gives the worker its drain time (systemd TimeoutStopSec).
func TestRetireStopsTheInstance(t *testing.T) {
	f, _ := newFleet(t, fakeec2.Options{}, 2)
	var r scaling.Retirer = f
	ctx := context.Background()
	if _, err := f.Launch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	insts := waitState(t, f, fleet.Running, 1)
	if err := r.Retire(ctx, insts[0].ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, f, fleet.Stopped, 1)
	if err := r.Retire(ctx, "i-0000000000000dead"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Retire of an instance outside the pool: %v, want ErrNotFound", err)
	}
}
