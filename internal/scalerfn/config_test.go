package scalerfn

import (
	"github.com/facefleet/facefleet/internal/settings"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	good := map[string]string{
		EnvQueueURL:         "https://sqs.us-east-1.amazonaws.com/123456789012/facefleet-requests",
		EnvLaunchTemplateID: "lt-0123456789abcdef0",
		EnvTagKey:           "facefleet-app",
		EnvTagValue:         "facefleet",
	}
	c, err := ConfigFromEnv(env(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxInstances != 20 || c.Interval != 5*time.Second || c.Margin != 3*time.Second || c.Namespace != "Facefleet" || c.OutputBucket != "" {
		t.Errorf("defaults = %+v", c)
	}
	good[EnvMaxInstances] = "0"
	if c, err = ConfigFromEnv(env(good)); err != nil || c.MaxInstances != DefaultMaxInstances {
		t.Errorf("max instances 0 gave %d, %v; want the default %d", c.MaxInstances, err, DefaultMaxInstances)
	}
	good[EnvMaxInstances], good[EnvInterval], good[EnvMargin], good[EnvNamespace], good[EnvOutputBucket] = "7", "250ms", "1s", "X/Y", "out"
	c, err = ConfigFromEnv(env(good))
	if err != nil || c.MaxInstances != 7 || c.Interval != 250*time.Millisecond || c.Margin != time.Second || c.Namespace != "X/Y" || c.OutputBucket != "out" {
		t.Errorf("got %+v, %v", c, err)
	}

	_, err = ConfigFromEnv(env(map[string]string{EnvQueueURL: "facefleet-requests", EnvMaxInstances: "1001", EnvInterval: "5", EnvMargin: "0s"}))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{EnvQueueURL, EnvLaunchTemplateID, EnvTagKey, EnvTagValue, EnvMaxInstances, EnvInterval, EnvMargin} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

// The names the tests use are the declared settings' variables.
func TestEnvNamesDeclared(t *testing.T) {
	for env, name := range map[string]string{EnvQueueURL: settings.RequestQueueURL, EnvLaunchTemplateID: settings.LaunchTemplateID,
		EnvTagKey: settings.AppTagKey, EnvTagValue: settings.AppTagValue, EnvMaxInstances: settings.MaxInstances,
		EnvNamespace: settings.MetricsNamespace, EnvInterval: settings.StepInterval, EnvMargin: settings.DeadlineMargin,
		EnvOutputBucket: settings.OutputBucket} {
		s, ok := settings.Lookup(name)
		if !ok || s.Env != env || !s.Uses(settings.Scaler) {
			t.Errorf("%s: declared %+v", env, s)
		}
	}
}
