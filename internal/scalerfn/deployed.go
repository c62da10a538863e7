package scalerfn

import (
	"time"

	"github.com/facefleet/facefleet/scaling"
)

// Deployment is how the deployed stack (template.yaml) invokes the scaler and how
// the web tier nudges it. The simulator runs our policy on AWS with exactly these
// triggers (sim imports Deployed), and test/template checks that template.yaml
// declares the same values, so the published figures cannot drift from what is
// deployed. CloudFormation cannot be generated from Go, hence the test.
type Deployment struct {
	// Schedule is the EventBridge rule's period (ScaleSchedule: rate(1 minute)).
	Schedule time.Duration
	// Interval is the in-invocation loop period (ScalerIntervalSeconds' default,
	// passed as FACEFLEET_STEP_INTERVAL).
	Interval time.Duration
	// Timeout is the function's timeout; Margin (FACEFLEET_DEADLINE_MARGIN) is kept
	// free before it, so a looping invocation steps while the next step would
	// still start before Timeout-Margin.
	Timeout, Margin time.Duration
	// ReservedConcurrency is ScalerReservedConcurrency's default: with 1, an
	// invoke that arrives while an invocation runs is throttled and retried by
	// Lambda's asynchronous queue (no sooner than RetryFirst, then backing off
	// by doubling) until it runs or is older than MaxEventAge
	// (EventInvokeConfig.MaximumEventAgeInSeconds).
	ReservedConcurrency int
	RetryFirst          time.Duration
	MaxEventAge         time.Duration
	// The backlog alarm (RequestBacklogAlarm): Maximum of the request queue's
	// ApproximateNumberOfMessagesVisible over AlarmPeriod, >= AlarmThreshold for
	// AlarmEvaluationPeriods; both its ALARM and its OK actions invoke the
	// function (AlarmInvokesOnOK).
	AlarmThreshold         int
	AlarmPeriod            time.Duration
	AlarmEvaluationPeriods int
	AlarmInvokesOnOK       bool
	// NudgeMinGap: the web tier checks for a worker, and invokes the function
	// with NudgeEvent when none is pending or running, at most once per
	// NudgeMinGap (a burst makes one call). See internal/scalernudge.
	NudgeMinGap time.Duration
}

// Deployed is the deployed configuration (template.yaml's defaults).
var Deployed = Deployment{
	Schedule:               time.Minute,
	Interval:               DefaultInterval,
	Timeout:                60 * time.Second,
	Margin:                 DefaultMargin,
	ReservedConcurrency:    1,
	RetryFirst:             time.Second,
	MaxEventAge:            60 * time.Second,
	AlarmThreshold:         1,
	AlarmPeriod:            60 * time.Second,
	AlarmEvaluationPeriods: 1,
	AlarmInvokesOnOK:       true,
	NudgeMinGap:            DefaultInterval,
}

// NudgeEvent is the payload the web tier sends (InvocationType Event) when a
// request arrives while no worker is pending or running.
const NudgeEvent = `{"action":"nudge"}`

// Idle reports whether a looping invocation may return after decision d: the
// step succeeded, nothing is queued, in flight, pending or running, and it
// started nothing, and no overflow invocation runs or was asked for (the
// overflow must keep the loop watching, since it defers EC2 starts). A request that arrives later is seen by the web
// tier's nudge, the next schedule or the alarm. The simulator ends its
// invocations by the same rule.
func Idle(d scaling.Decision) bool {
	o := d.Observation
	return d.Error == "" && o.Visible+o.InFlight+o.Pending+o.Running+o.Overflow == 0 && d.Start <= 0 && d.Overflow <= 0
}
