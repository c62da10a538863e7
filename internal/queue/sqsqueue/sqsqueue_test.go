package sqsqueue_test

import (
	"context"

	"errors"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/queuetest"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
)

var (
	faux *awstest.Server
	moto *awstest.Moto
)

func TestMain(m *testing.M) { os.Exit(awstest.Both(m, &faux, &moto)) }

func newQueue(t *testing.T, spec awstest.QueueSpec) (*sqsqueue.Queue, awstest.Queue) {
	t.Helper()
	ctx := context.Background()
	c := awstest.NeedClients(t, faux)
	if spec.Name == "" {
		spec.Name = awstest.Unique(t, "q")
	}
	created, err := awstest.CreateQueue(ctx, c.SQS(), spec)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sqsqueue.New(c.SQS(), created.URL, sqsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q, created
}

func TestRoundTrip(t *testing.T) {
	q, _ := newQueue(t, awstest.QueueSpec{VisibilityTimeout: 30 * time.Second})
	ctx := context.Background()
	before := time.Now().Add(-2 * time.Second)
	id, err := q.Send(ctx, `{"hello":"world"}`)
	if err != nil || id == "" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	msgs, err := q.Receive(ctx, queue.ReceiveOptions{MaxMessages: 10, WaitTime: time.Second})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v; want 1 message", msgs, err)
	}
	m := msgs[0]
	if m.ID != id || m.Body != `{"hello":"world"}` || m.ReceiveCount != 1 || m.SentAt.Before(before) || m.SentAt.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("message = %+v; want id %s, count 1, sent about now", m, id)
	}
	c, err := q.Counts(ctx)
	if err != nil || c.InFlight != 1 || c.Visible != 0 {
		t.Fatalf("Counts = %+v, %v; want 1 in flight", c, err)
	}
	if err := q.ChangeVisibility(ctx, m.ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	msgs, err = q.Receive(ctx, queue.ReceiveOptions{WaitTime: 2 * time.Second})
	if err != nil || len(msgs) != 1 || msgs[0].ReceiveCount != 2 {
		t.Fatalf("second Receive = %+v, %v; want the message again with count 2", msgs, err)
	}
	if err := q.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
		t.Fatalf("deleting twice: %v; want nil as in SQS", err)
	}
	c, err = q.Counts(ctx)
	if err != nil || c != (queue.Counts{}) {
		t.Fatalf("Counts after delete = %+v, %v; want zero", c, err)
	}
}

func TestTooLarge(t *testing.T) {
	q, _ := newQueue(t, awstest.QueueSpec{MaxMessageBytes: 1024})
	_, err := q.Send(context.Background(), strings.Repeat("x", 1025))
	if !errors.Is(err, queue.ErrTooLarge) {
		t.Fatalf("Send(1025 bytes) = %v; want ErrTooLarge", err)
	}
}

func TestInvalidReceipt(t *testing.T) {
	q, _ := newQueue(t, awstest.QueueSpec{})
	err := q.ChangeVisibility(context.Background(), "not-a-receipt-handle", time.Second)
	if !errors.Is(err, queue.ErrInvalidReceipt) {
		t.Fatalf("ChangeVisibility(bogus) = %v; want ErrInvalidReceipt", err)
	}
}

func TestLongPollWakes(t *testing.T) {
	q, _ := newQueue(t, awstest.QueueSpec{})
	ctx := context.Background()
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = q.Send(ctx, "late")
	}()
	start := time.Now()
	msgs, err := q.Receive(ctx, queue.ReceiveOptions{WaitTime: 10 * time.Second})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("long poll returned after %v; want soon after the send", el)
	}
}

func TestRedriveToDLQ(t *testing.T) {
	q, created := newQueue(t, awstest.QueueSpec{MaxReceives: 2})
	ctx := context.Background()
	c := awstest.NeedClients(t, faux)
	dlq, err := sqsqueue.New(c.SQS(), created.DLQURL, sqsqueue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Send(ctx, "poison"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		msgs, err := q.Receive(ctx, queue.ReceiveOptions{WaitTime: time.Second, VisibilityTimeout: time.Second})
		if err != nil || len(msgs) != 1 || msgs[0].ReceiveCount != i {
			t.Fatalf("receive %d = %+v, %v", i, msgs, err)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	msgs, err := q.Receive(ctx, queue.ReceiveOptions{WaitTime: time.Second})
	if err != nil || len(msgs) != 0 {
		t.Fatalf("third receive = %+v, %v; want nothing (moved to the DLQ)", msgs, err)
	}
	msgs, err = dlq.Receive(ctx, queue.ReceiveOptions{WaitTime: time.Second})
	if err != nil || len(msgs) != 1 || msgs[0].Body != "poison" {
		t.Fatalf("DLQ receive = %+v, %v; want the poison message", msgs, err)
	}
}

func TestBadOptions(t *testing.T) {
	q, _ := newQueue(t, awstest.QueueSpec{})
	ctx := context.Background()
	for _, o := range []queue.ReceiveOptions{{MaxMessages: 11}, {MaxMessages: -1}, {WaitTime: 21 * time.Second}} {
		if _, err := q.Receive(ctx, o); err == nil {
			t.Errorf("Receive(%+v) = nil error; want a range error", o)
		}
	}
	if _, err := sqsqueue.New(nil, "u", sqsqueue.Options{}); err == nil {
		t.Error("New(nil client) succeeded")
	}
}

// TestConformance runs the queue port's suite against fauxqs, exactly as memqueue
// runs it in process.
func TestConformance(t *testing.T) {
	ctx := context.Background()
	client := awstest.NeedClients(t, faux).SQS()
	queuetest.Run(t, queuetest.Harness{New: func(t *testing.T, cfg queuetest.Config) (queue.Queue, queue.Queue) {
		created, err := awstest.CreateQueue(ctx, client, awstest.QueueSpec{
			Name: awstest.Unique(t, "conf"), VisibilityTimeout: cfg.VisibilityTimeout,
			MaxMessageBytes: cfg.MaxMessageSize, MaxReceives: cfg.MaxReceiveCount,
		})
		if err != nil {
			t.Fatal(err)
		}
		q, err := sqsqueue.New(client, created.URL, sqsqueue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if created.DLQURL == "" {
			return q, nil
		}
		dlq, err := sqsqueue.New(client, created.DLQURL, sqsqueue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return q, dlq
	}})
}

func TestSettingsReadTheQueuesVisibilityAndRedrive(t *testing.T) {
	q, _ := newQueue(t, awstest.QueueSpec{VisibilityTimeout: 10 * time.Second, MaxReceives: 4})
	st, err := q.Settings(context.Background())
	if err != nil || st.Visibility != 10*time.Second || st.MaxReceives != 4 {
		t.Fatalf("Settings = %+v, %v; want 10s and 4 receives", st, err)
	}
	plain, _ := newQueue(t, awstest.QueueSpec{})
	if st, err := plain.Settings(context.Background()); err != nil || st.Visibility != 30*time.Second || st.MaxReceives != 0 {
		t.Fatalf("Settings of a queue without redrive = %+v, %v; want 30s and 0", st, err)
	}
}

// tierQueue is the request queue as the tiers use it under the template's IAM
// policies: the web tier sends, the app tier receives, deletes, extends and
// reads counts. Each call goes out with that tier's own access key.
type tierQueue struct {
	web, app *sqsqueue.Queue
}

func (q tierQueue) Send(ctx context.Context, body string) (string, error) {
	return q.web.Send(ctx, body)
}
func (q tierQueue) Receive(ctx context.Context, o queue.ReceiveOptions) ([]queue.Message, error) {
	return q.app.Receive(ctx, o)
}
func (q tierQueue) Delete(ctx context.Context, h string) error { return q.app.Delete(ctx, h) }
func (q tierQueue) ChangeVisibility(ctx context.Context, h string, d time.Duration) error {
	return q.app.ChangeVisibility(ctx, h, d)
}
func (q tierQueue) Counts(ctx context.Context) (queue.Counts, error) { return q.app.Counts(ctx) }

// TestConformanceMoto runs the suite against moto with IAM enforced: every
// queue is the template's RequestQueue of a fresh stack (its DLQ the
// RequestDLQ), driven by users whose policies are template.yaml's WebRole and
// AppRole. The web tier reads the dead-letter queue, as its watcher does.
func TestConformanceMoto(t *testing.T) {
	m := awstest.NeedMoto(t, moto)
	ctx := context.Background()
	admin, err := m.ClientsFor(ctx, m.Admin)
	if err != nil {
		t.Fatal(err)
	}
	queuetest.Run(t, queuetest.Harness{StaleHandleAccepted: true, New: func(t *testing.T, cfg queuetest.Config) (queue.Queue, queue.Queue) {
		st := m.NewStack(awstest.Unique(t, "sq")[:15])
		created, err := awstest.CreateQueue(ctx, admin.SQS(), awstest.QueueSpec{
			Name: st.QueueName("RequestQueue"), VisibilityTimeout: cfg.VisibilityTimeout,
			MaxMessageBytes: cfg.MaxMessageSize, MaxReceives: cfg.MaxReceiveCount,
		})
		if err != nil {
			t.Fatal(err)
		}
		if created.DLQURL != "" {
			st.Refs["RequestDLQ"], st.Attrs["RequestDLQ.Arn"] = created.DLQURL, created.DLQARN
		}
		tq := tierQueue{}
		var webC *sqs.Client
		for tier, dst := range map[string]**sqsqueue.Queue{"web": &tq.web, "app": &tq.app} {
			creds, err := m.TierUser(ctx, tier, st)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := m.ClientsFor(ctx, creds)
			if err != nil {
				t.Fatal(err)
			}
			if *dst, err = sqsqueue.New(cl.SQS(), created.URL, sqsqueue.Options{}); err != nil {
				t.Fatal(err)
			}
			if tier == "web" {
				webC = cl.SQS()
			}
		}
		if created.DLQURL == "" {
			return tq, nil
		}
		dlq, err := sqsqueue.New(webC, created.DLQURL, sqsqueue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tq, dlq
	}})
}
