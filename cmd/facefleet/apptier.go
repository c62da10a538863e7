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

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/settings"
)

// runApptier runs app-tier workers on AWS: requests from SQS, images from S3,
// answers to SQS and S3. When every worker has been idle for -idle-timeout the
// instance stops itself (-self-stop), so the fleet shrinks to zero without the
// scaler.
func runApptier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apptier", "", stderr)
	resolve := bindSettings(settings.Apptier, fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	v, err := resolve()
	if err != nil {
		return err
	}
	selfStop := v.String(settings.SelfStop)
	mode, cmdline, _ := strings.Cut(selfStop, ":") // declared Check: ec2, none or exec:CMD
	log := newLogger(v, stderr, true)
	b, clients, err := service.OpenAWS(ctx, v)
	if err != nil {
		return err
	}
	id := v.String(settings.InstanceID)
	if mode == "ec2" && id == "" {
		if id, err = ec2fleet.InstanceID(ctx, v.String(settings.IMDSEndpoint)); err != nil {
			return err
		}
	}
	if id == "" {
		id, _ = os.Hostname()
	}
	log = log.With("instance", id)

	eng, err := newEngine(v, log)
	if err != nil {
		return err
	}
	defer eng.Close()

	t := service.TiersFromSettings(v)
	t.Analyzer, t.Logger = eng, log
	// Build every worker before starting any: returning on a later New error
	// would leave the earlier ones running on an engine the defer closes.
	ws := make([]*apptier.Worker, v.Int(settings.Workers))
	for i := range ws {
		if ws[i], err = service.NewWorker(b, t, fmt.Sprintf("%s/%d", id, i)); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ws))
	for i, w := range ws {
		wg.Go(func() { errs[i] = w.Run(ctx) })
	}
	log.Info("app tier running", "workers", len(ws), "requests", v.String(settings.RequestQueueURL),
		"idle_timeout", v.Duration(settings.IdleTimeout), "self_stop", selfStop)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ctx.Err() != nil {
		log.Info("app tier stopped by signal")
		return nil
	}
	// Every worker returned without a signal: they were idle.
	return stopSelf(context.WithoutCancel(ctx), log, mode, cmdline, id, clients.EC2())
}

func stopSelf(ctx context.Context, log *slog.Logger, mode, cmdline, id string, ec2c *ec2.Client) error {
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
			if err = ec2fleet.StopSelf(ctx, ec2c, id); err == nil {
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
