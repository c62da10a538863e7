package scalerfn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Environment variables the template sets on the function.
const (
	EnvQueueURL         = "FACEFLEET_REQUEST_QUEUE_URL"
	EnvLaunchTemplateID = "FACEFLEET_LAUNCH_TEMPLATE_ID"
	EnvTagKey           = "FACEFLEET_APP_TAG_KEY"
	EnvTagValue         = "FACEFLEET_APP_TAG_VALUE"
	EnvMaxInstances     = "FACEFLEET_MAX_INSTANCES"
	EnvNamespace        = "FACEFLEET_METRICS_NAMESPACE"
	EnvInterval         = "FACEFLEET_STEP_INTERVAL"
	EnvMargin           = "FACEFLEET_DEADLINE_MARGIN"
)

// Limits on the configuration.
const (
	MaxInstancesLimit = 1000
	MinInterval       = 100 * time.Millisecond
	MaxInterval       = time.Minute
	// MinMargin is above 0 because the handler reads a 0 margin as "default":
	// "0s" would silently mean DefaultMargin.
	MinMargin = 100 * time.Millisecond
	MaxMargin = 30 * time.Second
)

// Config is the function's configuration.
type Config struct {
	QueueURL         string
	LaunchTemplateID string
	TagKey, TagValue string
	MaxInstances     int
	Namespace        string // CloudWatch namespace for the published metrics
	Interval         time.Duration
	Margin           time.Duration
}

// ConfigFromEnv reads and validates the configuration, reporting every problem at
// once so a misconfigured stack fails its first invoke with one clear message.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		QueueURL:         strings.TrimSpace(getenv(EnvQueueURL)),
		LaunchTemplateID: strings.TrimSpace(getenv(EnvLaunchTemplateID)),
		TagKey:           strings.TrimSpace(getenv(EnvTagKey)),
		TagValue:         strings.TrimSpace(getenv(EnvTagValue)),
		Namespace:        strings.TrimSpace(getenv(EnvNamespace)),
		MaxInstances:     20,
		Interval:         DefaultInterval,
		Margin:           DefaultMargin,
	}
	var errs []error
	need := func(v, name, what string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set (%s)", name, what))
		}
	}
	need(c.QueueURL, EnvQueueURL, "the request queue's URL")
	need(c.LaunchTemplateID, EnvLaunchTemplateID, "the app tier's launch template id, lt-...")
	need(c.TagKey, EnvTagKey, "the tag key marking app-tier instances")
	need(c.TagValue, EnvTagValue, "the tag value marking app-tier instances")
	if c.QueueURL != "" && !strings.HasPrefix(c.QueueURL, "https://") && !strings.HasPrefix(c.QueueURL, "http://") {
		errs = append(errs, fmt.Errorf("%s %q is not a queue URL", EnvQueueURL, c.QueueURL))
	}
	if c.Namespace == "" {
		c.Namespace = "Facefleet"
	}
	if v := strings.TrimSpace(getenv(EnvMaxInstances)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxInstancesLimit {
			errs = append(errs, fmt.Errorf("%s %q must be an integer in 1..%d", EnvMaxInstances, v, MaxInstancesLimit))
		} else {
			c.MaxInstances = n
		}
	}
	dur := func(name string, dst *time.Duration, lo, hi time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			errs = append(errs, fmt.Errorf("%s %q must be a duration in %v..%v (e.g. 5s)", name, v, lo, hi))
			return
		}
		*dst = d
	}
	dur(EnvInterval, &c.Interval, MinInterval, MaxInterval)
	dur(EnvMargin, &c.Margin, MinMargin, MaxMargin)
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("scaler configuration: %w", err)
	}
	return c, nil
}
