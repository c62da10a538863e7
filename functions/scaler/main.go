// Command bootstrap is the scaler Lambda (provided.al2023, arm64): it wires the SQS
// counts, the EC2 fleet and CloudWatch metrics adapters into the same
// scaling.Controller that local mode runs, and hands invocations to scalerfn.
//
// Build as SAM does: GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/metrics"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/scalerfn"
	"github.com/facefleet/facefleet/scaling"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := wire(context.Background(), log)
	if err != nil {
		// Still start the runtime: every invoke then fails with this message
		// instead of the init crash-looping with no event context.
		log.Error("scaler: configuration error", "err", err)
		lambda.Start(func(context.Context) error { return err })
		return
	}
	lambda.Start(h.Invoke)
}

func wire(ctx context.Context, log *slog.Logger) (*scalerfn.Handler, error) {
	cfg, err := scalerfn.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	clients, err := awsconfig.Load(ctx, cfg.AWS)
	if err != nil {
		return nil, fmt.Errorf("scaler: %w", err)
	}
	q, err := sqsqueue.New(clients.SQS(), cfg.QueueURL, sqsqueue.Options{})
	if err != nil {
		return nil, fmt.Errorf("scaler: %w", err)
	}
	f, err := ec2fleet.New(clients.EC2(), ec2fleet.Options{
		LaunchTemplateID: cfg.LaunchTemplateID, TagKey: cfg.TagKey, TagValue: cfg.TagValue, Max: cfg.MaxInstances,
	})
	if err != nil {
		return nil, fmt.Errorf("scaler: %w", err)
	}
	m, err := metrics.NewCloudWatch(clients.CloudWatch(), cfg.Namespace)
	if err != nil {
		return nil, fmt.Errorf("scaler: %w", err)
	}
	var declog blob.Store
	if cfg.OutputBucket != "" {
		if declog, err = s3blob.New(clients.S3(), cfg.OutputBucket); err != nil {
			return nil, fmt.Errorf("scaler: %w", err)
		}
	}
	var ov scaling.OverflowInvoker // nil: no overflow function, EC2 only
	if cfg.OverflowFunction != "" {
		// The running invocations' markers are in the output bucket.
		var markers scalerfn.MarkerLister
		if declog != nil {
			markers = declog
		}
		if ov, err = scalerfn.NewOverflowInvoker(scalerfn.OverflowOptions{Function: cfg.OverflowFunction, Invoker: clients.Lambda(),
			Max: cfg.OverflowMax, ActiveFor: cfg.OverflowActiveFor, Markers: markers}); err != nil {
			return nil, fmt.Errorf("scaler: %w", err)
		}
	}
	ctrl := scaling.NewController(scaling.ControllerOptions{
		Queue: q, Fleet: f, Policy: scaling.DefaultPolicy(), Max: cfg.MaxInstances, Logger: log, Overflow: ov,
	})
	return scalerfn.New(scalerfn.Options{
		Controller: ctrl, Metrics: m, Logger: log, Interval: cfg.Interval, Margin: cfg.Margin,
		// The tag value is the stack name (template.yaml): one stack's numbers
		// never mix with another's in the shared namespace.
		Dimensions:  map[string]string{scalerfn.DimensionStack: cfg.TagValue},
		DecisionLog: declog,
	})
}
