package cloude2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/decisionlog"
	"github.com/facefleet/facefleet/internal/lambdatest"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// TestCloudE2EMoto is `make e2e`: the AWS deployment on loopback against moto
// with IAM enforced. Queues, buckets and the app launch template are created as
// an admin; the web tier, every app-tier process and the scaler Lambda (under
// the Runtime Interface Emulator) run under their own IAM users, whose policies
// are template.yaml's WebRole, AppRole and ScalerFunction policies. moto's
// instances are bare records, so a "hypervisor" here starts an apptier process
// for each running instance of the stack's pool, stops it when the instance
// stops, and powers the instance off (StopInstances, as the admin: moto cannot
// model an OS-initiated poweroff) when its worker exits idle, as the template's
// systemd unit does. Then deploy/smoke.sh, the script a user runs after
// `sam deploy`, runs against this rig with the stack outputs given by
// environment. The last line says iam=enforced once a user without the policy
// has been refused again at the end.
func TestCloudE2EMoto(t *testing.T) {
	if testing.Short() {
		t.Skip("the moto e2e runs real processes and the real engine; skipped with -short")
	}
	m := awstest.NeedMoto(t, moto)
	models, ortLib := testenv.Models(t), testenv.ORTLib(t)
	faces := testenv.Shared(t, "faces")
	testenv.Tool(t, "aws", "install the AWS CLI v2 (deploy/smoke.sh needs it)")
	bin := testenv.Facefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	st := m.NewStack(awstest.Unique(t, "e2e")[:12])
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	plane, err := awstest.CreateDataPlane(ctx, admin, st)
	if err != nil {
		t.Fatal(err)
	}
	reqQ, respQ := plane.Requests, plane.Responses
	imgs, err := admin.EC2().DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("moto has no AMI: %v", err)
	}
	lt, err := admin.EC2().CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(st.Name + "-app"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: imgs.Images[0].ImageId, InstanceType: ec2types.InstanceTypeC7iLarge},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Refs["AppLaunchTemplate"] = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	creds := map[string]awstest.Creds{}
	for tier := range awstest.Tiers {
		if creds[tier], err = m.TierUser(ctx, tier, st); err != nil {
			t.Fatal(err)
		}
	}
	const tagKey = "facefleet-app" // template.yaml Mappings Tier.Tag.Key
	common := []string{
		"FACEFLEET_S3_PATH_STYLE=1",
		"FACEFLEET_MODELS=" + models, "FACEFLEET_ORT_LIB=" + ortLib,
		"FACEFLEET_REQUEST_QUEUE_URL=" + reqQ.URL, "FACEFLEET_RESPONSE_QUEUE_URL=" + respQ.URL,
		"FACEFLEET_REQUEST_DLQ_URL=" + reqQ.DLQURL,
		"FACEFLEET_INPUT_BUCKET=" + st.BucketName("InputBucket"), "FACEFLEET_OUTPUT_BUCKET=" + st.BucketName("OutputBucket"),
		"FACEFLEET_APP_TAG_KEY=" + tagKey, "FACEFLEET_APP_TAG_VALUE=" + st.Name,
	}
	env := func(tier string) []string {
		return append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, m.EnvFor(creds[tier])...), common...)
	}

	// The hypervisor.
	procs := &workers{bin: bin}
	var (
		poweroffs atomic.Int64
		crashes   atomic.Int64
	)
	hvCtx, stopHV := context.WithCancel(ctx)
	hvDone := make(chan struct{})
	go func() {
		defer close(hvDone)
		for hvCtx.Err() == nil {
			out, err := admin.EC2().DescribeInstances(hvCtx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
				{Name: aws.String("tag:" + tagKey), Values: []string{st.Name}},
			}})
			if err == nil {
				for _, r := range out.Reservations {
					for _, in := range r.Instances {
						id, state := aws.ToString(in.InstanceId), in.State.Name
						p := procs.of(id)
						exited := false
						if p != nil {
							select {
							case <-p.done:
								exited = true
							default:
							}
						}
						switch {
						case state == ec2types.InstanceStateNameRunning && p == nil:
							procs.boot(t, id, env("app"), "-self-stop", "none", "-idle-timeout", "3s", "-min-lifetime", "0s",
								"-worker-wait", "1s", "-log-level", "warn")
						case state == ec2types.InstanceStateNameRunning && exited:
							// The worker exited: the unit powers the instance off.
							if p.err != nil {
								crashes.Add(1)
							}
							poweroffs.Add(1)
							if _, err := admin.EC2().StopInstances(hvCtx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil && hvCtx.Err() == nil {
								t.Logf("poweroff %s: %v", id, err)
							}
						case state != ec2types.InstanceStateNameRunning && p != nil:
							procs.halt(id, 20*time.Second)
						}
					}
				}
			}
			select {
			case <-hvCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	defer func() {
		stopHV()
		<-hvDone
		procs.stopAll(t, 5*time.Second)
	}()

	// The web tier.
	port := freePort(t)
	startWebTier(t, &procs.procGroup, "webtier", bin, env("web"), port, 60*time.Second, "-log-level", "warn")
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	hc := &http.Client{Timeout: 5 * time.Second}

	// The scaler, under the RIE, as the scaler user.
	sc := creds["scaler"]
	fn := lambdatest.Start(t, lambdatest.Options{
		// Margin 1 s: the last step of a loop keeps 1 s for its AWS calls,
		// which a loaded machine's moto needs (300 ms was cut short in CI).
		Timeout: 4 * time.Second,
		Env: map[string]string{
			"AWS_REGION": awstest.Region, "AWS_ACCESS_KEY_ID": sc.AccessKeyID, "AWS_SECRET_ACCESS_KEY": sc.SecretAccessKey,
			"AWS_ENDPOINT_URL":            m.Endpoint,
			scalerfn.EnvQueueURL:          reqQ.URL,
			scalerfn.EnvLaunchTemplateID:  st.Refs["AppLaunchTemplate"],
			scalerfn.EnvTagKey:            tagKey,
			scalerfn.EnvTagValue:          st.Name,
			scalerfn.EnvMaxInstances:      "3",
			scalerfn.EnvInterval:          "500ms",
			scalerfn.EnvMargin:            "1s",
			"FACEFLEET_METRICS_NAMESPACE": "Facefleet",
			scalerfn.EnvOutputBucket:      st.BucketName("OutputBucket"),
			"FACEFLEET_S3_PATH_STYLE":     "1",
		},
	})
	scalerCtx, stopScaler := context.WithCancel(ctx)
	scalerDone := make(chan struct{})
	var scalerErrs atomic.Int64
	go func() {
		defer close(scalerDone)
		runScaler(scalerCtx, t, &lambdaFront{fn: fn}, &scalerErrs)
	}()
	defer func() { stopScaler(); <-scalerDone }()

	// An admin API key, made by the CLI in the output bucket as the operator
	// would (deploy guide), for the smoke test's enrollments.
	keyCmd := exec.CommandContext(ctx, bin, "keys", "create", "-role", "admin", "-name", "smoke")
	keyCmd.Env = append(os.Environ(), m.EnvFor(m.Admin)...)
	keyCmd.Env = append(keyCmd.Env, "FACEFLEET_S3_PATH_STYLE=1", "FACEFLEET_OUTPUT_BUCKET="+st.BucketName("OutputBucket"))
	keyOut, err := keyCmd.Output()
	if err != nil {
		t.Fatalf("facefleet keys create: %v", err)
	}

	// deploy/smoke.sh, as the operator (the admin), with the outputs by environment.
	smoke := exec.CommandContext(ctx, filepath.Join(testenv.Root(), "deploy", "smoke.sh"), st.Name, faces)
	smoke.Env = append(os.Environ(), m.EnvFor(m.Admin)...)
	smoke.Env = append(smoke.Env, "AWS_DEFAULT_REGION="+awstest.Region, "SMOKE_KEY="+strings.TrimSpace(string(keyOut)),
		"SMOKE_WEB_URL="+url, "SMOKE_REQUEST_QUEUE_URL="+reqQ.URL, "SMOKE_RESPONSE_QUEUE_URL="+respQ.URL,
		"SMOKE_ENDPOINT="+m.Endpoint, "SMOKE_APP_TAG_KEY="+tagKey,
		"SMOKE_N=20", "SMOKE_PARALLEL=10", "SMOKE_SCALE_WAIT=120", "SMOKE_POLL=1", "SMOKE_TIMEOUT=120")
	var so, se bytes.Buffer
	smoke.Stdout, smoke.Stderr = &so, &se
	start := time.Now()
	serr := smoke.Run()
	summary := strings.TrimSpace(so.String())
	if i := strings.LastIndex(summary, "\n"); i >= 0 {
		summary = summary[i+1:]
	}
	if serr != nil {
		t.Fatalf("deploy/smoke.sh failed (%v) after %v:\n%s\n%s", serr, time.Since(start).Round(time.Second), se.String(), so.String())
	}
	if !strings.HasPrefix(summary, "smoke: ") || !strings.HasSuffix(summary, ": ok") {
		t.Fatalf("deploy/smoke.sh summary %q", summary)
	}
	if scalerErrs.Load() > 0 {
		t.Errorf("%d scaler invocations failed", scalerErrs.Load())
	}
	if crashes.Load() > 0 {
		t.Errorf("%d app-tier processes exited with an error (AccessDenied under the AppRole policy?)", crashes.Load())
	}
	// The scaler Lambda's decisions, written under its role to the output
	// bucket's decision log, appear on the web tier's /v1/status as in local
	// mode: the burst made it start instances, with a reason.
	var decided []scaling.Decision
	e2ekit.WaitFor(t, "the scaler's decisions on /v1/status", 30*time.Second, func() bool {
		res, err := hc.Get(url + "/v1/status")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var st struct {
			Decisions []scaling.Decision `json:"decisions"`
			Errors    []string           `json:"errors"`
		}
		if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
			return false
		}
		for _, e := range st.Errors {
			if strings.Contains(e, "scaler decisions") {
				t.Fatalf("/v1/status: %s (the WebRole's s3:GetObject on the decision log?)", e)
			}
		}
		decided = st.Decisions
		for _, d := range st.Decisions {
			if d.Reason == "" || d.Observation.Now.IsZero() {
				t.Fatalf("/v1/status decision without a reason or time: %+v", d)
			}
		}
		return len(st.Decisions) > 0
	})
	outputs, err := s3blob.New(admin.S3(), st.BucketName("OutputBucket"))
	if err != nil {
		t.Fatal(err)
	}
	if all, err := decisionlog.Read(ctx, outputs); err != nil {
		t.Fatalf("decision log: %v", err)
	} else if started := slices.ContainsFunc(all, func(d scaling.Decision) bool {
		// A launch whose answer came after the step's deadline (moto on a
		// loaded machine) booted an instance the decision cannot count; it
		// says so.
		return d.Start > 0 || strings.Contains(d.Error, "so they may still start")
	}); !started {
		t.Errorf("the decision log (%d decisions) has no start although %d instances booted", len(all), procs.boots.Load())
	}
	if err := m.ProveEnforced(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("e2e: moto %d decisions on /v1/status; %s; %d instance boots, %d worker poweroffs, iam=enforced\n", len(decided), strings.TrimPrefix(summary, "smoke: "), procs.boots.Load(), poweroffs.Load())
}

// TestSmokeScript: deploy/smoke.sh is shellcheck clean and refuses bad usage
// with exit status 2 before touching AWS.
func TestSmokeScript(t *testing.T) {
	script := testenv.File(t, "deploy/smoke.sh")
	t.Run("shellcheck", func(t *testing.T) {
		sc := testenv.Tool(t, "shellcheck", "apt-get install shellcheck (scripts/deps.sh installs it when run as root)")
		if out, err := exec.Command(sc, script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck deploy/smoke.sh: %v\n%s", err, out)
		}
	})
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "usage: deploy/smoke.sh STACK"},
		{[]string{"s", t.TempDir()}, nil, "SMOKE_KEY"},
		{[]string{"s", t.TempDir()}, []string{"SMOKE_KEY=k", "SMOKE_N=ten"}, "SMOKE_N"},
		{[]string{"s", t.TempDir()}, []string{"SMOKE_KEY=k", "SMOKE_NEED_EC2=yes"}, "SMOKE_NEED_EC2"},
		{[]string{"s", filepath.Join(t.TempDir(), "absent")}, []string{"SMOKE_KEY=k"}, "faces folder"},
	} {
		cmd := exec.Command(script, tc.args...)
		cmd.Env = append(os.Environ(), tc.env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("smoke.sh %v %v = %v, %q; want exit 2 naming %q", tc.args, tc.env, err, out, tc.want)
		}
	}
}
