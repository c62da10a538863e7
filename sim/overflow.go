package sim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/scaling"
)

// LambdaMBPerVCPU is the memory size at which Lambda gives a function one full
// vCPU; CPU is allocated in proportion to memory (AWS documents 1,769 MB = one
// vCPU). The engine runs one ONNX Runtime thread per worker, so more memory than
// this buys no speed; less makes every image and the cold start slower in
// proportion.
const LambdaMBPerVCPU = 1769

// OverflowConfig models Lambda overflow workers (issue 15): asynchronous
// invocations of a function that carries the engine and models in its package
// and takes requests from the same queue while EC2 capacity boots.
//
// What it models: cold start (sandbox plus loading the three models from the
// package, billed as the function's init), warm reuse of an idle sandbox, the
// per-image time on Lambda's vCPU share at MemoryMB, the concurrency limit
// (reserved concurrency; invocations beyond it are refused), GB-second and
// per-request billing (per millisecond, no minimum), and the invocation's
// behaviour: take requests until an EC2 worker is taking work, the queue stays
// empty for IdleWait, or the next image would not finish before Timeout.
// What it does not model: async-invoke retries and event age, account-level
// burst limits, network time to S3 (the EC2 worker's Service time has none
// either), and a Lambda vCPU being slower or faster than the EC2 worker's.
type OverflowConfig struct {
	// Concurrency is the most invocations at once (the function's reserved
	// concurrency); -1 disables overflow. Default 10.
	Concurrency int `json:"concurrency"`
	// MemoryMB is the function's memory size. Default 1769 (one vCPU).
	MemoryMB int `json:"memory_mb"`
	// ColdStart is a new sandbox's init at one vCPU: the runtime plus loading the
	// ~47 MB of models from the package into ONNX Runtime. Assumed 1.5 s +- 0.3 s
	// (the EC2 worker's model load is 2 s with its download from S3).
	ColdStart Dist `json:"cold_start"`
	// InvokeDelay is from the scaler's asynchronous Invoke to the handler running.
	InvokeDelay time.Duration `json:"invoke_delay"`
	// KeepWarm is how long an idle sandbox stays for reuse (AWS does not document
	// it; minutes are typical). Default 5 min.
	KeepWarm time.Duration `json:"keep_warm"`
	// IdleWait: an invocation returns after the queue has been empty this long
	// (its long poll's wait). Default 2 s.
	IdleWait time.Duration `json:"idle_wait"`
	// Timeout is the function's timeout. Default 60 s.
	Timeout time.Duration `json:"timeout"`
	// Prices, us-east-1 list: EC2 c7i.large per hour, Lambda x86 per GB-second
	// and per million requests.
	EC2PerHour        float64 `json:"ec2_per_hour"`
	LambdaPerGBSecond float64 `json:"lambda_per_gb_second"`
	LambdaPerMillion  float64 `json:"lambda_per_million"`
}

// DefaultOverflowConfig is the overflow as the simulator assumes it by default.
func DefaultOverflowConfig() OverflowConfig {
	return OverflowConfig{
		Concurrency:       10,
		MemoryMB:          LambdaMBPerVCPU,
		ColdStart:         Dist{Mean: 1500 * time.Millisecond, Jitter: 300 * time.Millisecond},
		InvokeDelay:       50 * time.Millisecond,
		KeepWarm:          5 * time.Minute,
		IdleWait:          2 * time.Second,
		Timeout:           time.Minute,
		EC2PerHour:        0.08925,
		LambdaPerGBSecond: 0.0000166667,
		LambdaPerMillion:  0.20,
	}
}

func (c OverflowConfig) withDefaults() OverflowConfig {
	d := DefaultOverflowConfig()
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Concurrency < 0 {
		c.Concurrency = 0
	}
	if c.MemoryMB <= 0 {
		c.MemoryMB = d.MemoryMB
	}
	if c.ColdStart == (Dist{}) {
		c.ColdStart = d.ColdStart
	}
	if c.InvokeDelay <= 0 {
		c.InvokeDelay = d.InvokeDelay
	}
	if c.KeepWarm <= 0 {
		c.KeepWarm = d.KeepWarm
	}
	if c.IdleWait <= 0 {
		c.IdleWait = d.IdleWait
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.EC2PerHour <= 0 {
		c.EC2PerHour = d.EC2PerHour
	}
	if c.LambdaPerGBSecond <= 0 {
		c.LambdaPerGBSecond = d.LambdaPerGBSecond
	}
	if c.LambdaPerMillion <= 0 {
		c.LambdaPerMillion = d.LambdaPerMillion
	}
	return c
}

func (c OverflowConfig) validate() error {
	switch {
	case c.MemoryMB < 128 || c.MemoryMB > 10240:
		return fmt.Errorf("sim: overflow memory %d MB is outside Lambda's 128..10240 MB", c.MemoryMB)
	case c.Timeout > 15*time.Minute:
		return fmt.Errorf("sim: overflow timeout %v is beyond Lambda's 15 minutes", c.Timeout)
	case c.Concurrency > 1000:
		return fmt.Errorf("sim: overflow concurrency %d is beyond the default account limit of 1000", c.Concurrency)
	}
	return nil
}

// slowdown is how much longer work takes on the function's vCPU share than on
// one full vCPU.
func (c OverflowConfig) slowdown() float64 {
	return max(1, float64(LambdaMBPerVCPU)/float64(c.MemoryMB))
}

func (c OverflowConfig) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.slowdown())
}

func (c OverflowConfig) gb() float64 { return float64(c.MemoryMB) / 1024 }

// ErrOverflowThrottled: an invocation beyond the concurrency limit.
var ErrOverflowThrottled = errors.New("sim: overflow invocation throttled (concurrency limit)")

// sandbox is one Lambda execution environment.
type sandbox struct {
	active    bool // an invocation runs in it
	ready     bool // init done: polling the queue
	busy      int  // message index, -1 when idle
	startedAt time.Duration
	deadline  time.Duration
	warmUntil time.Duration
	epoch     int
}

type overflowState struct {
	boxes       []*sandbox
	invocations int
	cold        int
	throttles   int
	billed      time.Duration // invocation durations, init included
}

type simOverflow struct{ w *world }

func (o simOverflow) Active(ctx context.Context) (int, int, error) {
	n := 0
	for _, b := range o.w.ov.boxes {
		if b.active {
			n++
		}
	}
	return n, o.w.cfg.Overflow.Concurrency, ctx.Err()
}

func (o simOverflow) Invoke(ctx context.Context, n int) error {
	w, c := o.w, o.w.cfg.Overflow
	for range n {
		active, limit, _ := o.Active(ctx)
		if active >= limit {
			w.ov.throttles++
			return fmt.Errorf("%w: %d running", ErrOverflowThrottled, active)
		}
		var box *sandbox
		for _, b := range w.ov.boxes {
			if !b.active && b.warmUntil >= w.now+c.InvokeDelay {
				box = b
				break
			}
		}
		init := time.Duration(0)
		if box == nil {
			box = &sandbox{busy: -1}
			w.ov.boxes = append(w.ov.boxes, box)
			init = c.scale(c.ColdStart.Sample(w.delays))
			w.ov.cold++
		}
		w.ov.invocations++
		box.active, box.ready, box.busy = true, false, -1
		box.epoch++
		box.startedAt = w.now + c.InvokeDelay
		box.deadline = box.startedAt + c.Timeout
		epoch := box.epoch
		w.at(box.startedAt+init, func() {
			if box.epoch != epoch {
				return
			}
			box.ready = true
			w.dispatch()
			w.overflowIdle(box)
		})
	}
	return ctx.Err()
}

// dispatchOverflow hands visible messages to ready idle invocations after the
// EC2 workers have taken theirs, and ends invocations that must stop.
func (w *world) dispatchOverflow() {
	if w.ov == nil {
		return
	}
	ec2Up := false
	for _, in := range w.insts {
		if in.state == fleet.Running && in.ready {
			ec2Up = true
			break
		}
	}
	for _, b := range w.ov.boxes {
		if !b.active || !b.ready || b.busy >= 0 {
			continue
		}
		if ec2Up {
			w.overflowReturn(b) // an EC2 worker takes work: the bridge is done
			continue
		}
		if w.nVis == 0 {
			continue
		}
		i, ok := w.popVisible()
		if !ok {
			continue
		}
		svc := w.cfg.Overflow.scale(w.msgs[i].svc)
		if w.now+svc > b.deadline {
			w.overflowReturn(b) // cannot finish before the timeout: leave it to the queue
			w.requeue(i)
			continue
		}
		b.busy = i
		epoch := b.epoch
		w.at(w.now+svc, func() {
			if b.epoch != epoch || b.busy != i {
				return
			}
			b.busy = -1
			w.answer(i)
			w.dispatch()
			w.overflowIdle(b)
		})
	}
}

// overflowIdle returns the invocation if the queue gives it nothing for IdleWait.
func (w *world) overflowIdle(b *sandbox) {
	if !b.active || b.busy >= 0 {
		return
	}
	epoch := b.epoch
	w.at(w.now+w.cfg.Overflow.IdleWait, func() {
		if b.epoch == epoch && b.active && b.busy < 0 {
			w.overflowReturn(b)
		}
	})
}

func (w *world) overflowReturn(b *sandbox) {
	w.ov.billed += w.now - b.startedAt
	b.active, b.ready = false, false
	b.epoch++
	b.warmUntil = w.now + w.cfg.Overflow.KeepWarm
}

// requeue makes an in-flight message visible again at once (the invocation
// changed its visibility to 0 before returning).
func (w *world) requeue(i int) {
	m := &w.msgs[i]
	m.state = msgVisible
	w.nFlight--
	w.nVis++
	w.visible = append(w.visible, i)
	w.countsChanged()
}

// overflowCost returns the Lambda GB-seconds and the run's billed dollars.
func (w *world) overflowCost() (gbs, usd float64) {
	c := w.cfg.Overflow
	usd = w.billed.Seconds() * c.EC2PerHour / 3600
	if w.ov != nil {
		gbs = w.ov.billed.Seconds() * c.gb()
		usd += gbs*c.LambdaPerGBSecond + float64(w.ov.invocations)*c.LambdaPerMillion/1e6
	}
	return gbs, usd
}

var _ scaling.OverflowInvoker = simOverflow{}
