package scalerfn

import (
	"time"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/settings"
)

// Environment variables the template sets on the function. The settings are
// declared in internal/settings (names, defaults, limits); these names are kept
// for the tests that build the function's environment, and a test checks they
// match the declarations.
const (
	EnvQueueURL         = "FACEFLEET_REQUEST_QUEUE_URL"
	EnvLaunchTemplateID = "FACEFLEET_LAUNCH_TEMPLATE_ID"
	EnvTagKey           = "FACEFLEET_APP_TAG_KEY"
	EnvTagValue         = "FACEFLEET_APP_TAG_VALUE"
	EnvMaxInstances     = "FACEFLEET_MAX_INSTANCES"
	EnvNamespace        = "FACEFLEET_METRICS_NAMESPACE"
	EnvInterval         = "FACEFLEET_STEP_INTERVAL"
	EnvMargin           = "FACEFLEET_DEADLINE_MARGIN"
	EnvOutputBucket     = "FACEFLEET_OUTPUT_BUCKET"
	EnvOverflowFunction = "FACEFLEET_OVERFLOW_FUNCTION"
	EnvOverflowMax      = "FACEFLEET_OVERFLOW_MAX"
)

// DefaultMaxInstances is the fleet cap when FACEFLEET_MAX_INSTANCES is 0 or unset.
const DefaultMaxInstances = 20

// Config is the function's configuration.
type Config struct {
	QueueURL         string
	LaunchTemplateID string
	TagKey, TagValue string
	MaxInstances     int
	Namespace        string // CloudWatch namespace for the published metrics
	Interval         time.Duration
	Margin           time.Duration
	// OutputBucket holds the decision log (decisionlog.Key); empty: none.
	OutputBucket string
	// OverflowFunction is the overflow Lambda the policy may invoke while EC2
	// capacity boots (empty: none); OverflowMax its reserved concurrency and
	// OverflowActiveFor how long an invocation counts as running
	// (OverflowOptions).
	OverflowFunction  string
	OverflowMax       int
	OverflowActiveFor time.Duration
	// AWS is the SDK configuration (region, endpoints) from the same environment.
	AWS awsconfig.Options
}

// ConfigFromEnv reads and validates the configuration, reporting every problem at
// once so a misconfigured stack fails its first invoke with one clear message.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := settings.FromEnv(settings.Scaler, getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		QueueURL:         v.String(settings.RequestQueueURL),
		LaunchTemplateID: v.String(settings.LaunchTemplateID),
		TagKey:           v.String(settings.AppTagKey),
		TagValue:         v.String(settings.AppTagValue),
		Namespace:        v.String(settings.MetricsNamespace),
		MaxInstances:     v.Int(settings.MaxInstances),
		Interval:         v.Duration(settings.StepInterval),
		Margin:           v.Duration(settings.DeadlineMargin),
		OutputBucket:     v.String(settings.OutputBucket),
		OverflowFunction: v.String(settings.OverflowFunction),
		OverflowMax:      v.Int(settings.OverflowMax),
		// The scaler reads the declared default when unset.
		OverflowActiveFor: v.Duration(settings.OverflowActiveFor),
		AWS:               awsconfig.FromSettings(v),
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = DefaultMaxInstances
	}
	return c, nil
}
