package template_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/overflowfn"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/internal/settings"
)

// TestOverflowFunction: the overflow Lambda is packaged by the Makefile target
// sam build runs, on the architecture of the ONNX Runtime library it carries,
// sized and limited by documented parameters, configured only with settings
// the overflow reads, and the scaler is told its name and concurrency.
func TestOverflowFunction(t *testing.T) {
	tpl := readTemplate(t)
	f := resource(t, tpl, "OverflowFunction", "AWS::Serverless::Function")
	eq(t, "Runtime", f["Runtime"], "provided.al2023")
	eq(t, "Handler", f["Handler"], "bootstrap")
	// build-OverflowFunction copies the x64 libonnxruntime and builds for amd64.
	eq(t, "Architectures", f["Architectures"], []any{"x86_64"})
	eq(t, "CodeUri", f["CodeUri"], ".")
	eq(t, "BuildMethod", at(tpl, "Resources", "OverflowFunction", "Metadata", "BuildMethod"), "makefile")
	mk, err := os.ReadFile(filepath.Join(root(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`(?ms)^build-OverflowFunction:.*?\n\n`).Find(mk)
	for _, want := range []string{"GOARCH=amd64", "CGO_ENABLED=1", "./functions/overflow", "$(ARTIFACTS_DIR)/bootstrap",
		"linux/x64/libonnxruntime.so.1 $(ARTIFACTS_DIR)/" + filepath.Dir(overflowfn.ORTLibPath),
		"$(ARTIFACTS_DIR)/" + overflowfn.ModelsDir, "$(LAMBDA_UNZIPPED_MAX)"} {
		if !strings.Contains(string(target), want) {
			t.Errorf("Makefile's build-OverflowFunction lacks %q:\n%s", want, target)
		}
	}
	eq(t, "MemorySize", f["MemorySize"], ref("OverflowMemorySize"))
	eq(t, "ReservedConcurrentExecutions", f["ReservedConcurrentExecutions"], ref("OverflowReservedConcurrency"))
	for _, p := range []string{"OverflowMemorySize", "OverflowReservedConcurrency"} {
		if d, _ := at(tpl, "Parameters", p, "Description").(string); len(d) < 40 || at(tpl, "Parameters", p, "Default") == nil {
			t.Errorf("parameter %s needs a default and a description", p)
		}
	}
	eq(t, "EventInvokeConfig", f["EventInvokeConfig"], map[string]any{"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60})
	timeout, _ := f["Timeout"].(int)
	// The scaler ignores markers older than the timeout plus 10 s.
	eq(t, "Timeout", time.Duration(timeout)*time.Second, scalerfn.OverflowTimeout)
	env, _ := at(f, "Environment", "Variables").(map[string]any)
	for k, v := range env {
		s, ok := settingByEnv(k)
		if !ok || !s.Uses(settings.Overflow) {
			t.Errorf("OverflowFunction sets %s, which the overflow does not read", k)
			continue
		}
		if str, ok := v.(string); ok && s.Kind == settings.Duration {
			if _, err := time.ParseDuration(str); err != nil {
				t.Errorf("%s=%q: %v", k, str, err)
			}
		}
	}
	margin, _ := time.ParseDuration(env["FACEFLEET_OVERFLOW_MARGIN"].(string))
	wait, _ := time.ParseDuration(env["FACEFLEET_WORKER_WAIT"].(string))
	if margin <= wait || time.Duration(timeout)*time.Second <= 2*margin {
		t.Errorf("margin %v, worker wait %v, timeout %d s: want wait < margin < timeout/2", margin, wait, timeout)
	}
	for _, s := range settings.For(settings.Overflow) {
		if slices.Contains(s.Required, settings.Overflow) {
			if _, ok := env[s.Env]; !ok {
				t.Errorf("OverflowFunction lacks the required %s", s.Env)
			}
		}
	}
	senv, _ := at(resource(t, tpl, "ScalerFunction", "AWS::Serverless::Function"), "Environment", "Variables").(map[string]any)
	eq(t, "scaler's overflow function", senv["FACEFLEET_OVERFLOW_FUNCTION"],
		map[string]any{"Fn::If": []any{"HasOverflow", getAtt("OverflowFunction", "Arn"), ""}})
	eq(t, "scaler's overflow max", senv["FACEFLEET_OVERFLOW_MAX"],
		map[string]any{"Fn::If": []any{"HasOverflow", ref("OverflowReservedConcurrency"), ref("AWS::NoValue")}})
}

func settingByEnv(env string) (settings.Setting, bool) {
	for _, s := range settings.All() {
		if s.Env == env {
			return s, true
		}
	}
	return settings.Setting{}, false
}
