package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/webtier"
)

// Backend is what the tiers run on: the in-process adapters (memqueue, fileblob,
// localfleet; see New) or the AWS ones (sqsqueue, s3blob, ec2fleet; see OpenAWS).
// Both modes build their tiers from a Backend with the same two functions,
// NewWebTier and NewWorker, so the tiers cannot differ by mode.
type Backend struct {
	Requests, Responses queue.Queue
	// RequestDLQ is the request queue's dead-letter queue (optional: the web tier
	// then answers dead-lettered requests at once).
	RequestDLQ      queue.Queue
	Inputs, Outputs blob.Store
	// Fleet, when set, is reported on /v1/status and /metrics.
	Fleet fleet.Fleet
	// Nudge and Decisions connect the web tier to an in-process scaler (optional).
	Nudge     func()
	Decisions func() []scaling.Decision
	// DecisionLog reads a scaler that runs elsewhere (AWS: the scaler Lambda's
	// decisionlog object); used when Decisions is nil.
	DecisionLog func(context.Context) ([]scaling.Decision, error)
	// ReplyTo is the address of Responses that every request names, and
	// ReplyQueue resolves other web tiers' addresses (both optional: a single
	// web tier works without them; see webtier.Options).
	ReplyTo    string
	ReplyQueue func(addr string) (queue.Queue, error)
	// QueueVisibility and QueueMaxReceives are the request queue's own
	// visibility timeout and redrive count when read from it (AWS); they win
	// over Tiers' values, so the timeouts follow the queue.
	QueueVisibility  time.Duration
	QueueMaxReceives int
	// Gallery, when set, is one shared gallery for every tier built on b (the
	// embedded service: one copy in memory for the web tier and all workers).
	// Nil: each tier opens its own from Outputs (AWS: one per process).
	Gallery *gallery.Store
}

// Tiers configures both tiers; zero values take the tiers' defaults.
type Tiers struct {
	GalleryPrefix string // in the output store (default settings.DefaultGalleryPrefix)

	// Web tier.
	Limits      webtier.Limits
	MaxReceives int
	PollWait    time.Duration
	StatusTTL   time.Duration
	Auth        webtier.AuthOptions // who may call what (auth.go)

	// App tier.
	Analyzer          apptier.Analyzer
	Threshold         float64
	GalleryCheckEvery time.Duration
	WorkerWait        time.Duration
	MaxTails          int // results stored in the background per worker (default 4)
	// IdleTimeout: a worker with no work this long returns (0: never).
	IdleTimeout       time.Duration
	MinLifetime       time.Duration
	VisibilityTimeout time.Duration
	RetryBackoff      time.Duration

	Logger *slog.Logger
}

// TiersFromSettings takes the tiers' configuration from a command's resolved
// settings; settings the command does not read keep their zero value.
func TiersFromSettings(v *settings.Values) Tiers {
	t := Tiers{GalleryPrefix: settings.DefaultGalleryPrefix}
	str := func(name string, dst *string) {
		if v.Has(name) {
			*dst = v.String(name)
		}
	}
	num := func(name string, dst *int) {
		if v.Has(name) {
			*dst = v.Int(name)
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v.Has(name) {
			*dst = v.Duration(name)
		}
	}
	str(settings.GalleryPrefix, &t.GalleryPrefix)
	num(settings.MaxBody, &t.Limits.MaxBodyBytes)
	num(settings.MaxPixels, &t.Limits.MaxPixels)
	num(settings.MaxPending, &t.Limits.MaxPending)
	if v.Has(settings.MaxInflightBytes) {
		t.Limits.MaxInflightBytes = int64(v.Int(settings.MaxInflightBytes))
	}
	dur(settings.ClientCheckEvery, &t.Limits.ClientCheckEvery)
	dur(settings.RequestTimeout, &t.Limits.RequestTimeout)
	num(settings.MaxReceives, &t.MaxReceives)
	dur(settings.PollWait, &t.PollWait)
	dur(settings.StatusTTL, &t.StatusTTL)
	if v.Has(settings.KeyRate) {
		t.Auth = authFromSettings(v)
	}
	if v.Has(settings.Threshold) {
		t.Threshold = v.Float(settings.Threshold)
	}
	dur(settings.WorkerWait, &t.WorkerWait)
	num(settings.MaxTails, &t.MaxTails)
	dur(settings.IdleTimeout, &t.IdleTimeout)
	dur(settings.MinLifetime, &t.MinLifetime)
	dur(settings.VisibilityTimeout, &t.VisibilityTimeout)
	return t
}

func (t Tiers) logger() *slog.Logger {
	if t.Logger == nil {
		return slog.Default()
	}
	return t.Logger
}

// queueSettings are the request queue's visibility and redrive count: the
// queue's own when b read them, else t's.
func queueSettings(b Backend, t Tiers) (time.Duration, int) {
	vis, n := t.VisibilityTimeout, t.MaxReceives
	if b.QueueVisibility > 0 {
		vis = b.QueueVisibility
	}
	if b.QueueMaxReceives > 0 {
		n = b.QueueMaxReceives
	}
	return vis, n
}

// NewWebTier builds the web tier on b. Its request timeout, when not set, is
// derived from the request queue (webtier.MinRequestTimeout), and a shorter one
// is refused.
func NewWebTier(b Backend, t Tiers) (*webtier.Server, error) {
	vis, maxReceives := queueSettings(b, t)
	return webtier.New(webtier.Options{
		Requests: b.Requests, Responses: b.Responses, RequestDLQ: b.RequestDLQ,
		Inputs: b.Inputs, Outputs: b.Outputs, Gallery: b.Gallery, GalleryPrefix: t.GalleryPrefix,
		ReplyTo: b.ReplyTo, ReplyQueue: b.ReplyQueue,
		Limits: t.Limits, Auth: t.Auth, Threshold: t.Threshold, MaxReceives: maxReceives, Visibility: vis, PollWait: t.PollWait, StatusTTL: t.StatusTTL,
		Nudge: b.Nudge, Fleet: b.Fleet, Decisions: b.Decisions, DecisionLog: b.DecisionLog, Logger: t.logger(),
	})
}

// NewWorker builds one app-tier worker on b.
func NewWorker(b Backend, t Tiers, id string) (*apptier.Worker, error) {
	if t.Analyzer == nil {
		return nil, errors.New("service: an Analyzer (the engine) is required for workers")
	}
	vis, _ := queueSettings(b, t)
	return apptier.New(apptier.Options{
		ID: id, Requests: b.Requests, Responses: b.Responses, ReplyQueue: b.ReplyQueue, Inputs: b.Inputs, Outputs: b.Outputs,
		Analyzer: t.Analyzer, Gallery: b.Gallery, GalleryPrefix: t.GalleryPrefix, Threshold: t.Threshold,
		GalleryCheckEvery: t.GalleryCheckEvery, WaitTime: t.WorkerWait, IdleTimeout: t.IdleTimeout, MinLifetime: t.MinLifetime,
		VisibilityTimeout: vis, RetryBackoff: t.RetryBackoff, MaxTails: t.MaxTails, Logger: t.logger().With("component", "apptier"),
	})
}
