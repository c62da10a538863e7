package scalerfn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Trigger names what invoked the function.
type Trigger string

const (
	// TriggerSchedule is EventBridge's "Scheduled Event" (the rate(1 minute) rule).
	TriggerSchedule Trigger = "schedule"
	// TriggerAlarm is a CloudWatch alarm whose action invokes the function directly.
	TriggerAlarm Trigger = "alarm"
	// TriggerDirect is a hand-made invoke: {} or {"action":"step"|"run"}.
	TriggerDirect Trigger = "direct"
	// TriggerNudge is the web tier's {"action":"nudge"} (NudgeEvent): a request
	// was just enqueued while no worker was pending or running.
	TriggerNudge Trigger = "nudge"
)

// AlarmTimeLayout is how CloudWatch formats times in alarm-action payloads.
const AlarmTimeLayout = "2006-01-02T15:04:05.000-0700"

// AlarmEvent is the payload CloudWatch sends when an alarm action invokes a Lambda
// function directly (aws-lambda-go has no type for it; its CloudWatchAlarmSNSPayload
// is the older SNS shape).
type AlarmEvent struct {
	Source    string    `json:"source"` // "aws.cloudwatch"
	AlarmARN  string    `json:"alarmArn"`
	AccountID string    `json:"accountId"`
	Time      string    `json:"time"` // AlarmTimeLayout
	Region    string    `json:"region"`
	AlarmData AlarmData `json:"alarmData"`
}

// AlarmData describes the alarm and its state change.
type AlarmData struct {
	AlarmName     string             `json:"alarmName"`
	State         AlarmState         `json:"state"`
	PreviousState AlarmState         `json:"previousState"`
	Configuration AlarmConfiguration `json:"configuration"`
}

// AlarmState is one state of the alarm. ReasonData is a JSON document in a string.
type AlarmState struct {
	Value      string `json:"value"` // OK, ALARM or INSUFFICIENT_DATA
	Reason     string `json:"reason"`
	ReasonData string `json:"reasonData,omitempty"`
	Timestamp  string `json:"timestamp"` // AlarmTimeLayout
}

// AlarmConfiguration is the alarm's definition at the time of the change.
type AlarmConfiguration struct {
	Description string        `json:"description,omitempty"`
	Metrics     []AlarmMetric `json:"metrics,omitempty"`
}

// AlarmMetric is one metric (or expression) the alarm evaluates.
type AlarmMetric struct {
	ID         string           `json:"id"`
	MetricStat *AlarmMetricStat `json:"metricStat,omitempty"`
	Expression string           `json:"expression,omitempty"`
	ReturnData bool             `json:"returnData"`
}

// AlarmMetricStat is a metric with its statistic.
type AlarmMetricStat struct {
	Metric struct {
		Namespace  string            `json:"namespace"`
		Name       string            `json:"name"`
		Dimensions map[string]string `json:"dimensions,omitempty"`
	} `json:"metric"`
	Period int    `json:"period"`
	Stat   string `json:"stat"`
	Unit   string `json:"unit,omitempty"`
}

// DirectEvent is a hand-made invoke. Action "" or "step" runs one controller step;
// "run" loops until shortly before the deadline, as the scheduled invoke does;
// "nudge" (the web tier's NudgeEvent) loops too, and its first step tells the
// policy that a request exists even if the approximate count does not show it yet.
type DirectEvent struct {
	Action string `json:"action,omitempty"`
}

// EventError is returned for a payload the function does not understand. Lambda
// reports it as errorType "EventError"; the runtime stays up for the next invoke.
type EventError struct {
	Reason string
	Err    error
}

func (e *EventError) Error() string {
	if e.Err != nil {
		return "scaler: unsupported event: " + e.Reason + ": " + e.Err.Error()
	}
	return "scaler: unsupported event: " + e.Reason
}

func (e *EventError) Unwrap() error { return e.Err }

// Event is a parsed invocation.
type Event struct {
	Trigger Trigger
	// Loop is true when the invocation should re-evaluate until near its deadline.
	Loop bool
	// Nudge is true for the web tier's nudge: the first step is a
	// scaling.TriggerNudge step with Observation.Nudge set.
	Nudge bool
	// Alarm is set for TriggerAlarm.
	Alarm *AlarmEvent
	// Scheduled is set for TriggerSchedule.
	Scheduled *events.CloudWatchEvent
}

// maxEventBytes bounds what we try to parse; real payloads are a few KiB.
const maxEventBytes = 256 << 10

// ParseEvent recognises the three payload shapes. Anything else is an *EventError.
func ParseEvent(payload []byte) (Event, error) {
	if len(payload) > maxEventBytes {
		return Event{}, &EventError{Reason: fmt.Sprintf("payload is %d bytes, more than the %d accepted", len(payload), maxEventBytes)}
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Event{}, &EventError{Reason: "payload is not a JSON object"}
	}
	var probe struct {
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
	}
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return Event{}, &EventError{Reason: "payload is not valid JSON", Err: err}
	}
	switch probe.Source {
	case "aws.events", "aws.scheduler":
		if probe.DetailType != "Scheduled Event" {
			return Event{}, &EventError{Reason: fmt.Sprintf("EventBridge detail-type %q (want \"Scheduled Event\")", probe.DetailType)}
		}
		var ev events.CloudWatchEvent
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return Event{}, &EventError{Reason: "malformed scheduled event", Err: err}
		}
		return Event{Trigger: TriggerSchedule, Loop: true, Scheduled: &ev}, nil
	case "aws.cloudwatch":
		var ev AlarmEvent
		if err := json.Unmarshal(trimmed, &ev); err != nil {
			return Event{}, &EventError{Reason: "malformed CloudWatch alarm event", Err: err}
		}
		if err := ev.validate(); err != nil {
			return Event{}, &EventError{Reason: "malformed CloudWatch alarm event", Err: err}
		}
		return Event{Trigger: TriggerAlarm, Loop: true, Alarm: &ev}, nil
	case "":
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		var ev DirectEvent
		if err := dec.Decode(&ev); err != nil {
			return Event{}, &EventError{Reason: `direct invoke must be {} or {"action":"step"|"run"|"nudge"}`, Err: err}
		}
		switch ev.Action {
		case "", "step":
			return Event{Trigger: TriggerDirect}, nil
		case "run":
			return Event{Trigger: TriggerDirect, Loop: true}, nil
		case "nudge":
			return Event{Trigger: TriggerNudge, Loop: true, Nudge: true}, nil
		default:
			return Event{}, &EventError{Reason: fmt.Sprintf(`direct invoke action %q (want "step", "run" or "nudge")`, ev.Action)}
		}
	default:
		return Event{}, &EventError{Reason: fmt.Sprintf("event source %q (want aws.events, aws.cloudwatch or a direct invoke)", probe.Source)}
	}
}

func (e *AlarmEvent) validate() error {
	var errs []error
	if !strings.HasPrefix(e.AlarmARN, "arn:") || !strings.Contains(e.AlarmARN, ":alarm:") {
		errs = append(errs, fmt.Errorf("alarmArn %q is not a CloudWatch alarm ARN", e.AlarmARN))
	}
	if e.AlarmData.AlarmName == "" {
		errs = append(errs, errors.New("alarmData.alarmName is empty"))
	}
	switch e.AlarmData.State.Value {
	case "OK", "ALARM", "INSUFFICIENT_DATA":
	default:
		errs = append(errs, fmt.Errorf("alarmData.state.value %q (want OK, ALARM or INSUFFICIENT_DATA)", e.AlarmData.State.Value))
	}
	if _, err := time.Parse(AlarmTimeLayout, e.Time); err != nil {
		errs = append(errs, fmt.Errorf("time %q is not in the layout %s", e.Time, AlarmTimeLayout))
	}
	return errors.Join(errs...)
}

// When returns the alarm event's time.
func (e *AlarmEvent) When() (time.Time, error) { return time.Parse(AlarmTimeLayout, e.Time) }
