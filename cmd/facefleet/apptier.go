package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
)

// runApptier runs app-tier workers on AWS: requests from SQS, images from S3,
// answers to SQS and S3. When every worker has been idle for -idle-timeout the
// instance stops itself (-self-stop), so the fleet shrinks to zero without the
// scaler.
func runApptier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apptier", "", stderr)
	var (
		tf           awsTierFlags
		models       = fs.String("models", envOr("FACEFLEET_MODELS", repoDefault("models")), "directory of the converted .onnx models (env FACEFLEET_MODELS)")
		ortLib       = fs.String("ort-lib", envOr("FACEFLEET_ORT_LIB", repoDefault("lib/libonnxruntime.so.1")), "ONNX Runtime shared library (env FACEFLEET_ORT_LIB)")
		workers      = fs.Int("workers", 1, "worker loops in this process, sharing one engine")
		threads      = fs.Int("threads", 1, "ONNX Runtime intra-op threads per model run")
		threshold    = fs.Float64("threshold", 0, "match distance threshold (0: the gallery's default)")
		idle         = fs.Duration("idle-timeout", 10*time.Second, "stop after this long without work (0: never)")
		minLife      = fs.Duration("min-lifetime", 60*time.Second, "never stop sooner than this after starting (EC2 bills 60 s per start)")
		wait         = fs.Duration("wait", 5*time.Second, "request queue long-poll wait (max 20s)")
		visibility   = fs.Duration("visibility-timeout", 30*time.Second, "request visibility while processing (extended while busy)")
		selfStop     = fs.String("self-stop", "ec2", "what to do when idle: ec2 (StopInstances on this instance), exec:CMD (run CMD via sh -c), or none (just exit)")
		instanceID   = fs.String("instance-id", os.Getenv("FACEFLEET_INSTANCE_ID"), "this instance's id (env FACEFLEET_INSTANCE_ID; default: read from IMDSv2 when -self-stop=ec2)")
		imdsEndpoint = fs.String("imds-endpoint", "", "instance metadata endpoint (default: the SDK's, 169.254.169.254)")
	)
	tf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *workers < 1 || *workers > 64 {
		return fmt.Errorf("-workers %d must be 1..64", *workers)
	}
	mode, cmdline, ok := strings.Cut(*selfStop, ":")
	if !(mode == "ec2" && !ok) && !(mode == "none" && !ok) && !(mode == "exec" && cmdline != "") {
		return fmt.Errorf("-self-stop %q must be ec2, none or exec:CMD", *selfStop)
	}
	log, err := tf.logger(stderr)
	if err != nil {
		return err
	}
	a, err := tf.open(ctx, false)
	if err != nil {
		return err
	}
	id := *instanceID
	if mode == "ec2" && id == "" {
		if id, err = ec2fleet.InstanceID(ctx, *imdsEndpoint); err != nil {
			return err
		}
	}
	if id == "" {
		id, _ = os.Hostname()
	}
	log = log.With("instance", id)

	eng, err := engine.New(engine.Options{ModelDir: *models, LibraryPath: *ortLib, IntraOpThreads: *threads, Logger: log})
	if err != nil {
		return err
	}
	defer eng.Close()

	// Build every worker before starting any: returning on a later New error
	// would leave the earlier ones running on an engine the defer closes.
	ws := make([]*apptier.Worker, *workers)
	for i := range ws {
		if ws[i], err = apptier.New(apptier.Options{
			ID: fmt.Sprintf("%s/%d", id, i), Requests: a.requests, Responses: a.responses,
			Inputs: a.inputs, Outputs: a.outputs, Analyzer: eng,
			GalleryKey: tf.galleryKey, LoadGallery: apptier.GalleryPackageLoader(*threshold),
			WaitTime: *wait, IdleTimeout: *idle, MinLifetime: *minLife, VisibilityTimeout: *visibility, Logger: log,
		}); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ws))
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.Run(ctx) })
	}
	log.Info("app tier running", "workers", *workers, "requests", tf.requestURL, "idle_timeout", *idle, "self_stop", *selfStop)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ctx.Err() != nil {
		log.Info("app tier stopped by signal")
		return nil
	}
	// Every worker returned without a signal: they were idle.
	return stopSelf(context.WithoutCancel(ctx), log, mode, cmdline, id, a)
}

func stopSelf(ctx context.Context, log *slog.Logger, mode, cmdline, id string, a *tierAdapters) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch mode {
	case "ec2":
		log.Info("idle: stopping this instance", "instance", id)
		// A running instance with no worker would be billed for nothing, so retry
		// (throttling, a blip) before giving up; the exit status then lets the
		// service manager restart the tier, which will try again when idle.
		const attempts = 4
		var err error
		for attempt, wait := 1, time.Second; ; attempt, wait = attempt+1, wait*2 {
			if err = ec2fleet.StopSelf(ctx, a.clients.EC2(), id); err == nil {
				return nil
			}
			log.Warn("idle: could not stop this instance", "instance", id, "attempt", attempt, "err", err)
			if errors.Is(err, fleet.ErrNotFound) || attempt == attempts {
				break // no sleep after the last attempt: exit now and let the service manager restart
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("idle, but could not stop instance %s: %w", id, err)
			case <-time.After(wait):
			}
		}
		return fmt.Errorf("idle, but could not stop instance %s: %w", id, err)
	case "exec":
		log.Info("idle: running the self-stop command", "cmd", cmdline)
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
		c.Env = append(os.Environ(), "FACEFLEET_INSTANCE_ID="+id)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("self-stop command %q: %w: %s", cmdline, err, out)
		}
	default:
		log.Info("idle: exiting")
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
