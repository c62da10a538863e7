// Package queue is the port for a message queue with SQS semantics: at-least-once
// delivery, visibility timeouts, receive counts and a dead-letter queue after N
// receives. Adapters live in sub-packages (memqueue, sqsqueue) and all pass the
// conformance suite in queuetest.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Message is one received message. ReceiptHandle identifies this delivery, not the
// message: Delete and ChangeVisibility need the handle of the latest receive.
type Message struct {
	ID            string
	Body          string
	ReceiptHandle string
	// ReceiveCount is SQS's ApproximateReceiveCount: 1 on the first delivery.
	ReceiveCount int
	// SentAt is when the message was first sent (SQS SentTimestamp).
	SentAt time.Time
}

// ReceiveOptions mirror SQS ReceiveMessage's parameters.
type ReceiveOptions struct {
	// MaxMessages is 1..10; 0 means 1.
	MaxMessages int
	// WaitTime is the long-poll wait (0..20 s). Receive returns as soon as a message
	// is available, or empty after WaitTime.
	WaitTime time.Duration
	// VisibilityTimeout overrides the queue's default for this receive; 0 keeps it.
	VisibilityTimeout time.Duration
}

// Counts are the approximate attribute counts SQS reports.
type Counts struct {
	Visible  int `json:"visible"`   // ApproximateNumberOfMessages
	InFlight int `json:"in_flight"` // ApproximateNumberOfMessagesNotVisible
	Delayed  int `json:"delayed"`   // ApproximateNumberOfMessagesDelayed
}

// Queue is the port. Every method takes a context first and honours cancellation.
type Queue interface {
	// Send enqueues body and returns the message ID.
	Send(ctx context.Context, body string) (string, error)
	Receive(ctx context.Context, opts ReceiveOptions) ([]Message, error)
	// Delete acknowledges a message by receipt handle. Deleting an already deleted
	// message is not an error (as in SQS).
	Delete(ctx context.Context, receiptHandle string) error
	// ChangeVisibility makes an in-flight message visible again after d (0: now).
	ChangeVisibility(ctx context.Context, receiptHandle string, d time.Duration) error
	Counts(ctx context.Context) (Counts, error)
}

// Errors every adapter maps to, so callers can act on them with errors.Is.
var (
	// ErrInvalidReceipt: the receipt handle is unknown or expired (the message was
	// received again by someone else).
	ErrInvalidReceipt = errors.New("queue: receipt handle is invalid or expired")
	// ErrTooLarge: the body exceeds the queue's maximum message size.
	ErrTooLarge = errors.New("queue: message body exceeds the maximum message size")
	// ErrInvalidBody: the body is empty or holds characters SQS rejects (allowed:
	// #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF, valid UTF-8).
	ErrInvalidBody = errors.New("queue: message body is empty or has characters SQS does not allow")
	// ErrInvalidArgument: a parameter is out of SQS's range (MaxMessages 0..10,
	// WaitTime 0..20 s, visibility 0..12 h, negative durations).
	ErrInvalidArgument = errors.New("queue: parameter out of range")
)

// SQS's fixed limits on ReceiveMessage and ChangeMessageVisibility.
const (
	MaxReceiveMessages   = 10
	MaxWaitTime          = 20 * time.Second
	MaxVisibilityTimeout = 12 * time.Hour
)

// Check validates o against SQS's ranges, so every adapter rejects the same
// options with ErrInvalidArgument, and returns how many messages to ask for
// (MaxMessages, with 0 meaning 1).
func (o ReceiveOptions) Check() (int, error) {
	n := o.MaxMessages
	if n == 0 {
		n = 1
	}
	if n < 1 || n > MaxReceiveMessages {
		return 0, fmt.Errorf("MaxMessages %d is outside 0..%d: %w", o.MaxMessages, MaxReceiveMessages, ErrInvalidArgument)
	}
	if o.WaitTime < 0 || o.WaitTime > MaxWaitTime {
		return 0, fmt.Errorf("WaitTime %v is outside 0..%v: %w", o.WaitTime, MaxWaitTime, ErrInvalidArgument)
	}
	if err := CheckVisibility(o.VisibilityTimeout); err != nil {
		return 0, err
	}
	return n, nil
}

// CheckVisibility validates a visibility timeout against SQS's 0..12 h.
func CheckVisibility(d time.Duration) error {
	if d < 0 || d > MaxVisibilityTimeout {
		return fmt.Errorf("visibility %v is outside 0..%v: %w", d, MaxVisibilityTimeout, ErrInvalidArgument)
	}
	return nil
}
