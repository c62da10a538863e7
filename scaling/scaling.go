// Package scaling holds the app tier's scaling policy and the controller that applies
// it. The same code runs in local mode (driven by a ticker), in the Lambda (driven by
// EventBridge and CloudWatch alarms) and in the simulator (driven by a virtual clock):
// nothing here sleeps or reads the wall clock; time comes in through Observation.Now.
package scaling

import (
	"time"
)

// Observation is everything a policy may look at.
type Observation struct {
	Now time.Time `json:"now"`
	// Queue counts (approximate, as SQS reports them).
	Visible  int `json:"visible"`
	InFlight int `json:"in_flight"`
	// Instances by state.
	Pending  int `json:"pending"`
	Running  int `json:"running"`
	Stopping int `json:"stopping"`
	Stopped  int `json:"stopped"`
	// Max is the cap on pending+running instances.
	Max int `json:"max"`
	// Trigger says what asked for this evaluation (TriggerTick, TriggerNudge, ...).
	Trigger string `json:"trigger,omitempty"`
	// Nudge is true when the web tier has just enqueued a request while no worker
	// ran: the approximate count may not show it yet, but the work is real.
	Nudge bool `json:"nudge,omitempty"`
	// CanRetire is true when the fleet can retire instances (Retirer): ask them
	// to stop themselves after their current job.
	CanRetire bool `json:"can_retire,omitempty"`
	// Overflow counts running overflow invocations and OverflowMax the most
	// that may run at once; both 0 where no overflow function is wired
	// (OverflowInvoker), which is everywhere but the simulator today.
	Overflow    int `json:"overflow,omitempty"`
	OverflowMax int `json:"overflow_max,omitempty"`
}

// Triggers: what asked the controller to evaluate. They are labels for logs and
// for policies that treat a nudge as evidence of work.
const (
	TriggerTick     = "tick"     // a periodic timer (local ticker, EventBridge, in-invocation loop)
	TriggerNudge    = "nudge"    // the web tier enqueued a request and saw no worker
	TriggerAlarm    = "alarm"    // a CloudWatch alarm changed state
	TriggerSchedule = "schedule" // the 1-minute EventBridge schedule
)

// Decision is what a policy wants. Start counts instances to bring up (started from
// the stopped pool first, launched when the pool is short); Stop counts idle
// instances to stop. Policies that never stop busy workers leave Stop at 0 and rely
// on workers stopping themselves when idle.
type Decision struct {
	Observation Observation `json:"observation"`
	Desired     int         `json:"desired"`
	Start       int         `json:"start"`
	Stop        int         `json:"stop"`
	// Retire counts running instances to ask to stop after their current job
	// (only when Observation.CanRetire): scale-in that never kills a busy worker.
	Retire int `json:"retire,omitempty"`
	// Overflow counts overflow invocations to start (OverflowInvoker). Only
	// asked for when Observation.OverflowMax > 0; controllers without an
	// OverflowInvoker (local mode, the scaler Lambda, until functions/overflow
	// exists) never see it set and would ignore it.
	Overflow int    `json:"overflow,omitempty"`
	Reason   string `json:"reason"`
	// Filled in by the Controller after acting: how many were started from the
	// stopped pool and how many launched (Start is their sum once acted on), and
	// the fleet error, if any, that made it do less than the policy asked.
	Started  int    `json:"started,omitempty"`
	Launched int    `json:"launched,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Acted reports whether d did (or tried) something or failed; a decision that
// did not is a no-op, worth keeping in a history only as the newest.
func (d Decision) Acted() bool {
	return d.Start+d.Stop+d.Retire+d.Overflow > 0 || d.Error != ""
}

// Policy turns an observation into a decision. Implementations may keep state
// (cooldowns) but must take time only from the observation.
type Policy interface {
	Name() string
	Decide(Observation) Decision
}
