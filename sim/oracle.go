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
	w      *world
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
	if n > maxPlanned {
		for k := range o.newSeg {
			o.newSeg[k] = true
		}
		return
	}
	pend := max(o.cfg.Boot.Mean-o.cfg.Load.Mean, 0)
	cost := make([]time.Duration, n+1)
	next := make([]int, n+1)
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
		cost[i] = best
	}
	for i := 0; i < n; i = next[i] {
		o.newSeg[i] = true
	}
}

func (*oracle) Name() string { return NameOracle }

// Decide implements scaling.Policy.
func (o *oracle) Decide(ob scaling.Observation) scaling.Decision {
	now := ob.Now.Sub(o.w.base)
	capacity := ob.Pending + ob.Running
	if ob.Visible+ob.InFlight == 0 {
		return scaling.Decision{Desired: capacity, Reason: "oracle: nothing waiting"}
	}
	var work time.Duration
	lo := sort.Search(len(o.arr), func(i int) bool { return o.arr[i] > now })
	for i := lo; i < len(o.arr) && o.arr[i] <= now+o.cfg.BillingMinimum; i++ {
		work += o.svc[i]
	}
	per := max(o.cfg.BillingMinimum-o.cfg.Load.Mean, time.Second)
	desired := min(max(int((work+per-1)/per), 1), ob.Max)
	d := scaling.Decision{Desired: desired, Reason: fmt.Sprintf("oracle: next minute brings %v of work -> %d", work.Round(time.Millisecond), desired)}
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
