// Package sim is a discrete-event simulator of the app tier's autoscaling. A virtual
// clock drives the real scaling.Controller and policies through a simulated EC2
// fleet (fleet.Fleet) and a simulated SQS queue (approximate, lagging counts), with
// workers that long-poll, process, and stop themselves when idle, EC2 start, stop
// and launch delays, per-second billing with a minimum per start, and the trigger
// cadences the policies really get (EventBridge schedule, CloudWatch alarm,
// in-invocation loop, web-tier nudge, KEDA polling). Runs are deterministic for a
// seed: every random draw comes from seeded PCG streams and ties in the event
// queue break by insertion order.
package sim

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/scaling"
)

// Config is the simulated world. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// Max caps pending+running instances (the controller's Max).
	Max int `json:"max"`
	// Pool is how many stopped instances exist at t=0 (starting one is faster than
	// launching); -1 means none. Default: Max.
	Pool int `json:"pool"`
	// Boot is start-to-ready for a stopped instance: pending, then running, then
	// the worker loads its models (Load) and takes work.
	Boot Dist `json:"boot"`
	// Load is the running-to-ready part of Boot (billed: the instance is running).
	Load Dist `json:"load"`
	// LaunchExtra is how much longer a fresh launch takes than a start.
	LaunchExtra time.Duration `json:"launch_extra"`
	// StopDelay is stopping-to-stopped; a stopping instance cannot be started.
	StopDelay Dist `json:"stop_delay"`
	// Service is the processing time per image on one worker.
	Service Dist `json:"service"`
	// IdleTimeout: a worker stops itself after this long without work...
	IdleTimeout time.Duration `json:"idle_timeout"`
	// ...but not before its start's billing minimum is used up (already paid),
	// unless IdleIgnoresBilling.
	IdleIgnoresBilling bool `json:"idle_ignores_billing"`
	// BillingMinimum is the least billed per start (EC2: 60 s, then per second).
	BillingMinimum time.Duration `json:"billing_minimum"`
	// Visibility is the queue's visibility timeout: a message held by a worker that
	// is stopped busy comes back this long after it was received.
	Visibility time.Duration `json:"visibility"`
	// CountLag is how stale SQS's approximate counts are.
	CountLag time.Duration `json:"count_lag"`
	// BlipRate is the chance that a Counts call on a truly empty queue reports one
	// visible message (SQS's approximate counts do this); -1 disables. Default 0.02.
	BlipRate float64 `json:"blip_rate"`
	// Phase is when the first 1-minute schedule fires after t=0.
	Phase time.Duration `json:"phase"`
	// Loop is the re-evaluation period inside one scaler invocation, which lasts
	// Invocation and ends early once queue and fleet are both empty.
	Loop       time.Duration `json:"loop"`
	Invocation time.Duration `json:"invocation"`
	// NudgeDelay is from a request arriving with no worker up to the nudged step.
	NudgeDelay time.Duration `json:"nudge_delay"`
	// MetricDelay is CloudWatch's lag for the alarm's SQS metric.
	MetricDelay time.Duration `json:"metric_delay"`
	// Settle: a run ends this long after the last answer once nothing is up.
	Settle time.Duration `json:"settle"`
	// Horizon: hard stop this long after the last arrival.
	Horizon time.Duration `json:"horizon"`
	// Capacity caps how many instances the provider will ever hold (the pool plus
	// launches); a launch beyond it fails with fleet.ErrCapacity. 0: unlimited.
	Capacity int `json:"capacity"`
	// Retire gives the simulated fleet the scaling.Retirer capability (workers
	// stop after their current job when asked). The real adapters lack it today.
	Retire bool `json:"retire"`
	// Seed makes the run reproducible.
	Seed uint64 `json:"seed"`
	// Facefleet sets our policy's knobs (zero fields: scaling's defaults).
	Facefleet scaling.FacefleetOptions `json:"facefleet"`
}

// DefaultConfig is AWS as the project measured or documented it.
func DefaultConfig() Config {
	return Config{
		Max:            20,
		Boot:           Dist{Mean: 20 * time.Second, Jitter: 1 * time.Second},
		Load:           Fixed(2 * time.Second),
		LaunchExtra:    5 * time.Second,
		StopDelay:      Dist{Mean: 10 * time.Second, Jitter: 2 * time.Second},
		Service:        Dist{Mean: 60 * time.Millisecond, Jitter: 15 * time.Millisecond},
		IdleTimeout:    10 * time.Second,
		BillingMinimum: 60 * time.Second,
		Visibility:     30 * time.Second,
		CountLag:       1 * time.Second,
		BlipRate:       0.02,
		Phase:          30 * time.Second,
		Loop:           5 * time.Second,
		Invocation:     60 * time.Second,
		NudgeDelay:     500 * time.Millisecond,
		MetricDelay:    60 * time.Second,
		Settle:         5 * time.Minute,
		Horizon:        2 * time.Hour,
		Seed:           1,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Max <= 0 {
		c.Max = d.Max
	}
	if c.Pool == 0 {
		c.Pool = c.Max
	}
	if c.Pool < 0 {
		c.Pool = 0
	}
	if c.Boot == (Dist{}) {
		c.Boot = d.Boot
	}
	if c.Load == (Dist{}) {
		c.Load = d.Load
	}
	if c.StopDelay == (Dist{}) {
		c.StopDelay = d.StopDelay
	}
	if c.Service == (Dist{}) {
		c.Service = d.Service
	}
	if c.IdleTimeout < 0 {
		c.IdleTimeout = 0
	} else if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.BillingMinimum <= 0 {
		c.BillingMinimum = d.BillingMinimum
	}
	if c.Visibility <= 0 {
		c.Visibility = d.Visibility
	}
	if c.CountLag < 0 {
		c.CountLag = 0
	}
	if c.BlipRate == 0 {
		c.BlipRate = d.BlipRate
	}
	if c.BlipRate < 0 {
		c.BlipRate = 0
	}
	if c.Loop <= 0 {
		c.Loop = d.Loop
	}
	if c.Invocation <= 0 {
		c.Invocation = d.Invocation
	}
	if c.NudgeDelay < 0 {
		c.NudgeDelay = 0
	}
	if c.MetricDelay <= 0 {
		c.MetricDelay = d.MetricDelay
	}
	if c.Settle <= 0 {
		c.Settle = d.Settle
	}
	if c.Horizon <= 0 {
		c.Horizon = d.Horizon
	}
	return c
}

// Validate rejects configurations the simulation cannot honour.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Max > 10_000:
		return fmt.Errorf("sim: max %d instances is beyond what the simulator models (<= 10000)", c.Max)
	case c.Load.Mean > c.Boot.Mean:
		return fmt.Errorf("sim: load %v is part of boot %v and cannot exceed it", c.Load, c.Boot)
	case c.Service.Mean <= 0:
		return errors.New("sim: service time must be positive")
	case c.Service.Mean+c.Service.Jitter >= c.Visibility:
		return fmt.Errorf("sim: service time %v must stay under the visibility timeout %v (the simulator does not model redelivery of a message still being processed)", c.Service, c.Visibility)
	case c.Phase < 0:
		return errors.New("sim: phase must be >= 0")
	}
	return nil
}

// Triggers are the cadences a policy is evaluated at; they model where it runs.
type Triggers struct {
	Schedule    time.Duration // EventBridge-like period (0: none), first at Config.Phase
	Poll        time.Duration // a continuously running poller (KEDA, the oracle)
	Loop        bool          // re-evaluate every Config.Loop inside an invocation
	Nudge       bool          // the web tier nudges when a request finds no worker
	Alarm       bool          // a CloudWatch alarm on visible > 0 invokes on OK->ALARM
	OnArrival   bool          // evaluate at every arrival instant (the oracle)
	ExactCounts bool          // read true counts, no lag, no blips (the oracle)
	// IdleAtOnce makes workers stop the moment they are idle with their billed
	// minute used, instead of after Config.IdleTimeout (the oracle).
	IdleAtOnce bool
}

// PolicyNames are the policies the simulator knows, in table order.
func PolicyNames() []string {
	return []string{scaling.NameSeed, scaling.NameTargetTracking, scaling.NameKEDA, scaling.NameFacefleet, NameOracle}
}

// ErrUnknownPolicy is returned for a policy name the simulator does not know.
var ErrUnknownPolicy = errors.New("sim: unknown policy")

// setup returns a fresh policy and its triggers.
func setup(name string, cfg Config, w Workload, svc []time.Duration) (scaling.Policy, Triggers, error) {
	switch name {
	case scaling.NameSeed:
		// The seed's scaler ran once a minute from EventBridge.
		return scaling.NewSeed(), Triggers{Schedule: time.Minute}, nil
	case scaling.NameTargetTracking:
		// Application Auto Scaling evaluates once a minute on lagging metrics.
		return scaling.NewTargetTracking(scaling.TargetTrackingOptions{MetricDelay: cfg.MetricDelay}), Triggers{Schedule: time.Minute}, nil
	case scaling.NameKEDA:
		return scaling.NewKEDA(scaling.KEDAOptions{}), Triggers{Poll: 30 * time.Second}, nil
	case scaling.NameFacefleet:
		opt := cfg.Facefleet
		if opt.ServiceTime == 0 {
			opt.ServiceTime = cfg.Service.Mean
		}
		return scaling.NewFacefleet(opt), Triggers{Schedule: time.Minute, Loop: true, Nudge: true, Alarm: true}, nil
	case NameOracle:
		return newOracle(cfg, w, svc), Triggers{OnArrival: true, Poll: time.Second, ExactCounts: true, IdleAtOnce: true}, nil
	}
	return nil, Triggers{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownPolicy, name, PolicyNames())
}

// ---------------------------------------------------------------------------
// the world

type msgState uint8

const (
	msgNotYet msgState = iota
	msgVisible
	msgInFlight
	msgDone
)

type message struct {
	arrival   time.Duration
	svc       time.Duration
	state     msgState
	receipt   int
	answerAt  time.Duration
	recvAt    time.Duration
	receivedN int
}

type instance struct {
	id           string
	state        fleet.State
	since        time.Duration
	epoch        int // bumped on every state change; stale events compare it
	runningSince time.Duration
	ready        bool
	busy         int // message index, -1 when idle
	retiring     bool
	idleSince    time.Duration // when it last became idle: long polls favour the longest waiting
	idleArmed    bool
	idleEpoch    int
}

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type countSample struct {
	at                time.Duration
	visible, inFlight int
}

// Point is one sample of the plotted timeline.
type Point struct {
	T        float64 `json:"t"`
	Backlog  int     `json:"backlog"` // visible + in flight (true counts)
	Capacity int     `json:"capacity"`
	Running  int     `json:"running"`
}

// TraceEvent is one instance transition or answer, for hand-checked tests.
type TraceEvent struct {
	At   time.Duration
	What string // "pending", "running", "ready", "stopping", "stopped", "answer"
	ID   string // instance ID, or message index for answers
}

type world struct {
	cfg  Config
	trig Triggers
	base time.Time
	now  time.Duration
	seq  uint64
	evq  eventQueue

	delays *rand.Rand
	blips  *rand.Rand

	msgs    []message
	visible []int // FIFO of message indices; head at vhead
	vhead   int
	nVis    int
	nFlight int
	hist    []countSample

	insts  []*instance
	nextID int

	ctrl   *scaling.Controller
	oracle *oracle

	// metrics
	answered    int
	lastAnswer  time.Duration
	firstAnswer time.Duration
	billed      time.Duration
	starts      int
	stops       int
	busyStops   int
	flaps       int
	stopTimes   []time.Duration // unmatched stops, for flap detection
	lastZero    time.Duration   // last time the true backlog was zero
	lastCapChg  time.Duration
	zeroAt      time.Duration // when capacity last became zero
	stepErrors  int
	timeline    []Point
	trace       []TraceEvent
	loopUntil   time.Duration
	loopOn      bool
	nudgeQueued bool
	alarmOn     bool
	lastArrival time.Duration
	done        bool
}

func (w *world) at(t time.Duration, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	heap.Push(&w.evq, &event{at: t, seq: w.seq, fn: fn})
}

func (w *world) clock() time.Time { return w.base.Add(w.now) }

func (w *world) traceAdd(what, id string) {
	w.trace = append(w.trace, TraceEvent{At: w.now, What: what, ID: id})
}

func (w *world) capacity() (pending, running int) {
	for _, in := range w.insts {
		switch in.state {
		case fleet.Pending:
			pending++
		case fleet.Running:
			running++
		}
	}
	return
}

// countsChanged records the true counts (for lagging reads, plots and flaps).
func (w *world) countsChanged() {
	w.hist = append(w.hist, countSample{w.now, w.nVis, w.nFlight})
	if w.nVis+w.nFlight == 0 {
		w.lastZero = w.now
	}
	w.sample()
}

func (w *world) sample() {
	p, r := w.capacity()
	pt := Point{T: w.now.Seconds(), Backlog: w.nVis + w.nFlight, Capacity: p + r, Running: r}
	if n := len(w.timeline); n > 0 && w.timeline[n-1].T == pt.T {
		w.timeline[n-1] = pt
		return
	}
	w.timeline = append(w.timeline, pt)
}

func (w *world) countsAt(t time.Duration) (int, int) {
	i := sort.Search(len(w.hist), func(i int) bool { return w.hist[i].at > t })
	if i == 0 {
		return 0, 0
	}
	s := w.hist[i-1]
	return s.visible, s.inFlight
}

// ---------------------------------------------------------------------------
// queue and workers

func (w *world) arrive(i int) {
	w.msgs[i].state = msgVisible
	w.visible = append(w.visible, i)
	w.nVis++
	w.countsChanged()
	w.dispatch()
}

// dispatch hands visible messages to ready idle workers, the longest-waiting
// poller first (SQS long polls spread work over all pollers, so a surplus worker
// rarely sits idle long enough to time out), and arms idle timers on workers left
// idle.
func (w *world) dispatch() {
	for w.nVis > 0 {
		var pick *instance
		for _, in := range w.insts {
			if in.state == fleet.Running && in.ready && in.busy < 0 && !in.retiring &&
				(pick == nil || in.idleSince < pick.idleSince) {
				pick = in
			}
		}
		if pick == nil {
			break
		}
		if w.receive(pick); pick.busy < 0 {
			break // nothing receivable after all; never spin
		}
	}
	for _, in := range w.insts {
		if in.state == fleet.Running && in.ready && in.busy < 0 && !in.retiring && !in.idleArmed {
			w.armIdle(in)
		}
	}
}

func (w *world) receive(in *instance) {
	if w.vhead > 4096 && w.vhead*2 > len(w.visible) { // compact the FIFO
		w.visible = append(w.visible[:0:0], w.visible[w.vhead:]...)
		w.vhead = 0
	}
	for w.vhead < len(w.visible) {
		i := w.visible[w.vhead]
		w.vhead++
		m := &w.msgs[i]
		if m.state != msgVisible {
			continue
		}
		m.state = msgInFlight
		m.receipt++
		m.receivedN++
		m.recvAt = w.now
		w.nVis--
		w.nFlight++
		in.busy = i
		in.idleArmed = false
		w.countsChanged()
		epoch := in.epoch
		w.at(w.now+m.svc, func() { w.finish(in, epoch, i) })
		return
	}
}

func (w *world) finish(in *instance, epoch, i int) {
	if in.epoch != epoch || in.busy != i {
		return // stopped mid-job: the message comes back after its visibility timeout
	}
	m := &w.msgs[i]
	m.state = msgDone
	m.answerAt = w.now
	w.nFlight--
	in.busy = -1
	in.idleSince = w.now
	if w.answered == 0 {
		w.firstAnswer = w.now
	}
	w.answered++
	w.lastAnswer = w.now
	w.traceAdd("answer", fmt.Sprint(i))
	w.countsChanged()
	if in.retiring {
		w.stop(in, false) // retired: stop after the current job, never during it
	}
	w.dispatch()
}

func (w *world) armIdle(in *instance) {
	in.idleArmed = true
	in.idleEpoch++
	ie, epoch := in.idleEpoch, in.epoch
	stopAt := w.now + w.cfg.IdleTimeout
	if w.trig.IdleAtOnce {
		stopAt = w.now
	}
	if !w.cfg.IdleIgnoresBilling {
		stopAt = max(stopAt, in.runningSince+w.cfg.BillingMinimum)
	}
	w.at(stopAt, func() {
		if in.epoch != epoch || in.idleEpoch != ie || in.busy >= 0 || !in.idleArmed {
			return
		}
		if w.oracle != nil && w.oracle.keepIdle(in) {
			// Clairvoyant: the plan keeps this worker for the next arrival.
			in.idleArmed = false
			w.at(w.oracle.nextArrival(), func() {
				if in.epoch == epoch && in.busy < 0 && !in.idleArmed {
					w.armIdle(in)
				}
			})
			return
		}
		w.stop(in, false)
	})
}

// ---------------------------------------------------------------------------
// instances

func (w *world) setState(in *instance, s fleet.State) {
	in.state = s
	in.since = w.now
	in.epoch++
	w.lastCapChg = w.now
	w.traceAdd(string(s), in.id)
	w.sample()
}

func (w *world) bringUp(in *instance, extra time.Duration) {
	in.retiring = false
	w.setState(in, fleet.Pending)
	w.starts++
	// A flap: capacity stopped less than a minute ago while the backlog never
	// emptied is being started again.
	for k := len(w.stopTimes) - 1; k >= 0; k-- {
		t := w.stopTimes[k]
		if w.now-t <= time.Minute && w.lastZero < t && w.nVis+w.nFlight > 0 {
			w.flaps++
			w.stopTimes = append(w.stopTimes[:k], w.stopTimes[k+1:]...)
			break
		}
	}
	epoch := in.epoch
	load := w.cfg.Load.Sample(w.delays)
	pend := max(w.cfg.Boot.Sample(w.delays)-w.cfg.Load.Mean, 0) + extra
	w.at(w.now+pend, func() {
		if in.epoch != epoch {
			return
		}
		w.setState(in, fleet.Running)
		in.runningSince = w.now
		e2 := in.epoch
		w.at(w.now+load, func() {
			if in.epoch != e2 {
				return
			}
			in.ready = true
			in.idleSince = w.now
			w.traceAdd("ready", in.id)
			w.dispatch()
		})
	})
}

func (w *world) stop(in *instance, byController bool) {
	if in.state == fleet.Running {
		w.billed += max(w.now-in.runningSince, w.cfg.BillingMinimum)
		if in.busy >= 0 {
			if byController {
				w.busyStops++
			}
			i := in.busy
			receipt := w.msgs[i].receipt
			w.at(w.msgs[i].recvAt+w.cfg.Visibility, func() {
				m := &w.msgs[i]
				if m.state == msgInFlight && m.receipt == receipt {
					m.state = msgVisible
					w.nFlight--
					w.nVis++
					w.visible = append(w.visible, i)
					w.countsChanged()
					w.dispatch()
				}
			})
		}
	}
	in.busy = -1
	in.ready = false
	in.idleArmed = false
	w.setState(in, fleet.Stopping)
	w.stops++
	if w.nVis+w.nFlight > 0 { // only a stop while work waits can start a flap
		keep := w.stopTimes[:0]
		for _, t := range w.stopTimes {
			if w.now-t <= time.Minute {
				keep = append(keep, t)
			}
		}
		w.stopTimes = append(keep, w.now)
	}
	epoch := in.epoch
	w.at(w.now+w.cfg.StopDelay.Sample(w.delays), func() {
		if in.epoch == epoch {
			w.setState(in, fleet.Stopped)
		}
	})
	if p, r := w.capacity(); p+r == 0 {
		w.zeroAt = w.now
	}
}

// ---------------------------------------------------------------------------
// the ports the controller sees

type simFleet struct{ w *world }

func (f simFleet) List(ctx context.Context) ([]fleet.Instance, error) {
	out := make([]fleet.Instance, 0, len(f.w.insts))
	for _, in := range f.w.insts {
		out = append(out, fleet.Instance{ID: in.id, State: in.state, Since: f.w.base.Add(in.since)})
	}
	return out, ctx.Err()
}

func (f simFleet) find(id string) (*instance, error) {
	for _, in := range f.w.insts {
		if in.id == id {
			return in, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", fleet.ErrNotFound, id)
}

// pick finds every id and checks it is in one of the allowed states before any is
// acted on: EC2 acts on all or none.
func (f simFleet) pick(ids []string, allowed ...fleet.State) ([]*instance, error) {
	ins := make([]*instance, 0, len(ids))
	for _, id := range ids {
		in, err := f.find(id)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(allowed, in.state) {
			return nil, fmt.Errorf("%w: %s is %s", fleet.ErrIncorrectState, id, in.state)
		}
		ins = append(ins, in)
	}
	return ins, nil
}

func (f simFleet) Start(ctx context.Context, ids ...string) error {
	// As in EC2: starting a pending or running instance is an accepted no-op.
	ins, err := f.pick(ids, fleet.Stopped, fleet.Pending, fleet.Running)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.state == fleet.Stopped {
			f.w.bringUp(in, 0)
		}
	}
	return ctx.Err()
}

func (f simFleet) Stop(ctx context.Context, ids ...string) error {
	// As in EC2: a pending instance cannot be stopped (IncorrectInstanceState);
	// stopping a stopping or stopped one is an accepted no-op.
	ins, err := f.pick(ids, fleet.Running, fleet.Stopping, fleet.Stopped)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.state == fleet.Running {
			f.w.stop(in, true)
		}
	}
	return ctx.Err()
}

// retirer is the simulated fleet with the scaling.Retirer capability.
type retirer struct{ simFleet }

func (f retirer) Retire(ctx context.Context, ids ...string) error {
	ins, err := f.pick(ids, fleet.Running, fleet.Pending)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.retiring {
			continue
		}
		in.retiring = true
		if in.busy < 0 {
			f.w.stop(in, false)
		}
	}
	return ctx.Err()
}

func (f simFleet) Launch(ctx context.Context, n int) ([]fleet.Instance, error) {
	if n < 0 {
		return nil, fmt.Errorf("sim: launch %d instances: count must be >= 0", n)
	}
	out := make([]fleet.Instance, 0, n)
	for range n {
		if c := f.w.cfg.Capacity; c > 0 && len(f.w.insts) >= c {
			return out, fmt.Errorf("sim: launch: %d instances held: %w", c, fleet.ErrCapacity)
		}
		in := f.w.newInstance()
		f.w.bringUp(in, f.w.cfg.LaunchExtra)
		out = append(out, fleet.Instance{ID: in.id, State: in.state, Since: f.w.base.Add(in.since)})
	}
	return out, ctx.Err()
}

func (w *world) newInstance() *instance {
	w.nextID++
	in := &instance{id: fmt.Sprintf("i-%04d", w.nextID), state: fleet.Stopped, busy: -1}
	w.insts = append(w.insts, in)
	return in
}

type simQueue struct {
	w     *world
	exact bool
}

func (q simQueue) Counts(ctx context.Context) (queue.Counts, error) {
	if q.exact {
		return queue.Counts{Visible: q.w.nVis, InFlight: q.w.nFlight}, ctx.Err()
	}
	v, f := q.w.countsAt(q.w.now - q.w.cfg.CountLag)
	if v+f == 0 && q.w.cfg.BlipRate > 0 && q.w.blips.Float64() < q.w.cfg.BlipRate {
		v = 1
	}
	return queue.Counts{Visible: v, InFlight: f}, ctx.Err()
}

// ---------------------------------------------------------------------------
// triggers

func (w *world) step(ctx context.Context, trigger string, nudge bool) scaling.Decision {
	d, err := w.ctrl.StepTrigger(ctx, w.clock(), trigger, nudge)
	if err != nil {
		w.stepErrors++
	}
	return d
}

// invoke is one scaler invocation: a step, then (with Loop) re-evaluation every
// Config.Loop until Config.Invocation has passed or everything is idle.
func (w *world) invoke(ctx context.Context, trigger string, nudge bool) {
	w.step(ctx, trigger, nudge)
	if !w.trig.Loop {
		return
	}
	w.loopUntil = max(w.loopUntil, w.now+w.cfg.Invocation)
	if !w.loopOn {
		w.loopOn = true
		w.at(w.now+w.cfg.Loop, func() { w.loopTick(ctx) })
	}
}

func (w *world) loopTick(ctx context.Context) {
	if w.now > w.loopUntil || w.done {
		w.loopOn = false
		return
	}
	d := w.step(ctx, scaling.TriggerTick, false)
	o := d.Observation
	if o.Visible+o.InFlight+o.Pending+o.Running == 0 {
		w.loopOn = false // the invocation returns: nothing to watch
		return
	}
	w.at(w.now+w.cfg.Loop, func() { w.loopTick(ctx) })
}

func (w *world) periodic(first, every time.Duration, fn func()) {
	var tick func()
	tick = func() {
		if w.done {
			return
		}
		fn()
		w.at(w.now+every, tick)
	}
	w.at(first, tick)
}

// ---------------------------------------------------------------------------
// running

// Run simulates one policy over one workload.
func Run(ctx context.Context, cfg Config, wl Workload, policy string) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	if len(wl.Arrivals) == 0 {
		return Result{}, fmt.Errorf("sim: workload %q has no requests", wl.Name)
	}
	svcRand := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0002))
	svc := make([]time.Duration, len(wl.Arrivals))
	for i := range svc {
		svc[i] = max(cfg.Service.Sample(svcRand), time.Microsecond)
	}
	pol, trig, err := setup(policy, cfg, wl, svc)
	if err != nil {
		return Result{}, err
	}
	w := &world{
		cfg:    cfg,
		trig:   trig,
		base:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		delays: rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0003)),
		blips:  rand.New(rand.NewPCG(cfg.Seed, 0x5eed_0004)),
		msgs:   make([]message, len(wl.Arrivals)),
	}
	if o, ok := pol.(*oracle); ok {
		o.w = w
		w.oracle = o
	}
	for range cfg.Pool {
		w.newInstance()
	}
	var fl fleet.Fleet = simFleet{w: w}
	if cfg.Retire {
		fl = retirer{simFleet{w: w}}
	}
	w.ctrl = scaling.NewController(scaling.ControllerOptions{
		Queue: simQueue{w: w, exact: trig.ExactCounts}, Fleet: fl,
		Policy: pol, Max: cfg.Max, History: 1, Logger: slog.New(slog.DiscardHandler),
	})
	w.countsChanged()
	w.lastArrival = wl.Arrivals[len(wl.Arrivals)-1]

	for i, a := range wl.Arrivals {
		w.msgs[i] = message{arrival: a, svc: svc[i]}
		w.at(a, func() {
			w.arrive(i)
			if trig.Nudge && !w.nudgeQueued {
				if p, r := w.capacity(); p+r == 0 {
					w.nudgeQueued = true
					w.at(w.now+cfg.NudgeDelay, func() {
						w.nudgeQueued = false
						w.invoke(ctx, scaling.TriggerNudge, true)
					})
				}
			}
			if trig.OnArrival && (i+1 == len(wl.Arrivals) || wl.Arrivals[i+1] != a) {
				w.step(ctx, scaling.TriggerTick, false)
			}
		})
	}
	if trig.Schedule > 0 {
		w.periodic(cfg.Phase, trig.Schedule, func() { w.invoke(ctx, scaling.TriggerSchedule, false) })
	}
	if trig.Poll > 0 {
		w.periodic(cfg.Phase%trig.Poll, trig.Poll, func() { w.step(ctx, scaling.TriggerTick, false) })
	}
	if trig.Alarm {
		// A 1-minute alarm on visible > 0, evaluated on datapoints MetricDelay old;
		// it invokes the scaler only on OK -> ALARM.
		w.periodic(cfg.Phase, time.Minute, func() {
			v, _ := w.countsAt(w.now - cfg.MetricDelay)
			on := v > 0
			if on && !w.alarmOn {
				w.invoke(ctx, scaling.TriggerAlarm, false)
			}
			w.alarmOn = on
		})
	}

	end := w.lastArrival + cfg.Horizon
	for w.evq.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("sim: %s/%s interrupted: %w", wl.Name, policy, err)
		}
		e := heap.Pop(&w.evq).(*event)
		if e.at > end {
			break
		}
		w.now = e.at
		e.fn()
		if w.answered == len(w.msgs) {
			if p, r := w.capacity(); p+r == 0 && w.now >= w.lastCapChg+cfg.Settle && w.now >= w.lastAnswer+cfg.Settle {
				w.done = true
				break
			}
		}
	}
	// Instances still up at the hard stop are billed until then.
	for _, in := range w.insts {
		if in.state == fleet.Running {
			w.billed += max(w.now-in.runningSince, cfg.BillingMinimum)
		}
	}
	return w.result(wl, policy), nil
}

// The simulator plugs into the same ports the real adapters implement.
var (
	_ fleet.Fleet          = simFleet{}
	_ scaling.Retirer      = retirer{}
	_ scaling.QueueCounter = simQueue{}
)
