package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/facefleet/facefleet/sim"
)

// runSimulate runs autoscaling policies over workloads in virtual time and prints
// a markdown table (or -json), optionally writing SVG plots.
func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := sim.DefaultConfig()
	fs := newFlagSet("simulate", "", stderr)
	workload := fs.String("workload", "all", "workload name or `all` ("+strings.Join(sim.WorkloadNames(), ", ")+", burst-N, poisson-R, replay:FILE.csv)")
	policy := fs.String("policy", "all", "policy name or `all` ("+strings.Join(sim.PolicyNames(), ", ")+")")
	fs.IntVar(&cfg.Max, "max", cfg.Max, "cap on pending+running instances")
	fs.IntVar(&cfg.Pool, "pool", 0, "stopped instances at t=0 (0: -max; -1: none, every start is a launch)")
	fs.Var(&cfg.Boot, "boot", "start-to-ready time of a stopped instance, MEAN[+-JITTER]")
	fs.Var(&cfg.Load, "load", "running-to-ready (model load) part of -boot")
	fs.Var(&cfg.StopDelay, "stop-delay", "stopping-to-stopped time")
	fs.Var(&cfg.Service, "service", "processing time per image on one worker, MEAN[+-JITTER]")
	fs.DurationVar(&cfg.LaunchExtra, "launch-extra", cfg.LaunchExtra, "extra time for a fresh launch over a start")
	fs.DurationVar(&cfg.IdleTimeout, "idle", cfg.IdleTimeout, "worker idle timeout before it stops itself (never before the billing minimum is used)")
	fs.BoolVar(&cfg.IdleIgnoresBilling, "idle-ignores-billing", false, "let workers stop before their billed minute is used")
	fs.DurationVar(&cfg.Phase, "phase", cfg.Phase, "first 1-minute schedule tick after the first arrival")
	fs.DurationVar(&cfg.Loop, "loop", cfg.Loop, "re-evaluation period inside one scaler invocation")
	fs.DurationVar(&cfg.CountLag, "count-lag", cfg.CountLag, "staleness of SQS approximate counts")
	fs.Float64Var(&cfg.BlipRate, "blip", cfg.BlipRate, "chance an empty queue reads as 1 (negative: never)")
	fs.DurationVar(&cfg.BacklogDrain.DrainTarget, "drain-target", 0, "backlog-drain: clear a backlog within this long once capacity is up (0: default)")
	fs.IntVar(&cfg.Capacity, "capacity", 0, "instances the provider will ever hold; launches beyond fail with ErrCapacity (0: unlimited)")
	fs.BoolVar(&cfg.Retire, "retire", true, "give the simulated fleet scaling.Retirer (stop after the current job), as localfleet and ec2fleet have")
	fs.IntVar(&cfg.Overflow.Concurrency, "overflow", -1, "Lambda overflow workers' concurrency limit (default -1: none, as deployed: no overflow function exists yet; 0: the model's 10)")
	fs.IntVar(&cfg.Overflow.MemoryMB, "overflow-memory", 0, "overflow function's memory in MB; 1769 MB is one vCPU (0: 1769)")
	fs.Var(&cfg.Overflow.ColdStart, "overflow-cold", "overflow cold start at one vCPU (runtime + models from the package), MEAN[+-JITTER] (default 1.5s+-300ms)")
	fs.DurationVar(&cfg.Overflow.IdleWait, "overflow-idle", 0, "an overflow invocation returns after the queue is empty this long (0: default)")
	fs.DurationVar(&cfg.BacklogDrain.Overflow.Sustain, "overflow-sustain", 0, "backlog-drain: start EC2 once the overflow has worked this long without it (0: default)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed; the same seed gives the same results")
	asJSON := fs.Bool("json", false, "print one JSON array instead of a markdown table")
	plotDir := fs.String("plot", "", "write an SVG of queue depth and instances per (workload, policy) into `DIR`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	wnames := []string{*workload}
	if *workload == "all" {
		wnames = sim.WorkloadNames()
	}
	pnames := []string{*policy}
	if *policy == "all" {
		pnames = sim.PolicyNames()
	}
	var wls []sim.Workload
	for _, n := range wnames {
		wl, err := sim.NewWorkload(n, cfg.Seed)
		if err != nil {
			return err
		}
		wls = append(wls, wl)
	}
	start := time.Now()
	rs, err := sim.RunAll(ctx, cfg, wls, pnames)
	if err != nil {
		return err
	}
	if *plotDir != "" {
		if err := sim.WritePlots(*plotDir, rs); err != nil {
			return err
		}
	}
	if *asJSON {
		return sim.WriteJSON(stdout, rs)
	}
	if err := sim.WriteTable(stdout, rs); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "simulated %d runs in %v\n", len(rs), time.Since(start).Round(time.Millisecond))
	return nil
}
