package ec2fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet/fakeec2"
	"github.com/facefleet/facefleet/internal/fleet/fleettest"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/scaling"
)

var moto *awstest.Moto

func TestMain(m *testing.M) { os.Exit(awstest.MotoMain(m, &moto)) }

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
	// The fake's capacity limit, reached through RunInstances itself: one
	// RunInstances per slot, so EC2 gives what it has and Launch says so.
	g, fake2 := newFleet(t, fakeec2.Options{Capacity: 1}, 5)
	got, err := g.Launch(ctx, 2)
	if !errors.Is(err, fleet.ErrCapacity) || len(got) != 1 || fake2.Count("pending")+fake2.Count("running") != 1 {
		t.Fatalf("Launch(2) with capacity 1 = %+v, %v; want the 1 instance EC2 had and ErrCapacity", got, err)
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

// virtualClock is a shared clock the test advances by hand.
type virtualClock struct{ ns atomic.Int64 }

func newVirtualClock() *virtualClock {
	c := &virtualClock{}
	c.ns.Store(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *virtualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *virtualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// backlog is a queue whose visible count the test sets.
type backlog struct{ n atomic.Int64 }

func (b *backlog) Counts(context.Context) (queue.Counts, error) {
	return queue.Counts{Visible: int(b.n.Load())}, nil
}

// TestConcurrentControllersNeverDoubleLaunch is defect 5: two scaler invocations
// (the schedule and the alarm) step at once over an EC2 whose DescribeInstances
// lags RunInstances by 5-15 s (virtual time). Each has its own controller, policy
// and fleet client and no memory of the other. The fleet must never hold more
// instances than the largest number any decision asked for, and every slot must
// be launched once.
func TestConcurrentControllersNeverDoubleLaunch(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { concurrentControllers(t, seed) })
	}
}

func concurrentControllers(t *testing.T, seed uint64) {
	clock := newVirtualClock()
	fake := fakeec2.New(fakeec2.Options{Now: clock.Now, LagMin: 5 * time.Second, LagMax: 15 * time.Second, Seed: seed})
	t.Cleanup(fake.Close)
	const maxInst = 10
	q := &backlog{}
	var ctrls [2]*scaling.Controller
	for i := range ctrls {
		f, err := ec2fleet.New(client(fake.URL), ec2fleet.Options{LaunchTemplateID: "lt-0123456789", TagKey: "facefleet", TagValue: "app", Max: maxInst, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		ctrls[i] = scaling.NewController(scaling.ControllerOptions{Queue: q, Fleet: f, Max: maxInst})
	}
	ctx := context.Background()
	// The backlog grows in steps, so later decisions ask for more than earlier
	// ones made from the same stale view (facefleet: 60 ms per message, drained
	// in 20 s: 334 messages need 1 instance more).
	backlogs := []int64{300, 300, 1000, 1000, 1000, 2000, 2000, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000}
	asked := 0
	for round, b := range backlogs {
		q.n.Store(b)
		var wg sync.WaitGroup
		var ds [2]scaling.Decision
		for i, c := range ctrls {
			wg.Go(func() {
				d, err := c.Step(ctx, clock.Now())
				if err != nil {
					t.Errorf("round %d controller %d: %v", round, i, err)
				}
				ds[i] = d
			})
		}
		wg.Wait()
		for _, d := range ds {
			asked = max(asked, d.Desired)
		}
		live := 0
		for _, in := range fake.Instances() {
			if in.State != "terminated" {
				live++
			}
		}
		if live > asked {
			t.Fatalf("round %d: the fleet holds %d instances but no decision asked for more than %d (decisions %+v / %+v)",
				round, live, asked, ds[0], ds[1])
		}
		clock.Advance(time.Duration(1+round%3) * time.Second)
	}
	slots := map[string]string{}
	for _, in := range fake.Instances() {
		k := in.Tags[ec2fleet.DefaultSlotTagKey]
		if other, dup := slots[k]; dup {
			t.Errorf("slot %q launched twice: %s and %s", k, other, in.ID)
		}
		slots[k] = in.ID
	}
	if len(slots) != asked || asked != 9 {
		t.Errorf("%d instances launched for a largest decision of %d; want 9 and 9", len(slots), asked)
	}
	if fake.Replays() == 0 {
		t.Error("no RunInstances was answered from its client token: the lag never made the controllers repeat a decision, so this test proved nothing")
	}
	t.Logf("seed %d: %d instances, %d RunInstances, %d answered from their client token", seed, len(slots), fake.Calls("RunInstances"), fake.Replays())
}

// TestStaleSlotTokenRelaunches: a slot whose instance was terminated long ago is
// launched again (its old token, replayed, returns the dead instance).
func TestStaleSlotTokenRelaunches(t *testing.T) {
	clock := newVirtualClock()
	fake := fakeec2.New(fakeec2.Options{Now: clock.Now})
	t.Cleanup(fake.Close)
	f, err := ec2fleet.New(client(fake.URL), ec2fleet.Options{LaunchTemplateID: "lt-0123456789", TagKey: "facefleet", TagValue: "app", Max: 3, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := f.Launch(ctx, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("Launch = %+v, %v", first, err)
	}
	// Launching again at once from the same view is a replay, not a new instance.
	again, err := f.Launch(ctx, 1)
	if err == nil && len(again) == 1 && again[0].ID == first[0].ID {
		t.Fatalf("second Launch(1) returned the first instance %s although the pool shows it: want slot 2", first[0].ID)
	}
	if err != nil || fake.Count("pending")+fake.Count("running") != 2 {
		t.Fatalf("second Launch(1) = %+v, %v; want a second instance in slot 2", again, err)
	}
	fake.Terminate(first[0].ID)
	clock.Advance(ec2fleet.DefaultReplayAfter + time.Minute)
	third, err := f.Launch(ctx, 1)
	if err != nil || len(third) != 1 || third[0].ID == first[0].ID {
		t.Fatalf("Launch(1) after slot 1's instance was terminated = %+v, %v; want a new instance", third, err)
	}
	if fake.Replays() != 1 {
		t.Fatalf("replays = %d; want slot 1's old token replayed once before the salted one", fake.Replays())
	}
}

// TestConformanceMoto runs the suite against moto's EC2 with IAM enforced, as
// the scaler: a user whose policies are template.yaml's ScalerFunction policies,
// for a fresh stack per subtest (its own pool tag and launch template).
func TestConformanceMoto(t *testing.T) {
	m := awstest.NeedMoto(t, moto)
	ctx := context.Background()
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := admin.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no AMI to launch: %v", err)
	}
	ami := aws.ToString(imgs.Images[0].ImageId)
	fleettest.Run(t, fleettest.Harness{
		Skip: map[string]string{
			"StopPendingIsWrongState":   "moto 5.2.1 has no pending phase (RunInstances answers running), checked on the fake EC2",
			"StartStoppingIsWrongState": "moto 5.2.1 has no stopping phase (StopInstances answers stopped), checked on the fake EC2",
		},
		New: func(t *testing.T, max int) fleet.Fleet {
			st := m.NewStack(awstest.Unique(t, "fl")[:15])
			lt, err := admin.EC2().CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
				LaunchTemplateName: aws.String(st.Name + "-app"),
				LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: ec2types.InstanceTypeT3Micro},
			})
			if err != nil {
				t.Fatal(err)
			}
			st.Refs["AppLaunchTemplate"] = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
			creds, err := m.TierUser(ctx, "scaler", st)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := m.ClientsFor(ctx, creds)
			if err != nil {
				t.Fatal(err)
			}
			// The pool tag is the template's (Mappings Tier.Tag.Key = stack name).
			f, err := ec2fleet.New(cl.EC2(), ec2fleet.Options{LaunchTemplateID: st.Refs["AppLaunchTemplate"],
				TagKey: "facefleet-app", TagValue: st.Name, Max: max})
			if err != nil {
				t.Fatal(err)
			}
			return f
		},
	})
}

// TestSkewedLaunchTimeIsNotAReplay: a fresh launch whose LaunchTime is far in
// the past (EC2's clock against ours) is pending, so it is taken, not
// mistaken for a stale replay and launched again.
func TestSkewedLaunchTimeIsNotAReplay(t *testing.T) {
	fake := fakeec2.New(fakeec2.Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }, PendingDelay: time.Minute})
	t.Cleanup(fake.Close)
	f, err := ec2fleet.New(client(fake.URL), ec2fleet.Options{LaunchTemplateID: "lt-0123456789", TagKey: "facefleet", TagValue: "app", Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Launch(context.Background(), 2)
	if err != nil || len(got) != 2 || fake.Calls("RunInstances") != 2 || fake.Count("pending") != 2 {
		t.Fatalf("Launch(2) = %+v, %v after %d RunInstances, %d pending; want 2 launches, once each", got, err, fake.Calls("RunInstances"), fake.Count("pending"))
	}
}
