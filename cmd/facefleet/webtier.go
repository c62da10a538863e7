package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/webtier"
)

// awsTierFlags are the queue, bucket and AWS flags both tiers share. Defaults come
// from the FACEFLEET_* variables the SAM template and the e2e set.
type awsTierFlags struct {
	aws                                    awsconfig.Options
	requestURL, responseURL, requestDLQURL string
	inputBucket, outputBucket              string
	galleryKey                             string
	maxReceives                            int
	logLevel                               string
}

func (f *awsTierFlags) register(fs *flag.FlagSet) {
	f.aws.Region = os.Getenv("AWS_REGION")
	f.aws.FromEnv()
	f.aws.RegisterFlags(fs)
	fs.StringVar(&f.requestURL, "request-queue-url", os.Getenv("FACEFLEET_REQUEST_QUEUE_URL"), "SQS request queue URL (env FACEFLEET_REQUEST_QUEUE_URL)")
	fs.StringVar(&f.responseURL, "response-queue-url", os.Getenv("FACEFLEET_RESPONSE_QUEUE_URL"), "SQS response queue URL (env FACEFLEET_RESPONSE_QUEUE_URL)")
	fs.StringVar(&f.requestDLQURL, "request-dlq-url", os.Getenv("FACEFLEET_REQUEST_DLQ_URL"), "SQS dead-letter queue of the request queue (env FACEFLEET_REQUEST_DLQ_URL; optional, web tier only)")
	fs.StringVar(&f.inputBucket, "input-bucket", os.Getenv("FACEFLEET_INPUT_BUCKET"), "S3 bucket for uploaded images (env FACEFLEET_INPUT_BUCKET)")
	fs.StringVar(&f.outputBucket, "output-bucket", os.Getenv("FACEFLEET_OUTPUT_BUCKET"), "S3 bucket for results and the gallery (env FACEFLEET_OUTPUT_BUCKET)")
	fs.StringVar(&f.galleryKey, "gallery-key", "gallery/gallery.json", "key of the enrolled gallery in the output bucket")
	fs.IntVar(&f.maxReceives, "max-receives", 3, "the request queue's maxReceiveCount (redrive policy), for the web tier's dead-letter reporting")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

// tierAdapters are the AWS adapters the tiers run on.
type tierAdapters struct {
	clients                  *awsconfig.Clients
	requests, responses, dlq *sqsqueue.Queue
	inputs, outputs          *s3blob.Store
}

func (f *awsTierFlags) open(ctx context.Context, needDLQ bool) (*tierAdapters, error) {
	var missing []string
	for _, v := range []struct{ val, name string }{
		{f.requestURL, "-request-queue-url"}, {f.responseURL, "-response-queue-url"},
		{f.inputBucket, "-input-bucket"}, {f.outputBucket, "-output-bucket"},
	} {
		if v.val == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %v (flags or FACEFLEET_* environment)", missing)
	}
	c, err := awsconfig.Load(ctx, f.aws)
	if err != nil {
		return nil, err
	}
	a := &tierAdapters{clients: c}
	sqsc, s3c := c.SQS(), c.S3()
	if a.requests, err = sqsqueue.New(sqsc, f.requestURL, sqsqueue.Options{}); err != nil {
		return nil, err
	}
	if a.responses, err = sqsqueue.New(sqsc, f.responseURL, sqsqueue.Options{}); err != nil {
		return nil, err
	}
	if needDLQ && f.requestDLQURL != "" {
		if a.dlq, err = sqsqueue.New(sqsc, f.requestDLQURL, sqsqueue.Options{}); err != nil {
			return nil, err
		}
	}
	if a.inputs, err = s3blob.New(s3c, f.inputBucket); err != nil {
		return nil, err
	}
	if a.outputs, err = s3blob.New(s3c, f.outputBucket); err != nil {
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

// logger writes JSON logs at -log-level to w.
func (f *awsTierFlags) logger(w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", f.logLevel, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// runWebtier serves the web tier on AWS: uploads go to S3 and the request queue,
// answers come back on the response queue.
func runWebtier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("webtier", "", stderr)
	var (
		tf         awsTierFlags
		listen     = fs.String("listen", ":8000", "HTTP listen address")
		maxBody    = fs.Int("max-body-bytes", 10<<20, "largest upload accepted")
		maxPending = fs.Int("max-pending", 2000, "most requests waiting for an answer at once (more get 503)")
		reqTimeout = fs.Duration("request-timeout", 60*time.Second, "how long an upload waits for its answer")
		pollWait   = fs.Duration("poll-wait", 10*time.Second, "response queue long-poll wait (max 20s)")
		tagKey     = fs.String("fleet-tag-key", os.Getenv("FACEFLEET_APP_TAG_KEY"), "tag key of app-tier instances, to report the fleet on /status (optional)")
		tagValue   = fs.String("fleet-tag-value", os.Getenv("FACEFLEET_APP_TAG_VALUE"), "tag value of app-tier instances")
	)
	tf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*tagKey == "") != (*tagValue == "") {
		return fmt.Errorf("-fleet-tag-key %q and -fleet-tag-value %q: set both to report the fleet, or neither", *tagKey, *tagValue)
	}
	log, err := tf.logger(stderr)
	if err != nil {
		return err
	}
	a, err := tf.open(ctx, true)
	if err != nil {
		return err
	}
	o := webtier.Options{
		Requests: a.requests, Responses: a.responses,
		Inputs: a.inputs, Outputs: a.outputs, GalleryKey: tf.galleryKey, Codec: webtier.GalleryPackageCodec,
		Limits:      webtier.Limits{MaxBodyBytes: *maxBody, MaxPending: *maxPending, RequestTimeout: *reqTimeout},
		MaxReceives: tf.maxReceives, PollWait: *pollWait, Logger: log,
	}
	if a.dlq != nil {
		o.RequestDLQ = a.dlq
	}
	if *tagKey != "" {
		// Read-only use (List for /status); Max only bounds launches, which the
		// web tier never does.
		if o.Fleet, err = ec2fleet.New(a.clients.EC2(), ec2fleet.Options{TagKey: *tagKey, TagValue: *tagValue, Max: 1000}); err != nil {
			return err
		}
	}
	srv, err := webtier.New(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	log.Info("web tier listening", "addr", ln.Addr().String(), "requests", tf.requestURL, "responses", tf.responseURL,
		"inputs", tf.inputBucket, "outputs", tf.outputBucket)
	fmt.Fprintf(stdout, "webtier listening on http://%s\n", ln.Addr())
	return srv.Serve(ctx, ln)
}
