package esm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSConfig configures an SQSMapping. WithDefaults fills the zero fields.
type SQSConfig struct {
	Name     string      // identifies the mapping in logs (required)
	SQS      *sqs.Client // required
	QueueURL string      // required
	Handler  SQSHandler  // required

	// BatchSize is the most messages per invocation, 1..10 (default 10).
	BatchSize int
	// Concurrency is how many batches are handled at once (default 1), as
	// Lambda's pollers invoke a function with several batches at once, up to
	// the mapping's MaximumConcurrency. The mapping still receives one batch
	// at a time, and only when a handler is free: moto's ReceiveMessage is
	// not safe to call side by side on one queue (concurrent receives lost
	// messages until their visibility timeout).
	Concurrency int
	// WaitTime is the long-poll wait of each receive, whole seconds up to
	// 20s (default 1s, so that a quiet mapping still reacts to shutdown
	// promptly and leaves at most that long a receive in flight).
	WaitTime time.Duration
	// VisibilityTimeout is how long a received message stays hidden while
	// the handler works on it (whole seconds; default: the queue's own).
	VisibilityTimeout time.Duration
	// RetryDelay is how soon a failed message becomes visible again (whole
	// seconds, rounded up; default 1s).
	RetryDelay time.Duration
	Logger     *slog.Logger // default slog.Default()
	// ReportBatchItemFailures reads the handler's BatchItemFailures (nil
	// means true); when false only an error or a panic fails messages, and
	// then every message of the batch, as in Lambda without the function
	// response type.
	ReportBatchItemFailures *bool
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c SQSConfig) WithDefaults() SQSConfig {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultSQSBatchSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.WaitTime == 0 {
		c.WaitTime = DefaultWaitTime
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReportBatchItemFailures == nil {
		c.ReportBatchItemFailures = aws.Bool(true)
	}
	return c
}

// Validate reports every problem with c at once.
func (c SQSConfig) Validate() error {
	const maxVisibility = 12 * time.Hour
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.SQS == nil {
		errs = append(errs, errors.New("SQS client is required"))
	}
	if c.QueueURL == "" {
		errs = append(errs, errors.New("queue URL is required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("handler is required"))
	}
	if c.BatchSize < 1 || c.BatchSize > 10 {
		errs = append(errs, fmt.Errorf("batch size %d is not in 1..10", c.BatchSize))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d is not positive", c.Concurrency))
	}
	if c.WaitTime < 0 || c.WaitTime > 20*time.Second {
		errs = append(errs, fmt.Errorf("wait time %s is not in 0..20s", c.WaitTime))
	}
	if c.VisibilityTimeout < 0 || c.VisibilityTimeout > maxVisibility {
		errs = append(errs, fmt.Errorf("visibility timeout %s is not in 0..12h", c.VisibilityTimeout))
	}
	if c.RetryDelay < 0 || c.RetryDelay > maxVisibility {
		errs = append(errs, fmt.Errorf("retry delay %s is not in 0..12h", c.RetryDelay))
	}
	return errors.Join(errs...)
}

// SQSMapping polls one queue and invokes a handler with batches of its
// messages, like a Lambda SQS trigger with ReportBatchItemFailures on.
//
// Messages the handler completed are deleted. Failed messages (listed in
// BatchItemFailures; all of them when the handler returns an error or
// panics) are left on the queue and made visible again after RetryDelay.
// The mapping does not count attempts itself: the queue's RedrivePolicy
// moves a message received more than maxReceiveCount times to its
// dead-letter queue, exactly as in AWS. Delivery is at least once.
type SQSMapping struct {
	cfg    SQSConfig
	region string
	log    *slog.Logger
}

// NewSQSMapping returns a mapping for cfg, with defaults filled in, or the
// problems Validate found.
func NewSQSMapping(cfg SQSConfig) (*SQSMapping, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("SQS mapping %q: %w", cfg.Name, err)
	}
	return &SQSMapping{
		cfg:    cfg,
		region: cfg.SQS.Options().Region,
		log:    cfg.Logger.With("mapping", cfg.Name),
	}, nil
}

// Run polls the queue until ctx is cancelled and returns nil then. A batch
// in flight at cancellation is settled: its completed messages are deleted,
// the rest made visible again at once. Run returns an error only if the
// queue does not exist; other failures of AWS calls are logged and retried
// with backoff.
func (m *SQSMapping) Run(ctx context.Context) error {
	arn, err := m.queueARN(ctx)
	if err != nil || ctx.Err() != nil {
		return err
	}
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(m.cfg.QueueURL),
		MaxNumberOfMessages:         int32(m.cfg.BatchSize),
		WaitTimeSeconds:             seconds(m.cfg.WaitTime),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	}
	if m.cfg.VisibilityTimeout > 0 {
		in.VisibilityTimeout = seconds(m.cfg.VisibilityTimeout)
	}
	// A slot is taken before each receive, so that received messages never
	// wait for a handler while their visibility timeout runs.
	slots := make(chan struct{}, m.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for failures := 0; ; {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		out, err := m.cfg.SQS.ReceiveMessage(ctx, in)
		var missing *sqstypes.QueueDoesNotExist
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &missing):
			return fmt.Errorf("SQS mapping %q: receive: %w", m.cfg.Name, err)
		case err != nil:
			<-slots
			m.log.Warn("receive failed", "err", err)
			if !sleep(ctx, backoff(failures)) {
				return nil
			}
			failures++
			continue
		}
		failures = 0
		if len(out.Messages) == 0 {
			<-slots
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			m.handle(ctx, arn, out.Messages)
		}()
	}
}

// queueARN asks for the queue's ARN, retrying until it gets it, ctx is
// cancelled (nil error) or the queue turns out not to exist.
func (m *SQSMapping) queueARN(ctx context.Context) (string, error) {
	for n := 0; ; n++ {
		out, err := m.cfg.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(m.cfg.QueueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		var missing *sqstypes.QueueDoesNotExist
		switch {
		case ctx.Err() != nil:
			return "", nil
		case errors.As(err, &missing):
			return "", fmt.Errorf("SQS mapping %q: %w", m.cfg.Name, err)
		case err == nil:
			return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
		}
		m.log.Warn("get queue ARN failed", "err", err)
		if !sleep(ctx, backoff(n)) {
			return "", nil
		}
	}
}

// handle invokes the handler with one received batch and settles each
// message: delete on success, short visibility on failure.
func (m *SQSMapping) handle(ctx context.Context, queueARN string, received []sqstypes.Message) {
	msgs := make([]events.SQSMessage, len(received))
	ids := make([]string, len(received))
	for i, r := range received {
		msgs[i] = sqsMessage(r, queueARN, m.region)
		ids[i] = msgs[i].MessageId
	}
	resp, err := invoke(ctx, m.cfg.Handler, events.SQSEvent{Records: msgs})
	var failed []bool
	reason := "batch item failure"
	if err != nil {
		reason = err.Error()
		failed = make([]bool, len(msgs))
		for i := range failed {
			failed[i] = true
		}
	} else if *m.cfg.ReportBatchItemFailures {
		failed = failedMessages(ids, resp)
	} else {
		failed = make([]bool, len(msgs))
	}

	// Settle the batch even when ctx was cancelled meanwhile: completed work
	// should not be delivered again.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	retryIn := seconds(m.cfg.RetryDelay)
	if ctx.Err() != nil {
		retryIn = 0 // shutting down: let the next run have them at once
	}
	var del []sqstypes.DeleteMessageBatchRequestEntry
	var retry []sqstypes.ChangeMessageVisibilityBatchRequestEntry
	for i, msg := range msgs {
		id := aws.String(strconv.Itoa(i))
		if !failed[i] {
			del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: id, ReceiptHandle: aws.String(msg.ReceiptHandle)})
			continue
		}
		retry = append(retry, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: id, ReceiptHandle: aws.String(msg.ReceiptHandle), VisibilityTimeout: retryIn})
		m.log.Warn("message failed", "message_id", msg.MessageId,
			"receive_count", msg.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)],
			"reason", reason)
	}
	if len(del) > 0 {
		out, err := m.cfg.SQS.DeleteMessageBatch(settle, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(m.cfg.QueueURL), Entries: del})
		if err != nil {
			m.log.Error("delete handled messages failed; they will be delivered again", "count", len(del), "err", err)
		} else {
			for _, f := range out.Failed {
				m.log.Error("delete handled message failed; it will be delivered again", "entry", aws.ToString(f.Id), "code", aws.ToString(f.Code), "err", aws.ToString(f.Message))
			}
		}
	}
	if len(retry) > 0 {
		out, err := m.cfg.SQS.ChangeMessageVisibilityBatch(settle, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(m.cfg.QueueURL), Entries: retry})
		if err != nil {
			m.log.Warn("shorten visibility of failed messages failed; they return after the visibility timeout", "count", len(retry), "err", err)
		} else {
			for _, f := range out.Failed {
				m.log.Warn("shorten visibility of failed message failed; it returns after the visibility timeout", "entry", aws.ToString(f.Id), "code", aws.ToString(f.Code), "err", aws.ToString(f.Message))
			}
		}
	}
}

// seconds rounds d up to whole seconds, as SQS takes them.
func seconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}
