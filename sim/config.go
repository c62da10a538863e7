package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/internal/scalerfn"
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
	// Loop is the re-evaluation period inside one scaler invocation. Invocation
	// is the function's timeout: a looping invocation steps while the step starts
	// no later than scalerfn.Deployed.Margin before it, and ends early once queue
	// and fleet are both empty (scalerfn.Idle). Defaults: scalerfn.Deployed.
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
	// stop after their current job when asked), as localfleet and ec2fleet have
	// (a graceful stop); off, the simulated fleet models one without it.
	Retire bool `json:"retire"`
	// Seed makes the run reproducible.
	Seed uint64 `json:"seed"`
	// BacklogDrain sets our policy's knobs (zero fields: scaling's defaults).
	BacklogDrain scaling.BacklogDrainOptions `json:"backlog_drain"`
	// Overflow models Lambda overflow workers and the prices (sim/overflow.go).
	Overflow OverflowConfig `json:"overflow"`
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
		Loop:           scalerfn.Deployed.Interval,
		Invocation:     scalerfn.Deployed.Timeout,
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
	c.Overflow = c.Overflow.withDefaults()
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
	return c.Overflow.validate()
}
