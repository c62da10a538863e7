package template_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/decisionlog"
	"github.com/facefleet/facefleet/internal/scalerfn"
)

// grant is one API permission a tier needs: action on a resource whose
// template expression contains frag.
type grant struct{ action, frag string }

// needs lists the calls each tier's code makes (cmd/facefleet/webtier.go and
// apptier.go through webtier/, apptier/, s3blob, sqsqueue and ec2fleet; the
// scaler through functions/scaler), with what the boot scripts add. Keep it in
// step with the code: TestRolesGrantExactlyWhatTheTiersCall fails both on a
// missing grant (the tier would get 403 on AWS) and on a grant nobody uses.
var needs = map[string][]grant{
	"WebRole": {
		{"s3:PutObject", "${InputBucket.Arn}/*"},                   // upload
		{"s3:DeleteObject", "${InputBucket.Arn}/enroll-*"},         // enrollment uploads
		{"s3:DeleteObject", "${InputBucket.Arn}/detect-*"},         // /v1/detect uploads
		{"s3:DeleteObject", "${InputBucket.Arn}/verify-*"},         // /v1/verify uploads
		{"s3:ListBucket", "InputBucket"},                           // start-up probe (List)
		{"s3:ListBucket", "OutputBucket"},                          // start-up probe; listing the gallery journal
		{"s3:GetObject", "${OutputBucket.Arn}/gallery/*"},          // gallery journal and snapshots
		{"s3:DeleteObject", "${OutputBucket.Arn}/gallery/*"},       // gallery compaction
		{"s3:GetObject", "${OutputBucket.Arn}/auth/keys/*"},        // API key records
		{"s3:GetObject", "${OutputBucket.Arn}/" + decisionlog.Key}, // the scaler's decisions (decisionlog)
		{"s3:PutObject", "${OutputBucket.Arn}/gallery/*"},          // journal entries (If-None-Match), snapshots
		{"s3:PutObject", "${OutputBucket.Arn}/failed/*"},           // dead-letter records
		{"sqs:SendMessage", "RequestQueue"},                        // requests
		{"sqs:GetQueueAttributes", "RequestQueue"},                 // start-up probe, /v1/status
		{"sqs:ReceiveMessage", "ResponseQueue"},                    // answers
		{"sqs:DeleteMessage", "ResponseQueue"},                     //
		{"sqs:GetQueueAttributes", "ResponseQueue"},                //
		{"sqs:ReceiveMessage", "RequestDLQ"},                       // dead-letter reporting
		{"sqs:DeleteMessage", "RequestDLQ"},                        //
		{"sqs:GetQueueAttributes", "RequestDLQ"},                   //
		{"ec2:DescribeInstances", "*"},                             // /v1/status fleet view; is a worker up before a nudge
		{"lambda:InvokeFunction", "ScalerFunction"},                // the scaler nudge (internal/scalernudge)
		{"s3:GetObject", "${Bucket}/${ArtifactsPrefix}*"},          // facefleet-sync (HeadObject, GetObject)
	},
	"AppRole": {
		{"s3:GetObject", "${InputBucket.Arn}/*"},                  // the image
		{"s3:ListBucket", "InputBucket"},                          // start-up probe; vanished input reads 404
		{"s3:ListBucket", "OutputBucket"},                         // start-up probe; listing the gallery journal
		{"s3:PutObject", "${OutputBucket.Arn}/*"},                 // results
		{"s3:GetObject", "${OutputBucket.Arn}/gallery/*"},         // gallery journal and snapshots
		{"sqs:ReceiveMessage", "RequestQueue"},                    //
		{"sqs:DeleteMessage", "RequestQueue"},                     //
		{"sqs:ChangeMessageVisibility", "RequestQueue"},           // extend while busy
		{"sqs:GetQueueAttributes", "RequestQueue"},                // start-up probe
		{"sqs:SendMessage", "ResponseQueue"},                      //
		{"sqs:GetQueueAttributes", "ResponseQueue"},               // start-up probe
		{"s3:GetObject", "${Bucket}/${ArtifactsPrefix}*"},         // facefleet-sync
		{"s3:ListBucket", "arn:${AWS::Partition}:s3:::${Bucket}"}, // aws s3 sync models/
	},
	"ScalerFunction": {
		{"sqs:GetQueueAttributes", "RequestQueue"},
		{"ec2:DescribeInstances", "*"},
		{"ec2:StartInstances", ":instance/*"},
		{"ec2:StopInstances", ":instance/*"},
		{"ec2:RunInstances", ":instance/*"},
		{"ec2:RunInstances", ":volume/*"},
		{"ec2:RunInstances", ":launch-template/${AppLaunchTemplate}"},
		{"ec2:RunInstances", ":network-interface/*"},
		{"ec2:RunInstances", ":security-group/${AppSecurityGroup.GroupId}"},
		{"ec2:RunInstances", ":subnet/*"},
		{"ec2:RunInstances", "::image/*"},
		{"ec2:CreateTags", ":instance/*"},
		{"ec2:CreateTags", ":volume/*"},
		{"iam:PassRole", "AppRole"},
		{"cloudwatch:PutMetricData", "*"},
		{"s3:GetObject", "${OutputBucket.Arn}/" + decisionlog.Key}, // decisionlog read-modify-write
		{"s3:PutObject", "${OutputBucket.Arn}/" + decisionlog.Key},
		{"lambda:InvokeFunction", "OverflowFunction"}, // overflow workers (scalerfn.OverflowInvoker)
		{"s3:ListBucket", "OutputBucket"},             // the running invocations' markers
	},
	// The overflow Lambda (functions/overflow through internal/overflowfn):
	// the app tier's worker path (service.OpenAWS, apptier) plus the fleet
	// listing that tells it EC2 runs; no artefacts (they are in its zip).
	"OverflowFunction": {
		{"s3:GetObject", "${InputBucket.Arn}/*"},                                          // the image
		{"s3:ListBucket", "InputBucket"},                                                  // start-up probe; vanished input reads 404
		{"s3:ListBucket", "OutputBucket"},                                                 // start-up probe; missing gallery reads 404
		{"s3:PutObject", "${OutputBucket.Arn}/*"},                                         // results
		{"s3:GetObject", "${OutputBucket.Arn}/gallery/*"},                                 // gallery (Head and Get)
		{"sqs:ReceiveMessage", "RequestQueue"},                                            //
		{"sqs:DeleteMessage", "RequestQueue"},                                             //
		{"sqs:ChangeMessageVisibility", "RequestQueue"},                                   // extend while busy
		{"sqs:GetQueueAttributes", "RequestQueue"},                                        // start-up probe, visibility and redrive
		{"sqs:SendMessage", "ResponseQueue"},                                              //
		{"sqs:GetQueueAttributes", "ResponseQueue"},                                       // start-up probe
		{"ec2:DescribeInstances", "*"},                                                    // stop once an app-tier instance runs
		{"s3:DeleteObject", "${OutputBucket.Arn}/" + scalerfn.OverflowMarkerPrefix + "*"}, // its marker (put under WriteOutputs)
	},
}

// resources lists a statement's resources as strings (an expression prints as
// Go's %v of the decoded intrinsic).
func resources(s map[string]any) []string {
	switch r := s["Resource"].(type) {
	case []any:
		out := make([]string, 0, len(r))
		for _, e := range r {
			out = append(out, fmt.Sprint(e))
		}
		return out
	default:
		return []string{fmt.Sprint(r)}
	}
}

func TestRolesGrantExactlyWhatTheTiersCall(t *testing.T) {
	tpl := readTemplate(t)
	for role, want := range needs {
		var st []map[string]any
		if strings.HasSuffix(role, "Function") {
			st = statements(at(resource(t, tpl, role, "AWS::Serverless::Function"), "Policies"))
		} else {
			st = statements(at(resource(t, tpl, role, "AWS::IAM::Role"), "Policies"))
		}
		used := map[string]bool{} // "action resource" granted and needed
		for _, g := range want {
			found := false
			for _, s := range st {
				if s["Effect"] != "Allow" || !has(actions(s), g.action) {
					continue
				}
				for _, r := range resources(s) {
					if strings.Contains(r, g.frag) || g.frag == "*" && r == "*" {
						found = true
						used[g.action+" "+r] = true
					}
				}
			}
			if !found {
				t.Errorf("%s: no Allow of %s on a resource matching %q (the tier calls it)", role, g.action, g.frag)
			}
		}
		var extra []string
		for _, s := range st {
			if s["Effect"] != "Allow" {
				continue
			}
			for _, a := range actions(s) {
				for _, r := range resources(s) {
					if !used[a+" "+r] {
						extra = append(extra, fmt.Sprintf("%s on %s (Sid %v)", a, r, s["Sid"]))
					}
				}
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			t.Errorf("%s grants what no tier calls (remove it, or add the call to needs):\n  %s", role, strings.Join(extra, "\n  "))
		}
	}
}

func TestSessionManagerOnBothTiers(t *testing.T) {
	tpl := readTemplate(t)
	want := map[string]any{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}
	for _, role := range []string{"WebRole", "AppRole"} {
		eq(t, role+" managed policies", at(resource(t, tpl, role, "AWS::IAM::Role"), "ManagedPolicyArns"), []any{want})
	}
}

func TestDeadLetterTopicKeyLetsCloudWatchPublish(t *testing.T) {
	tpl := readTemplate(t)
	topic := resource(t, tpl, "DeadLetterTopic", "AWS::SNS::Topic")
	// alias/aws/sns cannot be used by CloudWatch: the alarm mail would never come.
	eq(t, "topic key", topic["KmsMasterKeyId"], getAtt("DeadLetterTopicKey", "Arn"))
	key := resource(t, tpl, "DeadLetterTopicKey", "AWS::KMS::Key")
	eq(t, "key rotation", key["EnableKeyRotation"], true)
	ok := false
	for _, s := range statements(key["KeyPolicy"]) {
		if s["Effect"] == "Allow" && at(s, "Principal", "Service") == "cloudwatch.amazonaws.com" &&
			has(actions(s), "kms:Decrypt") && has(actions(s), "kms:GenerateDataKey*") {
			ok = true
		}
	}
	if !ok {
		t.Error("the key policy does not let cloudwatch.amazonaws.com use the key (kms:Decrypt, kms:GenerateDataKey*)")
	}
	eq(t, "key condition", at(tpl, "Resources", "DeadLetterTopicKey", "Condition"), "HasAlarmEmail")
}

func TestArtefactsBucketHardening(t *testing.T) {
	tpl := readTemplate(t)
	b := resource(t, tpl, "ArtifactsBucket", "AWS::S3::Bucket")
	eq(t, "versioning", at(b, "VersioningConfiguration", "Status"), "Enabled")
	if d, _ := at(b, "LifecycleConfiguration", "Rules", 0, "NoncurrentVersionExpiration", "NoncurrentDays").(int); d < 1 {
		t.Error("the versioned artefacts bucket keeps noncurrent versions for ever")
	}
	for _, name := range []string{"ArtifactsBucketPolicy", "InputBucketPolicy", "OutputBucketPolicy"} {
		p := resource(t, tpl, name, "AWS::S3::BucketPolicy")
		var deny bool
		for _, s := range statements(p["PolicyDocument"]) {
			if s["Effect"] == "Deny" && at(s, "Condition", "Bool", "aws:SecureTransport") == "false" && has(actions(s), "s3:*") {
				deny = true
			}
		}
		if !deny {
			t.Errorf("%s does not deny non-TLS requests", name)
		}
	}
	eq(t, "artefacts policy bucket", at(resource(t, tpl, "ArtifactsBucketPolicy", "AWS::S3::BucketPolicy"), "Bucket"), ref("ArtifactsBucket"))
	eq(t, "artefacts policy condition", at(tpl, "Resources", "ArtifactsBucketPolicy", "Condition"), "CreateArtifactsBucket")
}

// TestWebAddressSurvivesReplacement: a redeploy after a new AL2023 AMI replaces
// the web instance; the Elastic IP keeps WebUrl.
func TestWebAddressSurvivesReplacement(t *testing.T) {
	tpl := readTemplate(t)
	eip := resource(t, tpl, "WebAddress", "AWS::EC2::EIP")
	eq(t, "EIP instance", eip["InstanceId"], ref("WebInstance"))
	eq(t, "EIP domain", eip["Domain"], "vpc")
	url, _ := at(tpl, "Outputs", "WebUrl", "Value", "Fn::If", 2, "Fn::Sub").(string)
	if !strings.Contains(url, "${WebAddress.PublicIp}") {
		t.Errorf("WebUrl %q is not the Elastic IP's", url)
	}
}

// TestSamBuildIsNeverStale: `sam build --cached` hashes only CodeUri
// (functions/scaler/, one main.go), so a change anywhere else in the module
// would deploy a stale scaler.
func TestSamBuildIsNeverStale(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(), "samconfig.toml"))
	if err != nil {
		t.Fatal(err)
	}
	sec := ""
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			sec = l
			continue
		}
		if regexp.MustCompile(`^cached\s*=\s*true`).MatchString(l) {
			t.Errorf("samconfig.toml %s sets cached = true: sam build would reuse a scaler built from an older module", sec)
		}
	}
	mk, err := os.ReadFile(filepath.Join(root(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+.*sam build --no-cached`).Match(mk) {
		t.Error("make sam-build does not pass --no-cached")
	}
}

// TestOptionalHTTPS: with CertificateArn the web tier is reached only through an
// HTTPS load balancer; without it nothing of that exists.
func TestOptionalHTTPS(t *testing.T) {
	tpl := readTemplate(t)
	eq(t, "UseHttps", at(tpl, "Conditions", "UseHttps"),
		map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{ref("CertificateArn"), ""}}}})
	for _, name := range []string{"LoadBalancerSecurityGroup", "WebIngressFromLoadBalancer", "LoadBalancer", "WebTargetGroup", "HttpsListener", "HttpRedirectListener"} {
		eq(t, name+" condition", at(tpl, "Resources", name, "Condition"), "UseHttps")
	}
	l := resource(t, tpl, "HttpsListener", "AWS::ElasticLoadBalancingV2::Listener")
	eq(t, "listener protocol", l["Protocol"], "HTTPS")
	eq(t, "listener certificate", at(l, "Certificates", 0, "CertificateArn"), ref("CertificateArn"))
	if p, _ := l["SslPolicy"].(string); !strings.Contains(p, "TLS13") {
		t.Errorf("SslPolicy %q allows TLS below 1.2", p)
	}
	eq(t, "listener target", at(l, "DefaultActions", 0, "TargetGroupArn"), ref("WebTargetGroup"))
	tg := resource(t, tpl, "WebTargetGroup", "AWS::ElasticLoadBalancingV2::TargetGroup")
	eq(t, "target", at(tg, "Targets", 0, "Id"), ref("WebInstance"))
	eq(t, "target port", at(tg, "Targets", 0, "Port"), 8000)
	eq(t, "health check", tg["HealthCheckPath"], "/healthz")
	r := resource(t, tpl, "HttpRedirectListener", "AWS::ElasticLoadBalancingV2::Listener")
	eq(t, "redirect", at(r, "DefaultActions", 0, "RedirectConfig", "Protocol"), "HTTPS")
	// Port 8000 is open to AllowedCidr only without HTTPS; with it, only to the
	// load balancer.
	ing := at(resource(t, tpl, "WebSecurityGroup", "AWS::EC2::SecurityGroup"), "SecurityGroupIngress", "Fn::If")
	eq(t, "web ingress with HTTPS", at(ing, 1), ref("AWS::NoValue"))
	w := resource(t, tpl, "WebIngressFromLoadBalancer", "AWS::EC2::SecurityGroupIngress")
	eq(t, "web ingress source", w["SourceSecurityGroupId"], getAtt("LoadBalancerSecurityGroup", "GroupId"))
	eq(t, "web ingress port", w["FromPort"], 8000)
	eq(t, "WebUrl", at(tpl, "Outputs", "WebUrl", "Value", "Fn::If", 0), "UseHttps")
	if at(tpl, "Rules", "HttpsNeedsDomainAndSubnets", "Assertions") == nil {
		t.Error("no rule requires WebDomainName and AlbSubnets with CertificateArn")
	}
}
