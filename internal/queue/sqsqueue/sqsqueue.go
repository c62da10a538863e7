// Package sqsqueue is the queue port on Amazon SQS (aws-sdk-go-v2). It passes the
// queuetest conformance suite against fauxqs on loopback.
package sqsqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/facefleet/facefleet/internal/queue"
)

// Options tune the adapter.
type Options struct {
	// MaxMessageBytes rejects larger bodies with queue.ErrTooLarge before sending.
	// 0 reads the queue's MaximumMessageSize attribute on first Send.
	MaxMessageBytes int
}

// Queue is one SQS queue.
type Queue struct {
	client *sqs.Client
	url    string
	opts   Options

	mu      sync.Mutex
	maxSize int // resolved MaxMessageBytes; 0 until known
}

var _ queue.Queue = (*Queue)(nil)

// New returns the queue at queueURL. The client's endpoint, not the URL's host,
// decides where requests go.
func New(client *sqs.Client, queueURL string, opts Options) (*Queue, error) {
	if client == nil {
		return nil, errors.New("sqsqueue: nil SQS client")
	}
	if queueURL == "" {
		return nil, errors.New("sqsqueue: empty queue URL")
	}
	if opts.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("sqsqueue: MaxMessageBytes %d is negative", opts.MaxMessageBytes)
	}
	return &Queue{client: client, url: queueURL, opts: opts, maxSize: opts.MaxMessageBytes}, nil
}

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

func (q *Queue) maxBytes(ctx context.Context) (int, error) {
	q.mu.Lock()
	n := q.maxSize
	q.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameMaximumMessageSize},
	})
	if err != nil {
		return 0, q.wrap("read MaximumMessageSize", err)
	}
	n, err = strconv.Atoi(out.Attributes[string(types.QueueAttributeNameMaximumMessageSize)])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("sqsqueue: queue %s reports MaximumMessageSize %q", q.url, out.Attributes[string(types.QueueAttributeNameMaximumMessageSize)])
	}
	q.mu.Lock()
	q.maxSize = n
	q.mu.Unlock()
	return n, nil
}

// Send enqueues body.
func (q *Queue) Send(ctx context.Context, body string) (string, error) {
	if err := checkBody(body); err != nil {
		return "", err
	}
	limit, err := q.maxBytes(ctx)
	if err != nil {
		return "", err
	}
	if len(body) > limit {
		return "", fmt.Errorf("sqsqueue: body of %d bytes exceeds the %d-byte limit of %s: %w", len(body), limit, q.url, queue.ErrTooLarge)
	}
	out, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: aws.String(body)})
	if err != nil {
		return "", q.wrap("send", err)
	}
	return aws.ToString(out.MessageId), nil
}

// checkBody applies SQS's character rules locally, so a bad body fails with
// queue.ErrInvalidBody whatever the server's wording.
func checkBody(body string) error {
	if body == "" {
		return fmt.Errorf("sqsqueue: empty body: %w", queue.ErrInvalidBody)
	}
	if !utf8.ValidString(body) {
		return fmt.Errorf("sqsqueue: body is not valid UTF-8: %w", queue.ErrInvalidBody)
	}
	for i, r := range body {
		ok := r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
		if !ok {
			return fmt.Errorf("sqsqueue: body has character %U at byte %d, which SQS does not allow: %w", r, i, queue.ErrInvalidBody)
		}
	}
	return nil
}

// seconds rounds d up to whole seconds (SQS's unit), so a short positive duration
// never turns into "none".
func seconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}

// Receive long-polls for up to opts.WaitTime.
func (q *Queue) Receive(ctx context.Context, opts queue.ReceiveOptions) ([]queue.Message, error) {
	n, err := opts.Check()
	if err != nil {
		return nil, fmt.Errorf("sqsqueue: receive from %s: %w", q.url, err)
	}
	in := &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(q.url),
		MaxNumberOfMessages: int32(n),
		WaitTimeSeconds:     seconds(opts.WaitTime),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	}
	if opts.VisibilityTimeout > 0 {
		in.VisibilityTimeout = seconds(opts.VisibilityTimeout)
	}
	out, err := q.client.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, q.wrap("receive", err)
	}
	msgs := make([]queue.Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg := queue.Message{
			ID:            aws.ToString(m.MessageId),
			Body:          aws.ToString(m.Body),
			ReceiptHandle: aws.ToString(m.ReceiptHandle),
		}
		if v, ok := m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]; ok {
			if c, err := strconv.Atoi(v); err == nil {
				msg.ReceiveCount = c
			}
		}
		if v, ok := m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)]; ok {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				msg.SentAt = time.UnixMilli(ms)
			}
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// Delete acknowledges a message.
func (q *Queue) Delete(ctx context.Context, receiptHandle string) error {
	if receiptHandle == "" {
		return fmt.Errorf("sqsqueue: empty receipt handle: %w", queue.ErrInvalidReceipt)
	}
	_, err := q.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receiptHandle)})
	if err != nil {
		return q.wrap("delete", err)
	}
	return nil
}

// ChangeVisibility sets the message's remaining invisibility to d.
func (q *Queue) ChangeVisibility(ctx context.Context, receiptHandle string, d time.Duration) error {
	if receiptHandle == "" {
		return fmt.Errorf("sqsqueue: empty receipt handle: %w", queue.ErrInvalidReceipt)
	}
	if err := queue.CheckVisibility(d); err != nil {
		return fmt.Errorf("sqsqueue: change visibility on %s: %w", q.url, err)
	}
	_, err := q.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.url), ReceiptHandle: aws.String(receiptHandle), VisibilityTimeout: seconds(d),
	})
	if err != nil {
		return q.wrap("change visibility", err)
	}
	return nil
}

// Counts reads the approximate counts.
func (q *Queue) Counts(ctx context.Context) (queue.Counts, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return queue.Counts{}, q.wrap("get attributes", err)
	}
	var c queue.Counts
	for name, dst := range map[types.QueueAttributeName]*int{
		types.QueueAttributeNameApproximateNumberOfMessages:           &c.Visible,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible: &c.InFlight,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed:    &c.Delayed,
	} {
		v, ok := out.Attributes[string(name)]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return queue.Counts{}, fmt.Errorf("sqsqueue: %s of %s is %q, not a number", name, q.url, v)
		}
		*dst = n
	}
	return c, nil
}

// Settings are the queue attributes the tiers derive their timeouts from.
type Settings struct {
	// Visibility is the queue's VisibilityTimeout.
	Visibility time.Duration
	// MaxReceives is the redrive policy's maxReceiveCount (0: no dead-letter queue).
	MaxReceives int
}

// Settings reads the queue's visibility timeout and redrive policy, so the tiers
// use what the queue does rather than what a flag says.
func (q *Queue) Settings(ctx context.Context) (Settings, error) {
	out, err := q.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout, types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		return Settings{}, q.wrap("get attributes", err)
	}
	var st Settings
	v, ok := out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]
	n, err := strconv.Atoi(v)
	if !ok || err != nil || n < 0 {
		return Settings{}, fmt.Errorf("sqsqueue: VisibilityTimeout of %s is %q, not a number of seconds", q.url, v)
	}
	st.Visibility = time.Duration(n) * time.Second
	if rp := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]; rp != "" {
		// maxReceiveCount is a number in AWS's JSON and a string in some emulators'.
		var p struct {
			MaxReceiveCount json.RawMessage `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(rp), &p); err != nil {
			return Settings{}, fmt.Errorf("sqsqueue: RedrivePolicy of %s is not JSON: %w", q.url, err)
		}
		if st.MaxReceives, err = strconv.Atoi(strings.Trim(string(p.MaxReceiveCount), `"`)); err != nil || st.MaxReceives < 1 {
			return Settings{}, fmt.Errorf("sqsqueue: RedrivePolicy of %s has maxReceiveCount %s, not a positive number", q.url, p.MaxReceiveCount)
		}
	}
	return st, nil
}

// wrap maps SQS errors onto the port's errors and names the queue and operation.
func (q *Queue) wrap(op string, err error) error {
	var (
		invalidReceipt *types.ReceiptHandleIsInvalid
		notInflight    *types.MessageNotInflight
	)
	switch {
	case errors.As(err, &invalidReceipt), errors.As(err, &notInflight):
		return fmt.Errorf("sqsqueue: %s on %s: %w (%w)", op, q.url, queue.ErrInvalidReceipt, err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code, msg := apiErr.ErrorCode(), strings.ToLower(apiErr.ErrorMessage())
		switch {
		case strings.Contains(code, "ReceiptHandleIsInvalid"), strings.Contains(code, "MessageNotInflight"),
			strings.Contains(code, "InvalidParameterValue") && strings.Contains(msg, "receipt"):
			return fmt.Errorf("sqsqueue: %s on %s: %w (%w)", op, q.url, queue.ErrInvalidReceipt, err)
		case strings.Contains(code, "InvalidParameterValue") && (strings.Contains(msg, "shorter than") || strings.Contains(msg, "too long") || strings.Contains(msg, "size")),
			strings.Contains(code, "MessageTooLong"), strings.Contains(code, "BatchRequestTooLong"):
			return fmt.Errorf("sqsqueue: %s on %s: %w (%w)", op, q.url, queue.ErrTooLarge, err)
		case strings.Contains(code, "InvalidMessageContents"):
			return fmt.Errorf("sqsqueue: %s on %s: %w (%w)", op, q.url, queue.ErrInvalidBody, err)
		}
	}
	return fmt.Errorf("sqsqueue: %s on %s: %w", op, q.url, err)
}
