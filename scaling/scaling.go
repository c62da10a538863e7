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
}

// Decision is what a policy wants. Start counts instances to bring up (started from
// the stopped pool first, launched when the pool is short); Stop counts idle
// instances to stop. Policies that never stop busy workers leave Stop at 0 and rely
// on workers stopping themselves when idle.
type Decision struct {
	Observation Observation `json:"observation"`
	Desired     int         `json:"desired"`
	Start       int         `json:"start"`
	Stop        int         `json:"stop"`
	Reason      string      `json:"reason"`
}

// Policy turns an observation into a decision. Implementations may keep state
// (cooldowns) but must take time only from the observation.
type Policy interface {
	Name() string
	Decide(Observation) Decision
}
