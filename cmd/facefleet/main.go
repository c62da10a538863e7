// Command facefleet is the project's one CLI: the service (up, webtier, apptier),
// the engine (enroll, recognize), the workload generator (loadgen) and the
// autoscaling simulator (simulate).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"up", "run web tier, queues, stores, workers and scaler in one process", runUp},
		{"enroll", "build a gallery from a folder of labelled photos", runEnroll},
		{"recognize", "name the people in images", runRecognize},
		{"loadgen", "fire concurrent uploads at a web tier and check the answers", runLoadgen},
		{"simulate", "simulate autoscaling policies over workloads", runSimulate},
		{"webtier", "run the web tier against AWS (SQS, S3)", runWebtier},
		{"apptier", "run an app-tier worker against AWS (SQS, S3, EC2)", runApptier},
		{"config", "list every setting: flag, environment variable, default, limits", runConfig},
		{"keys", "create, list or revoke API keys (create -role admin|recognize)", runKeys},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(stderr, "facefleet %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "facefleet: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: facefleet <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'facefleet <command> -h' for a command's flags.")
}

// newFlagSet is a command's flag set: errors and -h go to stderr, headed by usage
// when it is given.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if usage != "" {
		fs.Usage = func() {
			fmt.Fprintln(stderr, usage)
			fs.PrintDefaults()
		}
	}
	return fs
}
