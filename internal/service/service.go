// Package service wires facefleet's tiers onto a Backend: NewWebTier and
// NewWorker build the same web tier and app-tier workers in both modes.
//
// Embedded mode (New): in-process queues (memqueue), file-backed stores
// (fileblob), a local fleet of worker goroutines (localfleet) sharing one engine,
// and the scaling controller driven by a ticker and nudged when a request arrives
// while no worker is running. `facefleet up`, the end-to-end tests and
// bench-service run this.
//
// AWS mode (OpenAWS): SQS queues, S3 buckets and the EC2 fleet; `facefleet
// webtier` and `facefleet apptier` run one tier each on it, and the scaler
// Lambda drives the fleet.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/localfleet"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/webtier"
)

// GalleryPrefix is where the shared gallery lives in the output store.
const GalleryPrefix = settings.DefaultGalleryPrefix

// Config configures the embedded service. Zero values take the defaults noted.
type Config struct {
	// DataDir holds inputs/ and outputs/ (fileblob stores) unless Inputs and
	// Outputs are given. Inputs are written without fsync: they only matter
	// while their request is queued, and the in-memory queues do not survive a
	// crash either. Outputs are fsynced unless NoSyncOutputs.
	DataDir       string
	NoSyncOutputs bool
	// NoOutputLog syncs each output file and folder instead of acknowledging
	// writes through the output store's write-ahead log (fileblob Options.Log,
	// which holds the folder: one service per data folder). With the log (and
	// for the unsynced inputs) the stores write behind (fileblob
	// Options.WriteBehind): a Put returns before its file exists, and other
	// processes see the file milliseconds later.
	NoOutputLog     bool
	Inputs, Outputs blob.Store
	// Analyzer is the engine shared by every local instance.
	Analyzer apptier.Analyzer
	// Threshold is the match distance threshold (0: the gallery's default).
	Threshold float64

	// MaxInstances caps pending+running instances (default: the core count).
	// Local instances share one engine and this machine's cores, each running
	// one model at a time (intra-op 1), and a worker stores its last result
	// while it analyses the next, so a core per instance keeps every core busy;
	// more instances only time-slice the same cores (slower answers, no more
	// throughput, more memory).
	MaxInstances int
	BootDelay    time.Duration // simulated instance boot time
	// IdleTimeout: an instance with no work for this long stops itself (default
	// 10 s; NeverIdle: instances never stop themselves).
	IdleTimeout time.Duration
	// MinLifetime: an idle instance never stops itself earlier than this after it
	// started (0: no minimum; `facefleet up` defaults to 60 s, EC2's billing minute).
	MinLifetime       time.Duration
	VisibilityTimeout time.Duration // request queue visibility (default 30 s)
	MaxReceives       int           // redrive to the dead-letter queue after this many receives (default 3)
	RetryBackoff      time.Duration // first retry delay after a transient failure (default 1 s)
	WorkerWait        time.Duration // worker long-poll wait (default 5 s)
	MaxTails          int           // results a worker stores in the background (default 4)
	ScaleEvery        time.Duration // scaling controller period (default 1 s)
	// Policy sizes the local fleet (default: backlog-drain for local instances,
	// scaling.Env.Local: one instance per queued request, up to MaxInstances).
	Policy            scaling.Policy
	GalleryCheckEvery time.Duration // workers' gallery ETag check period (default 2 s)
	Limits            webtier.Limits
	StatusTTL         time.Duration       // /v1/status and /metrics snapshot lifetime (default webtier.DefaultStatusTTL)
	Auth              webtier.AuthOptions // who may call what (API keys live in Outputs)
	Logger            *slog.Logger
}

// NeverIdle as Config.IdleTimeout keeps instances running until the service stops.
const NeverIdle time.Duration = -1

// Service is the embedded facefleet.
type Service struct {
	cfg                             Config
	log                             *slog.Logger
	Requests, Responses, DeadLetter *memqueue.Queue
	Inputs, Outputs                 blob.Store
	Fleet                           fleet.Fleet
	Controller                      *scaling.Controller
	// Gallery is the one shared gallery of the web tier and every local worker.
	Gallery *gallery.Store
	Web     *webtier.Server
	local   *localfleet.Fleet
	nudge   chan struct{}
	backend Backend
	tiers   Tiers
	opened  []*fileblob.Store // closed when Serve returns
}

// New builds the service; nothing runs until Serve.
func New(cfg Config) (*Service, error) {
	if cfg.Analyzer == nil {
		return nil, errors.New("service: an Analyzer (the engine) is required")
	}
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = runtime.NumCPU()
	}
	switch {
	case cfg.IdleTimeout == NeverIdle:
		cfg.IdleTimeout = 0 // apptier: 0 is never
	case cfg.IdleTimeout <= 0:
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.VisibilityTimeout <= 0 {
		cfg.VisibilityTimeout = 30 * time.Second
	}
	if cfg.MaxReceives <= 0 {
		cfg.MaxReceives = 3
	}
	if cfg.ScaleEvery <= 0 {
		cfg.ScaleEvery = time.Second
	}
	if cfg.Policy == nil {
		var err error
		if cfg.Policy, err = scaling.NewPolicyIn(scaling.NameBacklogDrain, scaling.Env{Local: true}); err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger, Inputs: cfg.Inputs, Outputs: cfg.Outputs, nudge: make(chan struct{}, 1)}
	var err error
	ok := false
	defer func() {
		if !ok {
			_ = s.closeStores()
		}
	}()
	for _, st := range []struct {
		dst *blob.Store
		sub string
	}{{&s.Inputs, "inputs"}, {&s.Outputs, "outputs"}} {
		if *st.dst != nil {
			continue
		}
		if cfg.DataDir == "" {
			return nil, errors.New("service: DataDir is required unless Inputs and Outputs are given")
		}
		dir := filepath.Join(cfg.DataDir, st.sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("service: create %s: %w", dir, err)
		}
		noSync := st.sub == "inputs" || cfg.NoSyncOutputs
		logged := !noSync && !cfg.NoOutputLog
		// Write-behind where nothing is lost by it: uploads are not durable
		// anyway, and logged results are durable through their records.
		fb, err := fileblob.New(dir, fileblob.Options{NoSync: noSync, Log: logged, WriteBehind: noSync || logged})
		if err != nil {
			return nil, fmt.Errorf("service: %s store: %w", st.sub, err)
		}
		*st.dst = fb
		s.opened = append(s.opened, fb)
	}
	if s.DeadLetter, err = memqueue.New(memqueue.Options{Name: "requests-dlq", MaxMessageSize: protocol.MaxRequestBytes}); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if s.Requests, err = memqueue.New(memqueue.Options{Name: "requests", VisibilityTimeout: cfg.VisibilityTimeout,
		MaxMessageSize: protocol.MaxRequestBytes, DeadLetter: s.DeadLetter, MaxReceiveCount: cfg.MaxReceives}); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if s.Responses, err = memqueue.New(memqueue.Options{Name: "responses", MaxMessageSize: protocol.MaxResponseBytes}); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	// The fleet's own cap counts stopped instances too; the controller's Max
	// caps pending+running, so allow room for a stopped pool beside it.
	lf, err := localfleet.New(localfleet.Options{BootDelay: cfg.BootDelay, Max: 2 * cfg.MaxInstances, Run: s.runInstance,
		Logger: cfg.Logger.With("component", "localfleet")})
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s.Fleet, s.local = lf, lf
	s.Controller = scaling.NewController(scaling.ControllerOptions{Queue: s.Requests, Fleet: s.Fleet, Policy: cfg.Policy,
		Max: cfg.MaxInstances, Logger: cfg.Logger.With("component", "scaler")})
	openCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s.Gallery, err = gallery.OpenStore(openCtx, s.Outputs, GalleryPrefix, gallery.StoreOptions{
		LegacyKey: GalleryPrefix + "gallery.json", Logger: cfg.Logger.With("component", "gallery"),
	})
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s.backend = Backend{
		Requests: s.Requests, Responses: s.Responses, RequestDLQ: s.DeadLetter, Inputs: s.Inputs, Outputs: s.Outputs,
		Fleet: s.Fleet, Nudge: s.Nudge, Decisions: s.Controller.Recent, Gallery: s.Gallery,
	}
	s.tiers = Tiers{
		GalleryPrefix: GalleryPrefix, Limits: cfg.Limits, Auth: cfg.Auth, MaxReceives: cfg.MaxReceives, StatusTTL: cfg.StatusTTL,
		Analyzer: cfg.Analyzer, Threshold: cfg.Threshold, GalleryCheckEvery: cfg.GalleryCheckEvery, WorkerWait: cfg.WorkerWait,
		IdleTimeout: cfg.IdleTimeout, MinLifetime: cfg.MinLifetime, VisibilityTimeout: cfg.VisibilityTimeout,
		RetryBackoff: cfg.RetryBackoff, MaxTails: cfg.MaxTails, Logger: cfg.Logger,
	}
	if s.Web, err = NewWebTier(s.backend, s.tiers); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	ok = true
	return s, nil
}

// runInstance is one local instance: a worker until it is idle or stopped.
func (s *Service) runInstance(ctx context.Context, inst fleet.Instance) error {
	w, err := NewWorker(s.backend, s.tiers, inst.ID)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Nudge asks the scaler to look now (non-blocking; the web tier calls it after
// every enqueue). The scaler acts on it only while the fleet is below
// MaxInstances (pending + running), so a burst grows the fleet as fast as
// requests arrive rather than at the next tick, and once the fleet is full a
// nudge costs one List of the in-process fleet. (An evaluation here reads
// in-memory counts; the AWS web tier's nudge, which invokes a Lambda, is rarer.)
func (s *Service) Nudge() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// SeedGallery merges a gallery file (as written by `facefleet enroll`) into the
// shared gallery: its subjects replace those of the same name, and people
// enrolled through the API since stay enrolled across restarts.
func (s *Service) SeedGallery(ctx context.Context, data []byte) error {
	seed, err := gallery.Unmarshal(data)
	if err != nil {
		return fmt.Errorf("service: seed gallery: %w", err)
	}
	if _, err := s.Gallery.Apply(ctx, gallery.Edit{Op: gallery.OpPut, Faces: seed}); err != nil {
		return fmt.Errorf("service: seed gallery: %w", err)
	}
	return nil
}

// Serve runs everything until ctx is cancelled, then shuts down in order: the web
// tier stops accepting and finishes its callers, the scaler stops, and every
// instance drains (finishes its image) before Serve returns.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	scaleCtx, stopScaler := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.scaleLoop(scaleCtx) })
	err := s.Web.Serve(ctx, ln)
	stopScaler()
	wg.Wait()
	if derr := s.drain(context.WithoutCancel(ctx)); derr != nil && err == nil {
		err = derr
	}
	if cerr := s.closeStores(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// closeStores closes the stores New opened (the output log's last checkpoint
// and its lock); once Serve has returned, or when New fails.
func (s *Service) closeStores() error {
	var errs []error
	for _, st := range s.opened {
		if err := st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("service: closing %s: %w", st.Dir(), err))
		}
	}
	s.opened = nil
	return errors.Join(errs...)
}

func (s *Service) scaleLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ScaleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := s.Controller.Step(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn("scaling step failed", "err", err)
			}
		case <-s.nudge:
			insts, err := s.Fleet.List(ctx)
			if err != nil {
				continue
			}
			if by := fleet.CountByState(insts); by[fleet.Pending]+by[fleet.Running] >= s.cfg.MaxInstances {
				continue
			}
			if _, err := s.Controller.Nudge(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("scaling nudge failed", "err", err)
			}
		}
	}
}

// drain stops every instance (each finishes its image) and waits for them.
func (s *Service) drain(context.Context) error {
	if err := s.local.Close(); err != nil {
		return fmt.Errorf("service: drain: %w", err)
	}
	return nil
}
