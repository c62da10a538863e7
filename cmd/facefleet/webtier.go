package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/facefleet/facefleet/internal/scalernudge"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/settings"
)

// runWebtier serves the web tier on AWS: uploads go to S3 and the request queue,
// answers come back on the response queue.
func runWebtier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("webtier", "", stderr)
	resolve := bindSettings(settings.Webtier, fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	v, err := resolve()
	if err != nil {
		return err
	}
	log := newLogger(v, stderr, true)
	b, clients, err := service.OpenAWS(ctx, v)
	if err != nil {
		return err
	}
	if fn := v.String(settings.ScalerFunction); fn != "" {
		no := scalernudge.Options{Function: fn, Invoker: clients.Lambda(), Logger: log}
		if b.Fleet != nil {
			no.Fleet = b.Fleet
		}
		nudger, err := scalernudge.New(no)
		if err != nil {
			return err
		}
		defer nudger.Close()
		b.Nudge = nudger.Nudge
	} else {
		log.Warn("no -scaler-function: a request that finds no worker waits for the scaler's schedule or alarm")
	}
	t := service.TiersFromSettings(v)
	t.Logger = log
	srv, err := service.NewWebTier(b, t)
	if err != nil {
		return err
	}
	addr := listenAddr(v)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("web tier listening", "addr", ln.Addr().String(), "requests", v.String(settings.RequestQueueURL),
		"responses", v.String(settings.ResponseQueueURL), "inputs", v.String(settings.InputBucket), "outputs", v.String(settings.OutputBucket),
		"scaler_function", v.String(settings.ScalerFunction))
	fmt.Fprintf(stdout, "webtier listening on http://%s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}
