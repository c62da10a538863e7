package lambdatest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/facefleet/facefleet/internal/metrics/cloudwatchtest"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/internal/testenv"
)

// envJSON reads events/env.json, the --env-vars file of
// `sam local invoke ScalerFunction -e events/<event>.json --env-vars events/env.json`.
func envJSON(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "events", "env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]map[string]string
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("events/env.json: %v", err)
	}
	if len(f) != 1 || f["ScalerFunction"] == nil {
		t.Fatalf("events/env.json must hold exactly {\"ScalerFunction\": {...}}, has %d keys", len(f))
	}
	return f["ScalerFunction"]
}

// templateEnvKeys lists the variables template.yaml sets on ScalerFunction.
func templateEnvKeys(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := doc.Content[0]
	for _, k := range []string{"Resources", "ScalerFunction", "Properties", "Environment", "Variables"} {
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			t.Fatalf("template.yaml has no %s under the path to ScalerFunction's variables", k)
		}
		n = next
	}
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	sort.Strings(keys)
	return keys
}

// TestEnvJSONCoversTheTemplate: sam local resolves a Ref to a resource as the
// logical id ("RequestQueue"), which the scaler rejects, so env.json must
// override every variable the template sets, and nothing else.
func TestEnvJSONCoversTheTemplate(t *testing.T) {
	env := envJSON(t)
	var keys []string
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := templateEnvKeys(t); strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("events/env.json sets %v, template.yaml sets %v", keys, want)
	}
	if _, err := scalerfn.ConfigFromEnv(func(k string) string { return env[k] }); err != nil {
		t.Errorf("events/env.json: %v", err)
	}
}

// TestSamLocalInvokeEveryEvent runs the bootstrap under RIE with exactly the
// variables of events/env.json (plus endpoint overrides pointing the AWS
// clients at loopback fakes, where sam local would reach your account) and
// every event in events/.
func TestSamLocalInvokeEveryEvent(t *testing.T) {
	vars := envJSON(t)
	e := &scalerEnv{sqs: &fakeSQS{}, ec2: newFakeEC2(vars[scalerfn.EnvTagKey], vars[scalerfn.EnvTagValue], "running"), cw: cloudwatchtest.New(t)}
	env := map[string]string{
		"AWS_ENDPOINT_URL_SQS":        serve(t, e.sqs),
		"AWS_ENDPOINT_URL_EC2":        serve(t, e.ec2),
		"AWS_ENDPOINT_URL_CLOUDWATCH": e.cw.URL,
	}
	for k, v := range vars {
		env[k] = v
	}
	// A 5 s timeout less the file's 3 s margin leaves one step per invocation.
	e.fn = Start(t, Options{Timeout: 5 * time.Second, Env: env})
	files, err := filepath.Glob(filepath.Join(testenv.Root(), "events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	invoked := 0
	for _, path := range files {
		name := filepath.Base(path)
		if name == "env.json" {
			continue
		}
		invoked++
		t.Run(name, func(t *testing.T) {
			puts := len(e.cw.Dimensions())
			res, resp := e.invoke(t, event(t, name))
			if name == "malformed.json" {
				if resp.ErrorType != "EventError" {
					t.Errorf("malformed event: %s %q, want an EventError", resp.ErrorType, resp.ErrorMessage)
				}
				return
			}
			if resp.ErrorType != "" || res.Failed != 0 || res.Steps < 1 {
				t.Fatalf("%s %q, result %+v\n%s", resp.ErrorType, resp.ErrorMessage, res, e.fn.Logs())
			}
			dims := e.cw.Dimensions()
			if len(dims) <= puts {
				t.Fatal("no metrics published")
			}
			for _, d := range dims[puts:] {
				if d[scalerfn.DimensionStack] != vars[scalerfn.EnvTagValue] {
					t.Errorf("metric dimensions %v, want %s=%s", d, scalerfn.DimensionStack, vars[scalerfn.EnvTagValue])
				}
			}
		})
	}
	if invoked < 5 {
		t.Errorf("only %d events in events/", invoked)
	}
	if ns, _, _ := e.cw.Last(scalerfn.MetricBacklog); ns != vars[scalerfn.EnvNamespace] {
		t.Errorf("namespace %q, want env.json's %q", ns, vars[scalerfn.EnvNamespace])
	}
}
