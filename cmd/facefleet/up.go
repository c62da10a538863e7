package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/webtier"
)

// envFlag binds a flag to an environment variable: the variable replaces the
// default, an explicit flag wins over both.
type envFlag struct{ flag, env string }

// applyEnv sets every flag that was not given on the command line from its
// environment variable, if set.
func applyEnv(fs *flag.FlagSet, binds []envFlag) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, b := range binds {
		v, ok := os.LookupEnv(b.env)
		if !ok || given[b.flag] || v == "" {
			continue
		}
		if err := fs.Set(b.flag, v); err != nil {
			return fmt.Errorf("%s=%q (for -%s): %w", b.env, v, b.flag, err)
		}
	}
	return nil
}

// repoDefault returns build/<rel> beside the executable's working directory.
func repoDefault(rel string) string { return filepath.Join("build", rel) }

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "address to listen on (0.0.0.0 to accept other machines)")
	port := fs.Int("port", 8000, "HTTP port")
	data := fs.String("data", "./data", "data folder: inputs/ and outputs/ (the stores; the gallery is outputs/gallery/gallery.json)")
	noSync := fs.Bool("no-sync", false, "write results without fsync (faster; a machine crash may lose the latest results)")
	galleryFile := fs.String("gallery", "", "seed the stored gallery from this file (written by `facefleet enroll`)")
	models := fs.String("models", repoDefault("models"), "folder of the converted .onnx models")
	ortLib := fs.String("ort-lib", repoDefault("lib/libonnxruntime.so.1"), "ONNX Runtime shared library")
	threads := fs.Int("ort-threads", 1, "ONNX Runtime intra-op threads per model run (instances share one engine and run in parallel; keep 1 on small machines)")
	threshold := fs.Float64("threshold", 0, "match distance threshold (0: the gallery's default, 0.6)")
	maxInst := fs.Int("max-instances", 0, "cap on pending+running app-tier instances (goroutines sharing one engine; 0: cores / ort-threads, at least 1)")
	boot := fs.Duration("boot-delay", 0, "simulated instance boot time")
	idle := fs.Duration("idle-timeout", 10*time.Second, "an instance with no work for this long stops itself")
	minLife := fs.Duration("min-lifetime", 60*time.Second, "an idle instance never stops itself sooner than this after it started (EC2 bills 60 s per start)")
	vis := fs.Duration("visibility-timeout", 30*time.Second, "request queue visibility timeout")
	maxRecv := fs.Int("max-receives", 3, "receives before a request goes to the dead-letter queue")
	scaleEvery := fs.Duration("scale-every", time.Second, "scaling controller period")
	policy := fs.String("policy", "", "scaling policy ("+strings.Join(scaling.PolicyNames(), ", ")+"; empty: default)")
	maxBody := fs.Int("max-body", 10<<20, "largest request body in bytes (413 beyond)")
	maxPixels := fs.Int("max-pixels", 40_000_000, "largest image width*height (413 beyond)")
	maxPending := fs.Int("max-pending", 2000, "uploads waiting at once (503 with Retry-After beyond)")
	reqTimeout := fs.Duration("request-timeout", 60*time.Second, "how long an upload waits for its answer (504 beyond)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs, []envFlag{
		{"host", "FACEFLEET_HOST"}, {"port", "FACEFLEET_PORT"}, {"data", "FACEFLEET_DATA"}, {"no-sync", "FACEFLEET_NO_SYNC"}, {"gallery", "FACEFLEET_GALLERY"},
		{"models", "FACEFLEET_MODELS"}, {"ort-lib", "FACEFLEET_ORT_LIB"}, {"ort-threads", "FACEFLEET_ORT_THREADS"},
		{"threshold", "FACEFLEET_THRESHOLD"}, {"max-instances", "FACEFLEET_MAX_INSTANCES"}, {"boot-delay", "FACEFLEET_BOOT_DELAY"},
		{"idle-timeout", "FACEFLEET_IDLE_TIMEOUT"}, {"min-lifetime", "FACEFLEET_MIN_LIFETIME"}, {"visibility-timeout", "FACEFLEET_VISIBILITY_TIMEOUT"},
		{"max-receives", "FACEFLEET_MAX_RECEIVES"}, {"scale-every", "FACEFLEET_SCALE_EVERY"}, {"policy", "FACEFLEET_POLICY"},
		{"max-body", "FACEFLEET_MAX_BODY"}, {"max-pixels", "FACEFLEET_MAX_PIXELS"}, {"max-pending", "FACEFLEET_MAX_PENDING"},
		{"request-timeout", "FACEFLEET_REQUEST_TIMEOUT"}, {"log-level", "FACEFLEET_LOG_LEVEL"},
	}); err != nil {
		return err
	}
	if *maxInst <= 0 {
		// Local instances share this machine's cores: one model run per core
		// keeps them all busy (a worker stores its last result while it
		// analyses the next); more only time-slice the same cores.
		*maxInst = max(1, runtime.NumCPU()/max(1, *threads))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var pol scaling.Policy
	if *policy != "" {
		var err error
		if pol, err = scaling.NewPolicy(*policy); err != nil {
			return err
		}
	}
	eng, err := engine.New(engine.Options{ModelDir: *models, LibraryPath: *ortLib, IntraOpThreads: *threads,
		MaxBytes: int64(*maxBody), MaxPixels: int64(*maxPixels), Logger: log.With("component", "engine")})
	if err != nil {
		return fmt.Errorf("%w (set -models/-ort-lib or FACEFLEET_MODELS/FACEFLEET_ORT_LIB; `make models` builds them)", err)
	}
	defer eng.Close()

	svc, err := service.New(service.Config{
		DataDir: *data, NoSyncOutputs: *noSync, Analyzer: eng, Threshold: *threshold,
		MaxInstances: *maxInst, BootDelay: *boot, IdleTimeout: *idle, MinLifetime: *minLife, VisibilityTimeout: *vis, MaxReceives: *maxRecv,
		ScaleEvery: *scaleEvery, Policy: pol,
		Limits: webtier.Limits{MaxBodyBytes: *maxBody, MaxPixels: *maxPixels, MaxPending: *maxPending, RequestTimeout: *reqTimeout},
		Logger: log,
	})
	if err != nil {
		return err
	}
	if *galleryFile != "" {
		b, err := os.ReadFile(*galleryFile)
		if err != nil {
			return fmt.Errorf("-gallery: %w", err)
		}
		if err := svc.SeedGallery(ctx, b); err != nil {
			return err
		}
		log.Info("gallery seeded", "file", *galleryFile)
	}
	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("facefleet up", "addr", "http://"+ln.Addr().String(), "data", *data, "max_instances", *maxInst,
		"idle_timeout", *idle, "boot_delay", *boot)
	fmt.Fprintf(stdout, "facefleet listening on http://%s (enroll: curl -F image=@photo.png http://%s/v1/subjects/NAME/faces)\n", ln.Addr(), ln.Addr())
	if err := svc.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("facefleet stopped")
	return nil
}
