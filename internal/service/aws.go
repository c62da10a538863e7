package service

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"sync"
	"time"

	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/decisionlog"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/scaling"
)

// OpenAWS builds the AWS backend from a command's resolved settings: the request
// and response queues, the dead-letter queue and the app-tier fleet when the
// command reads and sets them, and the two buckets. It checks that every queue
// and bucket answers, so a wrong URL or name fails at start-up rather than at
// the first upload. The clients are returned for the callers' other AWS calls.
func OpenAWS(ctx context.Context, v *settings.Values) (Backend, *awsconfig.Clients, error) {
	c, err := awsconfig.Load(ctx, awsconfig.FromSettings(v))
	if err != nil {
		return Backend{}, nil, err
	}
	var (
		b                        Backend
		requests, responses, dlq *sqsqueue.Queue
		inputs, outputs          *s3blob.Store
	)
	sqsc, s3c := c.SQS(), c.S3()
	if requests, err = sqsqueue.New(sqsc, v.String(settings.RequestQueueURL), sqsqueue.Options{}); err != nil {
		return Backend{}, nil, err
	}
	if responses, err = sqsqueue.New(sqsc, v.String(settings.ResponseQueueURL), sqsqueue.Options{}); err != nil {
		return Backend{}, nil, err
	}
	if v.Has(settings.RequestDLQURL) && v.Set(settings.RequestDLQURL) {
		if dlq, err = sqsqueue.New(sqsc, v.String(settings.RequestDLQURL), sqsqueue.Options{}); err != nil {
			return Backend{}, nil, err
		}
		b.RequestDLQ = dlq
	}
	if inputs, err = s3blob.New(s3c, v.String(settings.InputBucket)); err != nil {
		return Backend{}, nil, err
	}
	// The output bucket holds the gallery's snapshots: 270 MB at 500,000
	// faces, and only the tiers write there, so its read limit is the
	// gallery's own (gallery.MaxSnapshotBytes), not the 64 MiB uploads get.
	if outputs, err = s3blob.New(s3c, v.String(settings.OutputBucket), s3blob.Options{MaxObjectBytes: gallery.MaxSnapshotBytes}); err != nil {
		return Backend{}, nil, err
	}
	// The scaler Lambda keeps its recent decisions in the output bucket
	// (decisionlog); the web tier shows them on /v1/status and the page.
	b.DecisionLog = func(ctx context.Context) ([]scaling.Decision, error) { return decisionlog.Read(ctx, outputs) }
	if v.Has(settings.AppTagKey) && v.Set(settings.AppTagKey) {
		// Read-only use (List for /v1/status); Max only bounds launches, which
		// the tiers never do.
		if b.Fleet, err = ec2fleet.New(c.EC2(), ec2fleet.Options{TagKey: v.String(settings.AppTagKey),
			TagValue: v.String(settings.AppTagValue), Max: 1000}); err != nil {
			return Backend{}, nil, err
		}
	}
	checkCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, q := range []*sqsqueue.Queue{requests, responses, dlq} {
		if q == nil {
			continue
		}
		if _, err := q.Counts(checkCtx); err != nil {
			return Backend{}, nil, fmt.Errorf("queue %s is not reachable: %w", q.URL(), err)
		}
	}
	for _, s := range []*s3blob.Store{inputs, outputs} {
		if _, err := s.List(checkCtx, "facefleet-startup-probe/"); err != nil {
			return Backend{}, nil, fmt.Errorf("bucket %s is not reachable: %w", s.Bucket(), err)
		}
	}
	// The timeouts follow the request queue itself (the template sets its
	// visibility and redrive policy), not flags that may disagree with it: a
	// worker extending by another visibility would let a second worker take an
	// image in hand, or leave retries waiting.
	st, err := requests.Settings(checkCtx)
	if err != nil {
		return Backend{}, nil, fmt.Errorf("queue %s is not reachable: %w", requests.URL(), err)
	}
	if v.Has(settings.VisibilityTimeout) && v.Set(settings.VisibilityTimeout) && v.Duration(settings.VisibilityTimeout) != st.Visibility {
		return Backend{}, nil, fmt.Errorf("-visibility-timeout %s, but the request queue %s has %s: drop the setting or make them agree",
			v.Duration(settings.VisibilityTimeout), requests.URL(), st.Visibility)
	}
	if v.Has(settings.MaxReceives) && v.Set(settings.MaxReceives) && st.MaxReceives != 0 && v.Int(settings.MaxReceives) != st.MaxReceives {
		return Backend{}, nil, fmt.Errorf("-max-receives %d, but the request queue %s redrives after %d receives: drop the setting or make them agree",
			v.Int(settings.MaxReceives), requests.URL(), st.MaxReceives)
	}
	b.QueueVisibility, b.QueueMaxReceives = st.Visibility, st.MaxReceives
	b.Requests, b.Responses, b.Inputs, b.Outputs = requests, responses, inputs, outputs
	// Requests name this tier's response queue; workers and dead-letter
	// watchers answer other tiers' on theirs.
	b.ReplyTo = responses.URL()
	b.ReplyQueue = ReplyQueues(c, requests, responses)
	return b, c, nil
}

// ReplyQueues resolves a request's reply-to address (a web tier's response queue
// URL) to a queue, refusing URLs outside the request queue's SQS endpoint and
// account, so a forged request cannot make a worker write elsewhere.
func ReplyQueues(c *awsconfig.Clients, requests, responses *sqsqueue.Queue) func(addr string) (queue.Queue, error) {
	var mu sync.Mutex
	cache := map[string]queue.Queue{responses.URL(): responses}
	base, _ := url.Parse(requests.URL())
	return func(addr string) (queue.Queue, error) {
		mu.Lock()
		defer mu.Unlock()
		if q, ok := cache[addr]; ok {
			return q, nil
		}
		u, err := url.Parse(addr)
		if err != nil || base == nil || u.Scheme != base.Scheme || u.Host != base.Host || path.Dir(u.Path) != path.Dir(base.Path) || u.RawQuery != "" {
			return nil, fmt.Errorf("reply-to %q is not a queue of this account and endpoint (%s)", addr, requests.URL())
		}
		if len(cache) >= 64 {
			return nil, fmt.Errorf("reply-to %q: already answering 64 response queues", addr)
		}
		q, err := sqsqueue.New(c.SQS(), addr, sqsqueue.Options{})
		if err != nil {
			return nil, err
		}
		cache[addr] = q
		return q, nil
	}
}
