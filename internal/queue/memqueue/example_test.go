package memqueue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
)

// The queue port as the tiers use it: send, receive (the message becomes
// invisible), then delete it once its work is stored; an adapter that passes
// queuetest behaves the same on SQS.
func Example() {
	ctx := context.Background()
	var q queue.Queue
	q, err := memqueue.New(memqueue.Options{Name: "requests", VisibilityTimeout: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	if _, err := q.Send(ctx, `{"key":"amy1.png"}`); err != nil {
		panic(err)
	}
	msgs, _ := q.Receive(ctx, queue.ReceiveOptions{MaxMessages: 1})
	n, _ := q.Counts(ctx)
	fmt.Println(msgs[0].Body, "visible:", n.Visible, "in flight:", n.InFlight)
	_ = q.Delete(ctx, msgs[0].ReceiptHandle)
	n, _ = q.Counts(ctx)
	fmt.Println("after delete:", n.Visible+n.InFlight)
	// Output:
	// {"key":"amy1.png"} visible: 0 in flight: 1
	// after delete: 0
}
