package template_test

import (
	"fmt"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/scalerfn"
)

// at follows a path of map keys / list indexes; nil when absent.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func resource(t *testing.T, tpl map[string]any, name, typ string) map[string]any {
	t.Helper()
	r, ok := at(tpl, "Resources", name).(map[string]any)
	if !ok {
		t.Fatalf("no resource %s", name)
	}
	if r["Type"] != typ {
		t.Fatalf("%s is %v, want %s", name, r["Type"], typ)
	}
	p, _ := r["Properties"].(map[string]any)
	return p
}

func ref(name string) any         { return map[string]any{"Ref": name} }
func getAtt(res, attr string) any { return map[string]any{"Fn::GetAtt": []any{res, attr}} }

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// tagKey is the app-tier tag key as the template's Tier mapping defines it.
func tagKey(t *testing.T, tpl map[string]any) string {
	k, _ := at(tpl, "Mappings", "Tier", "Tag", "Key").(string)
	if k == "" {
		t.Fatal("Mappings.Tier.Tag.Key missing")
	}
	return k
}

func TestQueues(t *testing.T) {
	tpl := readTemplate(t)
	req := resource(t, tpl, "RequestQueue", "AWS::SQS::Queue")
	eq(t, "RequestQueue.MaximumMessageSize", req["MaximumMessageSize"], 1024)
	eq(t, "RequestQueue redrive target", at(req, "RedrivePolicy", "deadLetterTargetArn"), getAtt("RequestDLQ", "Arn"))
	eq(t, "RequestQueue maxReceiveCount", at(req, "RedrivePolicy", "maxReceiveCount"), ref("MaxReceiveCount"))
	resp := resource(t, tpl, "ResponseQueue", "AWS::SQS::Queue")
	eq(t, "ResponseQueue redrive target", at(resp, "RedrivePolicy", "deadLetterTargetArn"), getAtt("ResponseDLQ", "Arn"))
	resource(t, tpl, "RequestDLQ", "AWS::SQS::Queue")
	resource(t, tpl, "ResponseDLQ", "AWS::SQS::Queue")
}

func TestBuckets(t *testing.T) {
	tpl := readTemplate(t)
	for _, name := range []string{"InputBucket", "OutputBucket", "ArtifactsBucket"} {
		b := resource(t, tpl, name, "AWS::S3::Bucket")
		for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
			eq(t, name+" "+k, at(b, "PublicAccessBlockConfiguration", k), true)
		}
		if at(b, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm") == nil {
			t.Errorf("%s has no default encryption", name)
		}
	}
	for _, name := range []string{"InputBucket", "OutputBucket"} {
		lc := at(resource(t, tpl, name, "AWS::S3::Bucket"), "LifecycleConfiguration", "Fn::If")
		eq(t, name+" lifecycle condition", at(lc, 0), "ExpireObjects")
		eq(t, name+" expiry", at(lc, 1, "Rules", 0, "ExpirationInDays"), ref("ExpireAfterDays"))
		eq(t, name+" lifecycle off", at(lc, 2), ref("AWS::NoValue"))
	}
	eq(t, "ExpireObjects", at(tpl, "Conditions", "ExpireObjects"),
		map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{ref("ExpireAfterDays"), 0}}}})
}

func TestScalerFunction(t *testing.T) {
	tpl := readTemplate(t)
	f := resource(t, tpl, "ScalerFunction", "AWS::Serverless::Function")
	eq(t, "Runtime", f["Runtime"], "provided.al2023")
	eq(t, "Handler", f["Handler"], "bootstrap")
	eq(t, "Architectures", f["Architectures"], []any{"arm64"})
	eq(t, "CodeUri", f["CodeUri"], "functions/scaler/")
	eq(t, "BuildMethod", at(tpl, "Resources", "ScalerFunction", "Metadata", "BuildMethod"), "go1.x")
	if to, _ := f["Timeout"].(int); to < 30 || to > 900 {
		t.Errorf("Timeout %v, want 30..900 s (the handler loops until near it)", f["Timeout"])
	}
	var schedules []any
	for _, ev := range at(f, "Events").(map[string]any) {
		if at(ev, "Type") == "Schedule" {
			schedules = append(schedules, at(ev, "Properties", "Schedule"))
		}
	}
	eq(t, "schedules", schedules, []any{"rate(1 minute)"})
	// The env the handler needs is all there, and the tag matches the launch
	// template's and the IAM conditions'.
	env, _ := at(f, "Environment", "Variables").(map[string]any)
	for _, k := range []string{scalerfn.EnvQueueURL, scalerfn.EnvLaunchTemplateID, scalerfn.EnvTagKey, scalerfn.EnvTagValue,
		scalerfn.EnvMaxInstances, scalerfn.EnvNamespace, scalerfn.EnvInterval, scalerfn.EnvMargin} {
		if _, ok := env[k]; !ok {
			t.Errorf("ScalerFunction env lacks %s", k)
		}
	}
	eq(t, "queue env", env[scalerfn.EnvQueueURL], ref("RequestQueue"))
	eq(t, "launch template env", env[scalerfn.EnvLaunchTemplateID], ref("AppLaunchTemplate"))
	eq(t, "tag key env", env[scalerfn.EnvTagKey], map[string]any{"Fn::FindInMap": []any{"Tier", "Tag", "Key"}})
	eq(t, "tag value env", env[scalerfn.EnvTagValue], ref("AWS::StackName"))
	eq(t, "max env", env[scalerfn.EnvMaxInstances], ref("MaxAppInstances"))
	eq(t, "MaxAppInstances default", at(tpl, "Parameters", "MaxAppInstances", "Default"), 20)
}

func TestAlarmInvokesScaler(t *testing.T) {
	tpl := readTemplate(t)
	a := resource(t, tpl, "RequestBacklogAlarm", "AWS::CloudWatch::Alarm")
	eq(t, "alarm metric", a["MetricName"], "ApproximateNumberOfMessagesVisible")
	eq(t, "alarm namespace", a["Namespace"], "AWS/SQS")
	eq(t, "alarm queue", at(a, "Dimensions", 0, "Value"), getAtt("RequestQueue", "QueueName"))
	eq(t, "AlarmActions", a["AlarmActions"], []any{getAtt("ScalerFunction", "Arn")})
	eq(t, "OKActions", a["OKActions"], []any{getAtt("ScalerFunction", "Arn")})
	p := resource(t, tpl, "ScalerAlarmPermission", "AWS::Lambda::Permission")
	eq(t, "permission principal", p["Principal"], "lambda.alarms.cloudwatch.amazonaws.com")
	eq(t, "permission source", p["SourceArn"], getAtt("RequestBacklogAlarm", "Arn"))
	eq(t, "permission function", p["FunctionName"], getAtt("ScalerFunction", "Arn"))
	eq(t, "permission action", p["Action"], "lambda:InvokeFunction")
	d := resource(t, tpl, "RequestDLQAlarm", "AWS::CloudWatch::Alarm")
	eq(t, "DLQ alarm queue", at(d, "Dimensions", 0, "Value"), getAtt("RequestDLQ", "QueueName"))
}

// render substitutes dummy values for a user-data Sub, as CloudFormation would.
func render(s string) string {
	s = regexp.MustCompile(`\$\{!([^}]*)\}`).ReplaceAllString(s, "\x00$1\x01")
	s = subVar.ReplaceAllString(s, "value")
	return strings.NewReplacer("\x00", "${", "\x01", "}").Replace(s)
}

func TestUserDataIsValidShell(t *testing.T) {
	tpl := readTemplate(t)
	for _, name := range []string{"AppLaunchTemplate", "WebLaunchTemplate"} {
		ud, _ := at(resource(t, tpl, name, "AWS::EC2::LaunchTemplate"), "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub", 0).(string)
		if !strings.HasPrefix(ud, "#!/bin/bash\n") {
			t.Fatalf("%s user data does not start with #!/bin/bash", name)
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(render(ud))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s user data: bash -n: %v\n%s", name, err, out)
		}
	}
}

func TestLaunchTemplates(t *testing.T) {
	tpl := readTemplate(t)
	for _, name := range []string{"AppLaunchTemplate", "WebLaunchTemplate"} {
		d := at(resource(t, tpl, name, "AWS::EC2::LaunchTemplate"), "LaunchTemplateData")
		eq(t, name+" HttpTokens", at(d, "MetadataOptions", "HttpTokens"), "required")
		eq(t, name+" AMI", at(d, "ImageId"), map[string]any{"Fn::If": []any{"IsArm64", ref("Arm64AmiId"), ref("X86AmiId")}})
	}
	app := at(resource(t, tpl, "AppLaunchTemplate", "AWS::EC2::LaunchTemplate"), "LaunchTemplateData")
	eq(t, "shutdown behaviour", at(app, "InstanceInitiatedShutdownBehavior"), "stop")
	eq(t, "app instance tag key", at(app, "TagSpecifications", 0, "Tags", 0, "Key"), map[string]any{"Fn::FindInMap": []any{"Tier", "Tag", "Key"}})
	eq(t, "app instance tag value", at(app, "TagSpecifications", 0, "Tags", 0, "Value"), ref("AWS::StackName"))
	ud, _ := at(app, "UserData", "Fn::Base64", "Fn::Sub", 0).(string)
	for _, want := range []string{"systemctl enable facefleet-worker.service", "systemctl start --no-block facefleet-worker.service", "TimeoutStopSec=${DrainSeconds}", "SuccessAction=poweroff", "aws s3 cp",
		// The app role has no ec2:StopInstances: the worker exits and systemd powers off.
		"-self-stop none", "-idle-timeout ${IdleTimeoutSeconds}s", "-min-lifetime ${MinLifetimeSeconds}s"} {
		if !strings.Contains(ud, want) {
			t.Errorf("app user data lacks %q", want)
		}
	}
	eq(t, "x86 AMI default", at(tpl, "Parameters", "X86AmiId", "Default"), "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
	eq(t, "x86 AMI type", at(tpl, "Parameters", "X86AmiId", "Type"), "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>")
	eq(t, "Architecture", at(tpl, "Parameters", "Architecture", "AllowedValues"), []any{"x86_64", "arm64"})
	ingress := at(resource(t, tpl, "WebSecurityGroup", "AWS::EC2::SecurityGroup"), "SecurityGroupIngress", "Fn::If", 2, 0)
	eq(t, "web port", at(ingress, "FromPort"), 8000)
	eq(t, "web cidr", at(ingress, "CidrIp"), ref("AllowedCidr"))
}

// statements returns the IAM statements of a role's inline policies or a SAM
// function's Policies.
func statements(v any) []map[string]any {
	var out []map[string]any
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			if _, ok := x["Effect"]; ok {
				out = append(out, x)
				return
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

func actions(s map[string]any) []string {
	switch a := s["Action"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, e := range a {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

func has(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func TestScalerIAMIsTagScoped(t *testing.T) {
	tpl := readTemplate(t)
	key := tagKey(t, tpl)
	st := statements(at(resource(t, tpl, "ScalerFunction", "AWS::Serverless::Function"), "Policies"))
	if len(st) == 0 {
		t.Fatal("scaler has no policy statements")
	}
	seen := map[string]bool{}
	for _, s := range st {
		acts := actions(s)
		cond := at(s, "Condition", "StringEquals")
		for _, a := range acts {
			seen[a] = true
			switch {
			case a == "*" || strings.HasSuffix(a, ":*") || a == "ec2:TerminateInstances":
				t.Errorf("scaler granted %s", a)
			case a == "ec2:StartInstances" || a == "ec2:StopInstances":
				eq(t, a+" condition", at(cond, "aws:ResourceTag/"+key), ref("AWS::StackName"))
			case a == "ec2:CreateTags":
				eq(t, "CreateTags on create only", at(cond, "ec2:CreateAction"), "RunInstances")
				eq(t, "CreateTags request tag", at(cond, "aws:RequestTag/"+key), ref("AWS::StackName"))
			case a == "iam:PassRole":
				eq(t, "PassRole resource", s["Resource"], getAtt("AppRole", "Arn"))
			case a == "cloudwatch:PutMetricData":
				eq(t, "metrics namespace", at(cond, "cloudwatch:namespace"), ref("MetricsNamespace"))
			case a == "ec2:RunInstances":
				res := fmt.Sprint(s["Resource"])
				if strings.Contains(res, ":instance/") {
					eq(t, "RunInstances instance request tag", at(cond, "aws:RequestTag/"+key), ref("AWS::StackName"))
				}
			case a == "sqs:GetQueueAttributes":
				eq(t, "queue attributes resource", s["Resource"], getAtt("RequestQueue", "Arn"))
			}
		}
	}
	for _, a := range []string{"sqs:GetQueueAttributes", "ec2:DescribeInstances", "ec2:StartInstances", "ec2:StopInstances",
		"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "cloudwatch:PutMetricData"} {
		if !seen[a] {
			t.Errorf("scaler lacks %s", a)
		}
	}
}

func TestTierRolesAreConverse(t *testing.T) {
	tpl := readTemplate(t)
	grants := func(role string) map[string][]string { // resource expr -> actions
		out := map[string][]string{}
		for _, s := range statements(at(resource(t, tpl, role, "AWS::IAM::Role"), "Policies")) {
			r := fmt.Sprint(s["Resource"])
			out[r] = append(out[r], actions(s)...)
		}
		return out
	}
	find := func(g map[string][]string, frag string) []string {
		var out []string
		for r, a := range g {
			if strings.Contains(r, frag) {
				out = append(out, a...)
			}
		}
		return out
	}
	web, app := grants("WebRole"), grants("AppRole")
	for _, c := range []struct {
		g          map[string][]string
		role, frag string
		want, not  []string
	}{
		{web, "web", "InputBucket", []string{"s3:PutObject", "s3:DeleteObject"}, []string{"s3:GetObject"}},
		{web, "web", "OutputBucket", []string{"s3:GetObject", "s3:ListBucket"}, nil},
		{web, "web", "RequestQueue", []string{"sqs:SendMessage"}, []string{"sqs:ReceiveMessage", "sqs:DeleteMessage"}},
		{web, "web", "ResponseQueue", []string{"sqs:ReceiveMessage", "sqs:DeleteMessage"}, []string{"sqs:SendMessage"}},
		{web, "web", "RequestDLQ", []string{"sqs:ReceiveMessage", "sqs:DeleteMessage"}, []string{"sqs:SendMessage"}},
		{app, "app", "InputBucket", []string{"s3:GetObject"}, []string{"s3:PutObject"}},
		{app, "app", "OutputBucket", []string{"s3:PutObject", "s3:GetObject"}, nil},
		{app, "app", "RequestQueue", []string{"sqs:ReceiveMessage", "sqs:DeleteMessage"}, []string{"sqs:SendMessage"}},
		{app, "app", "ResponseQueue", []string{"sqs:SendMessage"}, []string{"sqs:ReceiveMessage", "sqs:DeleteMessage"}},
	} {
		got := find(c.g, c.frag)
		for _, a := range c.want {
			if !has(got, a) {
				t.Errorf("%s tier lacks %s on %s", c.role, a, c.frag)
			}
		}
		for _, a := range c.not {
			if has(got, a) {
				t.Errorf("%s tier has %s on %s", c.role, a, c.frag)
			}
		}
	}
	for name, g := range map[string]map[string][]string{"web": web, "app": app} {
		for r, acts := range g {
			for _, a := range acts {
				// The web tier may only look at the fleet (for /v1/status).
				if name == "web" && a == "ec2:DescribeInstances" {
					continue
				}
				if strings.HasPrefix(a, "ec2:") || strings.HasPrefix(a, "iam:") || strings.HasSuffix(a, ":*") {
					t.Errorf("%s tier role grants %s on %s", name, a, r)
				}
			}
		}
	}
	if len(find(app, "RequestDLQ")) != 0 {
		t.Error("app tier may touch the request DLQ")
	}
	// The web tier writes outputs only under gallery/ and failed/; workers may
	// never write the gallery.
	for r, acts := range web {
		if strings.Contains(r, "OutputBucket") && has(acts, "s3:PutObject") &&
			(strings.Contains(r, "OutputBucket.Arn}/*") || !strings.Contains(r, "/gallery/") && !strings.Contains(r, "/failed/")) {
			t.Errorf("web tier may put anywhere in the output bucket: %s", r)
		}
	}
	for r, acts := range app {
		if strings.Contains(r, "OutputBucket") && has(acts, "s3:GetObject") && !strings.Contains(r, "/gallery/") {
			t.Errorf("app tier may read outputs other than the gallery: %s", r)
		}
	}
	var denied, keysDenied bool
	for _, s := range statements(at(resource(t, tpl, "AppRole", "AWS::IAM::Role"), "Policies")) {
		if s["Effect"] == "Deny" && has(actions(s), "s3:PutObject") && strings.Contains(fmt.Sprint(s["Resource"]), "/gallery/*") {
			denied = true
		}
		if s["Effect"] == "Deny" && has(actions(s), "s3:PutObject") && has(actions(s), "s3:DeleteObject") && strings.Contains(fmt.Sprint(s["Resource"]), "/auth/*") {
			keysDenied = true
		}
	}
	if !denied {
		t.Error("app tier is not denied writing the gallery")
	}
	if !keysDenied {
		t.Error("app tier is not denied writing API keys (auth/*): a worker could mint an admin key")
	}
}
