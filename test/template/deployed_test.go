package template_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/scalerfn"
)

// TestTriggersMatchDeployed: the simulator runs our policy with
// scalerfn.Deployed; the stack must invoke the scaler with exactly those
// triggers, or the published figures are not those of what we deploy.
func TestTriggersMatchDeployed(t *testing.T) {
	tpl := readTemplate(t)
	d := scalerfn.Deployed
	secs := func(v any) time.Duration {
		t.Helper()
		n, ok := v.(int)
		if !ok {
			t.Fatalf("%#v is not a whole number of seconds", v)
		}
		return time.Duration(n) * time.Second
	}
	param := func(name string) any { return at(tpl, "Parameters", name, "Default") }
	f := resource(t, tpl, "ScalerFunction", "AWS::Serverless::Function")

	// Schedule: the one Schedule event's rate.
	var rates []string
	for _, ev := range at(f, "Events").(map[string]any) {
		if at(ev, "Type") == "Schedule" {
			rates = append(rates, fmt.Sprint(at(ev, "Properties", "Schedule")))
		}
	}
	if len(rates) != 1 {
		t.Fatalf("schedules %v, want one", rates)
	}
	eqDur(t, "schedule period", parseRate(t, rates[0]), d.Schedule)

	// In-invocation loop: FACEFLEET_STEP_INTERVAL is ScalerIntervalSeconds.
	env, _ := at(f, "Environment", "Variables").(map[string]any)
	eq(t, "step interval env", env[scalerfn.EnvInterval], map[string]any{"Fn::Sub": "${ScalerIntervalSeconds}s"})
	eqDur(t, "ScalerIntervalSeconds default", secs(param("ScalerIntervalSeconds")), d.Interval)
	margin, err := time.ParseDuration(fmt.Sprint(env[scalerfn.EnvMargin]))
	if err != nil {
		t.Fatalf("deadline margin env %#v: %v", env[scalerfn.EnvMargin], err)
	}
	eqDur(t, "deadline margin", margin, d.Margin)
	eqDur(t, "function timeout", secs(f["Timeout"]), d.Timeout)

	// One invocation at a time, and what Lambda does with an invoke that finds it busy.
	eq(t, "ReservedConcurrentExecutions", f["ReservedConcurrentExecutions"],
		map[string]any{"Fn::If": []any{"ReserveScalerConcurrency", ref("ScalerReservedConcurrency"), ref("AWS::NoValue")}})
	eq(t, "ScalerReservedConcurrency default", param("ScalerReservedConcurrency"), d.ReservedConcurrency)
	eqDur(t, "MaximumEventAgeInSeconds", secs(at(f, "EventInvokeConfig", "MaximumEventAgeInSeconds")), d.MaxEventAge)
	eq(t, "MaximumRetryAttempts", at(f, "EventInvokeConfig", "MaximumRetryAttempts"), 0)

	// The backlog alarm.
	a := resource(t, tpl, "RequestBacklogAlarm", "AWS::CloudWatch::Alarm")
	eq(t, "alarm threshold", a["Threshold"], d.AlarmThreshold)
	eq(t, "alarm comparison", a["ComparisonOperator"], "GreaterThanOrEqualToThreshold")
	eq(t, "alarm statistic", a["Statistic"], "Maximum")
	eqDur(t, "alarm period", secs(a["Period"]), d.AlarmPeriod)
	eq(t, "alarm evaluation periods", a["EvaluationPeriods"], d.AlarmEvaluationPeriods)
	eq(t, "alarm invokes on OK", a["OKActions"] != nil, d.AlarmInvokesOnOK)

	// The nudge: the web tier is told the function and may invoke exactly it.
	ud, _ := at(resource(t, tpl, "WebLaunchTemplate", "AWS::EC2::LaunchTemplate"),
		"LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub", 0).(string)
	if !strings.Contains(ud, "\nFACEFLEET_SCALER_FUNCTION=${ScalerFunction.Arn}\n") {
		t.Error("the web tier's environment does not name the scaler (FACEFLEET_SCALER_FUNCTION=${ScalerFunction.Arn})")
	}
	var invoke []map[string]any
	for _, s := range statements(at(resource(t, tpl, "WebRole", "AWS::IAM::Role"), "Policies")) {
		for _, act := range actions(s) {
			if strings.HasPrefix(act, "lambda:") {
				invoke = append(invoke, s)
				if act != "lambda:InvokeFunction" {
					t.Errorf("web role grants %s", act)
				}
			}
		}
	}
	if len(invoke) != 1 {
		t.Fatalf("web role has %d lambda statements, want one (lambda:InvokeFunction on the scaler)", len(invoke))
	}
	eq(t, "nudge effect", invoke[0]["Effect"], "Allow")
	eq(t, "nudge resource", invoke[0]["Resource"], getAtt("ScalerFunction", "Arn"))
}

var rateRE = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours)\)$`)

func parseRate(t *testing.T, s string) time.Duration {
	t.Helper()
	m := rateRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("schedule %q is not rate(N minute[s]|hour[s])", s)
	}
	n, _ := strconv.Atoi(m[1])
	if strings.HasPrefix(m[2], "hour") {
		return time.Duration(n) * time.Hour
	}
	return time.Duration(n) * time.Minute
}

func eqDur(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v in template.yaml, want %v (scalerfn.Deployed)", what, got, want)
	}
}
