package sim

import (
	"fmt"
	"sort"
	"time"

	"github.com/facefleet/facefleet/scaling"
)

// NameOracle is the clairvoyant reference policy.
const NameOracle = "oracle"

// maxPlanned bounds the oracle's O(n^2) plan; longer workloads fall back to
// stopping workers the moment their billed minute is used.
const maxPlanned = 50_000

// oracle knows every arrival and service time in advance, reads exact counts with
// no lag, and is evaluated at every arrival instant. It is the cheapest reactive
// schedule: it starts an instance only when a request has arrived and no instance
// is up, adds instances only when the next minute's arrivals alone are more work
// than one instance can do in its billed minute, and stops a worker exactly where
// a dynamic program over the arrivals says a stop-and-restart bills less than
// staying up (pending time is not billed, every start bills at least a minute).
// More instances never bill less for the same work under per-second billing with a
// minimum per start, so for workloads one instance can carry this is a lower bound
// on billed time for any scaler that does not start capacity before requests exist.
type oracle struct {
	cfg Config
	svc []time.Duration
	arr []time.Duration
	// newSeg[k]: arrival k is the first of a planned segment (a fresh start).
	newSeg []bool
	// onLambda[k]: arrival k is planned on an overflow invocation (sim/overflow.go).
	onLambda []bool
	done     int // arrivals before this are answered
	w        *world
}

func newOracle(cfg Config, wl Workload, svc []time.Duration) *oracle {
	o := &oracle{cfg: cfg, svc: svc, arr: wl.Arrivals}
	o.plan()
	return o
}

// plan splits the arrivals into single-instance segments of least total billed
// time. Segment i..j: started at arrival i, running P later, ready L after that,
// serving its arrivals first come first served; it bills from running until the
// later of its last answer and the billing minimum, and may end only if the next
// arrival comes after that (otherwise the instance, still up, serves it).
func (o *oracle) plan() {
	n := len(o.arr)
	o.newSeg = make([]bool, n)
	o.onLambda = make([]bool, n)
	if n > maxPlanned {
		for k := range o.newSeg {
			o.newSeg[k] = true
		}
		return
	}
	pend := max(o.cfg.Boot.Mean-o.cfg.Load.Mean, 0)
	cost := make([]time.Duration, n+1)
	next := make([]int, n+1)
	lam := make([]bool, n+1)
	for i := n - 1; i >= 0; i-- {
		runningAt := o.arr[i] + pend
		f := runningAt + o.cfg.Load.Mean
		best := time.Duration(-1)
		for j := i; j < n; j++ {
			f = max(f, o.arr[j]) + o.svc[j]
			end := max(f, runningAt+o.cfg.BillingMinimum)
			if j+1 < n && o.arr[j+1] < end {
				continue // still up when j+1 arrives: it cannot end here
			}
			if c := end - runningAt + cost[j+1]; best < 0 || c < best {
				best, next[i] = c, j+1
			}
		}
		if c, j, ok := o.lambdaSegment(i, cost); ok && (best < 0 || c < best) {
			best, next[i], lam[i] = c, j, true
		}
		cost[i] = best
	}
	for i := 0; i < n; i = next[i] {
		o.newSeg[i] = true
		for k := i; k < next[i]; k++ {
			o.onLambda[k] = lam[i]
		}
	}
}

// lambdaSegment is the cheapest way to serve arrivals i..j-1 on one overflow
// invocation and the rest by the plan: invoked at arrival i, cold unless an
// arrival came within the sandbox keep-warm time before (optimistic: a warm
// sandbox is assumed whenever one could exist), serving first come first served
// at the Lambda's per-image time, returning IdleWait after its last answer; it
// may end only where the next arrival comes after that, and never runs past the
// function timeout. Its cost is in EC2-equivalent billed time (the price ratio).
func (o *oracle) lambdaSegment(i int, cost []time.Duration) (best time.Duration, next int, ok bool) {
	oc := o.cfg.Overflow
	if oc.Concurrency <= 0 {
		return 0, 0, false
	}
	ratio := oc.gb() * oc.LambdaPerGBSecond / (oc.EC2PerHour / 3600)
	start := o.arr[i] + oc.InvokeDelay
	f := start
	if i == 0 || o.arr[i]-o.arr[i-1] > oc.KeepWarm {
		f += oc.scale(oc.ColdStart.Mean)
	}
	best = -1
	for j := i; j < len(o.arr); j++ {
		if j > i && o.arr[j] > f+oc.IdleWait {
			break // the invocation has returned by then
		}
		f = max(f, o.arr[j]) + oc.scale(o.svc[j])
		if f > start+oc.Timeout {
			break
		}
		end := f + oc.IdleWait
		if j+1 < len(o.arr) && o.arr[j+1] <= end {
			continue // still polling when j+1 arrives: it takes it
		}
		if c := time.Duration(float64(end-start)*ratio) + cost[j+1]; best < 0 || c < best {
			best, next = c, j+1
		}
	}
	return best, next, best >= 0
}

func (*oracle) Name() string { return NameOracle }

// Decide implements scaling.Policy.
func (o *oracle) Decide(ob scaling.Observation) scaling.Decision {
	now := ob.Now.Sub(o.w.base)
	capacity := ob.Pending + ob.Running
	if ob.Visible+ob.InFlight == 0 {
		return scaling.Decision{Desired: capacity, Reason: "oracle: nothing waiting"}
	}
	// Arrived and unanswered requests: those planned on the overflow get one
	// invocation when none runs; EC2 starts only for those planned on EC2.
	for o.done < len(o.arr) && o.w.msgs[o.done].state == msgDone {
		o.done++
	}
	ec2Work, lamWork := false, false
	for k := o.done; k < len(o.arr) && o.arr[k] <= now; k++ {
		if o.w.msgs[k].state != msgDone {
			if o.onLambda[k] {
				lamWork = true
			} else {
				ec2Work = true
			}
		}
	}
	var ov int
	if lamWork && ob.Overflow == 0 && ob.OverflowMax > 0 {
		ov = 1
	}
	if !ec2Work && capacity == 0 {
		return scaling.Decision{Overflow: ov, Reason: "oracle: planned on the overflow"}
	}
	var work time.Duration
	lo := sort.Search(len(o.arr), func(i int) bool { return o.arr[i] > now })
	for i := lo; i < len(o.arr) && o.arr[i] <= now+o.cfg.BillingMinimum; i++ {
		work += o.svc[i]
	}
	per := max(o.cfg.BillingMinimum-o.cfg.Load.Mean, time.Second)
	desired := min(max(int((work+per-1)/per), 1), ob.Max)
	d := scaling.Decision{Desired: desired, Overflow: ov, Reason: fmt.Sprintf("oracle: next minute brings %v of work -> %d", work.Round(time.Millisecond), desired)}
	if desired > capacity {
		d.Start = desired - capacity
	}
	return d
}

// keepIdle says whether an idle worker whose billed minute is used should stay up:
// only the lowest such worker, and only when the next arrival belongs to the
// segment it is serving.
func (o *oracle) keepIdle(in *instance) bool {
	now := o.w.now
	k := sort.Search(len(o.arr), func(i int) bool { return o.arr[i] > now })
	if k == len(o.arr) || o.newSeg[k] {
		return false
	}
	for _, other := range o.w.insts {
		if other == in {
			return true
		}
		if other.state == in.state && other.ready && other.busy < 0 {
			return false // a lower idle worker stays for it
		}
	}
	return false
}

// nextArrival is the next arrival after now (callers checked there is one).
func (o *oracle) nextArrival() time.Duration {
	now := o.w.now
	return o.arr[sort.Search(len(o.arr), func(i int) bool { return o.arr[i] > now })]
}
