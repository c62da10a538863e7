package scalerfn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/facefleet/facefleet/internal/blob"
)

// OverflowEvent is the payload the scaler sends the overflow function
// (functions/overflow, internal/overflowfn) with InvocationType Event.
const OverflowEvent = `{"action":"work"}`

// Each running overflow invocation keeps a marker object under
// OverflowMarkerPrefix in the output bucket (its request id; put when it
// starts working, deleted when it returns), which the scaler lists to count
// them: Lambda reports a function's running invocations only as a CloudWatch
// metric a minute late. A marker older than OverflowMarkerMaxAge (the
// function's timeout, OverflowTimeout, plus 10 s) is one Lambda ended before
// it could delete it, and is not counted.
const (
	OverflowMarkerPrefix = "overflow/running/"
	OverflowTimeout      = 60 * time.Second
	OverflowMarkerMaxAge = OverflowTimeout + 10*time.Second
)

// MarkerLister lists the output bucket (blob.Store's List; s3blob in the Lambda).
type MarkerLister interface {
	List(ctx context.Context, prefix string) ([]blob.Attributes, error)
}

// LambdaInvoker is the part of *lambda.Client the overflow invoker uses.
type LambdaInvoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// OverflowOptions configure an OverflowInvoker.
type OverflowOptions struct {
	// Function is the overflow function's name or ARN (required).
	Function string
	// Invoker calls Lambda's Invoke API (required).
	Invoker LambdaInvoker
	// Max is the most invocations at once: the function's reserved
	// concurrency (required, > 0).
	Max int
	// Markers lists the running invocations' markers (OverflowMarkerPrefix);
	// nil: only the invoker's own count below.
	Markers MarkerLister
	// ActiveFor is how long an invocation this invoker started counts as
	// running before its marker can be seen (default 10 s: an asynchronous
	// delivery and a cold start). Active is the larger of the markers and
	// these; without Markers, or when listing them fails, these alone. Counting
	// too few starts a few more than needed, which the reserved concurrency
	// bounds (Lambda queues the rest and drops them after the function's
	// maximum event age); counting too many delays a further start by at most
	// ActiveFor.
	ActiveFor time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// OverflowInvoker starts overflow invocations (scaling.OverflowInvoker) with
// Lambda's asynchronous Invoke. Safe for concurrent use; its count of running
// invocations lives as long as the scaler's execution environment (a new one
// starts from zero, which can only start a few more).
type OverflowInvoker struct {
	o       OverflowOptions
	mu      sync.Mutex
	started []time.Time // accepted invokes, oldest first
	listErr error
}

// NewOverflowInvoker validates o.
func NewOverflowInvoker(o OverflowOptions) (*OverflowInvoker, error) {
	switch {
	case o.Function == "":
		return nil, errors.New("scalerfn: OverflowOptions.Function (the overflow function's name or ARN) is required")
	case o.Invoker == nil:
		return nil, errors.New("scalerfn: OverflowOptions.Invoker is required")
	case o.Max <= 0:
		return nil, fmt.Errorf("scalerfn: OverflowOptions.Max %d: want the overflow function's reserved concurrency, > 0", o.Max)
	case o.ActiveFor < 0:
		return nil, fmt.Errorf("scalerfn: negative OverflowOptions.ActiveFor %v", o.ActiveFor)
	}
	if o.ActiveFor == 0 {
		o.ActiveFor = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &OverflowInvoker{o: o}, nil
}

// Active reports the running invocations (at most Max) and Max: the larger of
// the fresh markers and the invocations started within ActiveFor. A failed
// listing falls back to the latter (LastListError says why): an S3 blip must
// not stop the scaler's step.
func (i *OverflowInvoker) Active(ctx context.Context) (active, limit int, err error) {
	marked, listErr := -1, error(nil)
	if i.o.Markers != nil {
		var ms []blob.Attributes
		if ms, listErr = i.o.Markers.List(ctx, OverflowMarkerPrefix); listErr == nil {
			cut := i.o.Now().Add(-OverflowMarkerMaxAge)
			marked = 0
			for _, m := range ms {
				if m.Modified.After(cut) {
					marked++
				}
			}
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.listErr = listErr
	i.prune()
	return min(max(len(i.started), marked), i.o.Max), i.o.Max, nil
}

// LastListError is why the last Active could not list the markers (nil: it could).
func (i *OverflowInvoker) LastListError() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.listErr
}

func (i *OverflowInvoker) prune() {
	cut := i.o.Now().Add(-i.o.ActiveFor)
	k := 0
	for k < len(i.started) && !i.started[k].After(cut) {
		k++
	}
	i.started = i.started[k:]
}

// Invoke makes n asynchronous invocations with OverflowEvent. Each accepted one
// (202) is counted as running; the error joins the refused ones.
func (i *OverflowInvoker) Invoke(ctx context.Context, n int) error {
	var errs []error
	for range n {
		out, err := i.o.Invoker.Invoke(ctx, &lambda.InvokeInput{
			FunctionName:   aws.String(i.o.Function),
			InvocationType: types.InvocationTypeEvent,
			Payload:        []byte(OverflowEvent),
		})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("invoke %s: %w", i.o.Function, err))
		case out.StatusCode != 202:
			errs = append(errs, fmt.Errorf("invoke %s: status %d, want 202 (accepted)", i.o.Function, out.StatusCode))
		default:
			i.mu.Lock()
			i.started = append(i.started, i.o.Now())
			i.mu.Unlock()
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}
