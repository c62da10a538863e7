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

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/scaling"
)

// repoDefault returns build/<rel> beside the executable's working directory.
func repoDefault(rel string) string { return filepath.Join("build", rel) }

// bindSettings registers cmd's declared settings on fs; resolve them after
// fs.Parse with the returned function.
func bindSettings(cmd settings.Command, fs *flag.FlagSet) func() (*settings.Values, error) {
	b := settings.Bind(cmd, fs)
	return func() (*settings.Values, error) { return b.Resolve(os.Getenv) }
}

// newLogger is a command's logger at -log-level: text for people, JSON for the
// AWS tiers' journald.
func newLogger(v *settings.Values, w io.Writer, json bool) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(v.String(settings.LogLevel))) // declared OneOf: always parses
	o := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// listenAddr is -host:-port.
func listenAddr(v *settings.Values) string {
	return net.JoinHostPort(v.String(settings.Host), strconv.Itoa(v.Int(settings.Port)))
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", "", stderr)
	resolve := bindSettings(settings.Up, fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	v, err := resolve()
	if err != nil {
		return err
	}
	threads, maxInst := v.Int(settings.ORTThreads), v.Int(settings.MaxInstances)
	if maxInst <= 0 {
		// Local instances share this machine's cores: one model run per core
		// keeps them all busy (a worker stores its last result while it
		// analyses the next); more only time-slice the same cores.
		maxInst = max(1, runtime.NumCPU()/threads)
	}
	log := newLogger(v, stderr, false)
	pol, err := scaling.NewPolicyIn(v.String(settings.Policy), scaling.Env{Local: true})
	if err != nil {
		return err
	}
	eng, err := newEngine(v, log)
	if err != nil {
		return err
	}
	defer eng.Close()

	idle := v.Duration(settings.IdleTimeout)
	if idle == 0 {
		idle = service.NeverIdle
	}
	data, t := v.String(settings.Data), service.TiersFromSettings(v)
	svc, err := service.New(service.Config{
		DataDir: data, NoSyncOutputs: v.Bool(settings.NoSync), NoOutputLog: !v.Bool(settings.OutputLog), Analyzer: eng, Threshold: v.Float(settings.Threshold),
		MaxInstances: maxInst, BootDelay: v.Duration(settings.BootDelay), IdleTimeout: idle, MinLifetime: v.Duration(settings.MinLifetime),
		VisibilityTimeout: v.Duration(settings.VisibilityTimeout), MaxReceives: v.Int(settings.MaxReceives),
		ScaleEvery: v.Duration(settings.ScaleEvery), Policy: pol, Limits: t.Limits, StatusTTL: t.StatusTTL, MaxTails: t.MaxTails,
		Auth: t.Auth, Logger: log,
	})
	if err != nil {
		return err
	}
	if galleryFile := v.String(settings.Gallery); galleryFile != "" {
		b, err := os.ReadFile(galleryFile)
		if err != nil {
			return fmt.Errorf("-gallery: %w", err)
		}
		if err := svc.SeedGallery(ctx, b); err != nil {
			return err
		}
		log.Info("gallery seeded", "file", galleryFile)
	}
	addr := listenAddr(v)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("facefleet up", "addr", "http://"+ln.Addr().String(), "data", data, "max_instances", maxInst,
		"idle_timeout", v.Duration(settings.IdleTimeout), "boot_delay", v.Duration(settings.BootDelay))
	fmt.Fprintf(stdout, "facefleet listening on http://%s (enroll with an admin key: KEY=$(facefleet keys create -role admin -data %s); curl -H \"Authorization: Bearer $KEY\" -F image=@photo.png http://%s/v1/subjects/NAME/faces)\n", ln.Addr(), data, ln.Addr())
	if err := svc.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("facefleet stopped")
	return nil
}

// newEngine loads the engine with the settings' models, library, threads and
// image limits (service.NewEngine, shared with the overflow Lambda).
func newEngine(v *settings.Values, log *slog.Logger) (*engine.Engine, error) {
	return service.NewEngine(v, log)
}
