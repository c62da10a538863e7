package overflow_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/internal/testenv"
)

// TestOverflowHandsOverToEC2: from a cold fleet, uploads arrive steadily for
// longer than the policy's Sustain (20 s), so the scaler starts an EC2
// instance while the overflow answers; a "hypervisor" starts a real `facefleet
// apptier` (as the app tier's IAM user) for the running instance after a boot
// delay, the overflow hands over once the instance has run for its warm-up,
// and when the worker exits idle the instance is stopped (the unit's
// poweroff). The first answers come from overflow workers before the first
// EC2 worker is ready; every upload is answered right, none twice; the queues
// end empty and the fleet back at zero.
//
// It takes about a minute, so it runs under `make e2e` and `make
// test-overflow` (FACEFLEET_OVERFLOW_HANDOVER=1), not in every `go test`.
func TestOverflowHandsOverToEC2(t *testing.T) {
	if os.Getenv("FACEFLEET_OVERFLOW_HANDOVER") != "1" {
		t.Skip("the hand-over e2e takes a minute: make e2e or make test-overflow runs it (FACEFLEET_OVERFLOW_HANDOVER=1)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := newRig(t, ctx)
	const boot = 8 * time.Second // running -> the apptier process starts (then it loads the engine)
	// The overflow hands over once the instance has run about as long as its
	// worker needs to be ready (the deployment's knob for its boot).
	r.env["FACEFLEET_OVERFLOW_EC2_WARMUP"] = "11s"
	c := startChain(t, ctx, r)
	tagKey := c.env[scalerfn.EnvTagKey]
	appCreds, err := r.m.TierUser(ctx, "app", r.st)
	if err != nil {
		t.Fatal(err)
	}
	bin := testenv.Facefleet(t)
	appEnv := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, r.m.EnvFor(appCreds)...)
	appEnv = append(appEnv, "FACEFLEET_S3_PATH_STYLE=1", "FACEFLEET_MODELS="+testenv.Models(t), "FACEFLEET_ORT_LIB="+testenv.ORTLib(t),
		"FACEFLEET_REQUEST_QUEUE_URL="+r.reqQ.URL, "FACEFLEET_RESPONSE_QUEUE_URL="+r.respQ.URL,
		"FACEFLEET_INPUT_BUCKET="+r.st.BucketName("InputBucket"), "FACEFLEET_OUTPUT_BUCKET="+r.st.BucketName("OutputBucket"))

	// The hypervisor.
	type vm struct {
		since time.Time
		cmd   *exec.Cmd
		done  chan error
		log   *os.File
	}
	var (
		hvMu  sync.Mutex
		vms   = map[string]*vm{}
		boots int
	)
	hvCtx, stopHV := context.WithCancel(ctx)
	hvDone := make(chan struct{})
	go func() {
		defer close(hvDone)
		for hvCtx.Err() == nil {
			out, err := r.admin.EC2().DescribeInstances(hvCtx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
				{Name: aws.String("tag:" + tagKey), Values: []string{r.st.Name}}}})
			if err == nil {
				for _, res := range out.Reservations {
					for _, in := range res.Instances {
						id, running := aws.ToString(in.InstanceId), in.State.Name == ec2types.InstanceStateNameRunning
						hvMu.Lock()
						v := vms[id]
						switch {
						case running && v == nil:
							vms[id] = &vm{since: time.Now()}
						case running && v.cmd == nil && time.Since(v.since) >= boot:
							f, _ := os.Create(filepath.Join(t.TempDir(), id+".log"))
							cmd := exec.Command(bin, "apptier", "-instance-id", id, "-self-stop", "none", "-idle-timeout", "3s",
								"-min-lifetime", "0s", "-worker-wait", "1s", "-log-level", "warn")
							cmd.Env, cmd.Stdout, cmd.Stderr = appEnv, f, f
							cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
							if err := cmd.Start(); err != nil {
								t.Errorf("start apptier: %v", err)
								break
							}
							boots++
							v.cmd, v.log, v.done = cmd, f, make(chan error, 1)
							go func() { v.done <- cmd.Wait() }()
						case running && v.cmd != nil:
							select {
							case err := <-v.done:
								// The worker exited idle: the unit powers the instance off.
								if err != nil {
									t.Errorf("apptier %s exited: %v", id, err)
								}
								v.log.Close()
								delete(vms, id)
								if _, err := r.admin.EC2().StopInstances(hvCtx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil && hvCtx.Err() == nil {
									t.Errorf("poweroff %s: %v", id, err)
								}
							default:
							}
						case !running && v != nil:
							if v.cmd != nil {
								_ = v.cmd.Process.Signal(syscall.SIGTERM)
								<-v.done
								v.log.Close()
							}
							delete(vms, id)
						}
						hvMu.Unlock()
					}
				}
			}
			select {
			case <-hvCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	defer func() {
		stopHV()
		<-hvDone
		hvMu.Lock()
		defer hvMu.Unlock()
		for _, v := range vms {
			if v.cmd != nil {
				_ = v.cmd.Process.Kill()
				<-v.done
			}
		}
	}()

	// Steady uploads, 3 a second for 45 s, from a cold fleet.
	const rate, span = 3, 45 * time.Second
	want := map[string]string{}
	var wantMu sync.Mutex
	start := time.Now()
	c.run(t, ctx)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for i := 0; time.Since(start) < span; i++ {
			p := r.people[i%len(r.people)]
			k := 1 + (i/len(r.people))%(len(p.Photos)-1)
			id := fmt.Sprintf("h%03d", i)
			wantMu.Lock()
			want[id] = p.Name
			wantMu.Unlock()
			r.send(t, ctx, id, fmt.Sprintf("handover_%03d_%s", i, p.Files[k]), p.Photos[k])
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	got := map[string][]protocol.Response{}
	at := map[string]time.Duration{} // first answer's time by id
	firstFrom := map[bool]time.Duration{}
	collect := func() {
		before := map[string]int{}
		for id, rs := range got {
			before[id] = len(rs)
		}
		r.collect(t, ctx, time.Second, got)
		now := time.Since(start)
		for id, rs := range got {
			if before[id] == 0 && len(rs) > 0 {
				at[id] = now
				ov := strings.HasPrefix(rs[0].Worker, "overflow/")
				if _, ok := firstFrom[ov]; !ok {
					firstFrom[ov] = now
				}
			}
		}
	}
	for done := false; time.Since(start) < 5*time.Minute; {
		select {
		case <-sent:
			done = true
		default:
		}
		wantMu.Lock()
		n := len(want)
		wantMu.Unlock()
		if done && len(got) >= n {
			break
		}
		collect()
	}
	// The fleet returns to zero: the worker exits idle, its instance stops.
	back := time.Now()
	for time.Since(back) < 2*time.Minute {
		n := r.instances(t, ctx, tagKey)
		if n[ec2types.InstanceStateNamePending]+n[ec2types.InstanceStateNameRunning] == 0 {
			break
		}
		collect()
	}
	backIn := time.Since(back)
	c.stop()
	results := c.checkFront(t)
	collect()

	fromOverflow, fromEC2 := 0, 0
	for id, name := range want {
		rs := got[id]
		if len(rs) != 1 {
			t.Errorf("%s: %d answers, want 1", id, len(rs))
			continue
		}
		if rs[0].Error != nil || rs[0].Name != name {
			t.Errorf("%s: name %q error %v; want %q", id, rs[0].Name, rs[0].Error, name)
		}
		if strings.HasPrefix(rs[0].Worker, "overflow/") {
			fromOverflow++
		} else {
			fromEC2++
		}
	}
	for _, q := range []string{r.reqQ.URL, r.reqQ.DLQURL} {
		if q == r.reqQ.URL {
			if n, err := r.requests.Counts(ctx); err != nil || n.Visible+n.InFlight != 0 {
				t.Errorf("request queue %+v %v; want empty", n, err)
			}
		} else if n, err := r.dlq.Counts(ctx); err != nil || n.Visible+n.InFlight != 0 {
			t.Errorf("dead-letter queue %+v %v; want empty", n, err)
		}
	}
	n := r.instances(t, ctx, tagKey)
	ovFirst, okOv := firstFrom[true]
	ec2First, okEC2 := firstFrom[false]
	switch {
	case !okOv || !okEC2:
		t.Errorf("answers from overflow %d, from EC2 %d; want both (the overflow bridges the boot, then EC2 takes over)", fromOverflow, fromEC2)
	case ovFirst >= ec2First:
		t.Errorf("first overflow answer at %v, first EC2 answer at %v; want the overflow first", ovFirst, ec2First)
	}
	if c.started.Load() < 1 || n[ec2types.InstanceStateNamePending]+n[ec2types.InstanceStateNameRunning] != 0 {
		t.Errorf("scaler started %d instances; fleet at the end %v: want >= 1 started and none pending or running", c.started.Load(), n)
	}
	stops := map[string]int{}
	for _, res := range results {
		stops[res.Stop]++
	}
	fmt.Printf("overflow-handover: %d uploads over %v from a cold fleet: %d/%d answered right, none twice (%d by overflow, %d by EC2); first overflow answer %.1f s, first EC2 answer %.1f s; %d overflow invokes (stops %v), %d EC2 start(s), %d apptier boot(s); queues empty; fleet back to 0 %.0f s after the last answer\n",
		len(want), span, len(got), len(want), fromOverflow, fromEC2, ovFirst.Seconds(), ec2First.Seconds(), c.front.accepted.Load(), stops, c.started.Load(), boots, backIn.Seconds())
}
