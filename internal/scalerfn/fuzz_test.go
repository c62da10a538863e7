package scalerfn

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseEvent: any Lambda payload parses to one of the four triggers with
// its details, or is an *EventError naming the problem; never a panic (the
// runtime must stay up for the next invoke).
func FuzzParseEvent(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no sample events under events/: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "null", "{}", `{"action":"run"}`, `{"action":"nudge"}`, `{"action":"jump"}`, `{"source":"aws.events"}`,
		`{"source":"aws.cloudwatch","alarmData":{"state":{"value":"ALARM"}}}`, "[1,2]", `{"source":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := ParseEvent(payload)
		if err != nil {
			var ee *EventError
			if !errors.As(err, &ee) || ee.Reason == "" {
				t.Fatalf("error is not an *EventError with a reason: %T %v", err, err)
			}
			return
		}
		switch ev.Trigger {
		case TriggerSchedule:
			if ev.Scheduled == nil || !ev.Loop {
				t.Fatalf("schedule without its event: %+v", ev)
			}
		case TriggerAlarm:
			if ev.Alarm == nil || ev.Alarm.validate() != nil {
				t.Fatalf("alarm without a valid event: %+v", ev)
			}
			if _, err := ev.Alarm.When(); err != nil {
				t.Fatalf("accepted alarm time %q: %v", ev.Alarm.Time, err)
			}
		case TriggerDirect:
			if ev.Nudge {
				t.Fatalf("direct invoke with the nudge flag: %+v", ev)
			}
		case TriggerNudge:
			if !ev.Nudge || !ev.Loop {
				t.Fatalf("nudge without its flag or loop: %+v", ev)
			}
		default:
			t.Fatalf("unknown trigger %q", ev.Trigger)
		}
	})
}
