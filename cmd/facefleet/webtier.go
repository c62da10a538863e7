package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/webtier"
)

// tierAdapters are the AWS adapters the tiers run on.
type tierAdapters struct {
	clients                  *awsconfig.Clients
	requests, responses, dlq *sqsqueue.Queue
	inputs, outputs          *s3blob.Store
}

// openAWS builds the AWS adapters from the resolved settings and checks that every
// queue and bucket answers.
func openAWS(ctx context.Context, v *settings.Values, needDLQ bool) (*tierAdapters, error) {
	c, err := awsconfig.Load(ctx, awsconfig.FromSettings(v))
	if err != nil {
		return nil, err
	}
	a := &tierAdapters{clients: c}
	sqsc, s3c := c.SQS(), c.S3()
	if a.requests, err = sqsqueue.New(sqsc, v.String(settings.RequestQueueURL), sqsqueue.Options{}); err != nil {
		return nil, err
	}
	if a.responses, err = sqsqueue.New(sqsc, v.String(settings.ResponseQueueURL), sqsqueue.Options{}); err != nil {
		return nil, err
	}
	if needDLQ && v.String(settings.RequestDLQURL) != "" {
		if a.dlq, err = sqsqueue.New(sqsc, v.String(settings.RequestDLQURL), sqsqueue.Options{}); err != nil {
			return nil, err
		}
	}
	if a.inputs, err = s3blob.New(s3c, v.String(settings.InputBucket)); err != nil {
		return nil, err
	}
	if a.outputs, err = s3blob.New(s3c, v.String(settings.OutputBucket)); err != nil {
		return nil, err
	}
	// Fail at start-up, not at the first upload, when a queue or bucket is wrong.
	checkCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, q := range []*sqsqueue.Queue{a.requests, a.responses, a.dlq} {
		if q == nil {
			continue
		}
		if _, err := q.Counts(checkCtx); err != nil {
			return nil, fmt.Errorf("queue %s is not reachable: %w", q.URL(), err)
		}
	}
	for _, b := range []*s3blob.Store{a.inputs, a.outputs} {
		if _, err := b.List(checkCtx, "facefleet-startup-probe/"); err != nil {
			return nil, fmt.Errorf("bucket %s is not reachable: %w", b.Bucket(), err)
		}
	}
	return a, nil
}

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
	a, err := openAWS(ctx, v, true)
	if err != nil {
		return err
	}
	o := webtier.Options{
		Requests: a.requests, Responses: a.responses,
		Inputs: a.inputs, Outputs: a.outputs, GalleryKey: v.String(settings.GalleryKey), Codec: webtier.GalleryPackageCodec,
		Limits: webLimits(v), MaxReceives: v.Int(settings.MaxReceives), PollWait: v.Duration(settings.PollWait), Logger: log,
	}
	if a.dlq != nil {
		o.RequestDLQ = a.dlq
	}
	if v.Set(settings.AppTagKey) {
		// Read-only use (List for /status); Max only bounds launches, which the
		// web tier never does.
		if o.Fleet, err = ec2fleet.New(a.clients.EC2(), ec2fleet.Options{TagKey: v.String(settings.AppTagKey),
			TagValue: v.String(settings.AppTagValue), Max: 1000}); err != nil {
			return err
		}
	}
	srv, err := webtier.New(o)
	if err != nil {
		return err
	}
	addr := listenAddr(v)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("web tier listening", "addr", ln.Addr().String(), "requests", v.String(settings.RequestQueueURL),
		"responses", v.String(settings.ResponseQueueURL), "inputs", v.String(settings.InputBucket), "outputs", v.String(settings.OutputBucket))
	fmt.Fprintf(stdout, "webtier listening on http://%s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}
