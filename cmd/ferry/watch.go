package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

func runWatch(ctx context.Context, e *env, args []string) error {
	fs := newFlags("watch", e.stderr)
	observe := fs.String("observe-queue", "", "also wait for the Transfer Delivered event on this SQS queue (an EventBridge rule target)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	until := fs.String("until", "delivered", "stop at delivered or acknowledged")
	asJSON := fs.Bool("json", false, "print one JSON object per event (the EventBridge detail)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one transfer id")
	}
	if *until != "delivered" && *until != "acknowledged" {
		return usagef("--until must be delivered or acknowledged")
	}
	return watchTransfer(ctx, e, newProgress(e.stdout, *asJSON), pos[0], *observe, *timeout, *until == "acknowledged")
}

// watchTransfer prints a transfer's timeline as it grows (on a terminal,
// under it, its chunks as a bar; see progress) until it is delivered (or,
// with untilAck, acknowledged) or has ended, and (with a queue) until its
// Transfer Delivered event has arrived there. A transfer that ends failed
// or cancelled is an error.
func watchTransfer(ctx context.Context, e *env, p *progress, id, queue string, timeout time.Duration, untilAck bool) error {
	defer p.done()
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	var sqsc *sqs.Client
	if queue != "" {
		c, err := e.aws(ctx)
		if err != nil {
			return err
		}
		sqsc = sqs.NewFromConfig(c)
	}
	seen, published := 0, queue == ""
	var last domain.Event
	for {
		evs, states, err := st.EventStates(ctx, id, seen, 500)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("events of %s: %w", id, err)
		}
		for i, ev := range evs {
			p.event(ev, states[i])
			seen, last = ev.Seq, ev
		}
		if !published && sqsc != nil {
			if published, err = awaitPublished(ctx, sqsc, queue, id); err != nil {
				return err
			}
			if published {
				p.line(fmt.Sprintf("EventBridge: Transfer Delivered for %s received on %s", id, queue))
			}
		}
		if seen > 0 {
			switch last.Type() {
			case domain.TypeFailed:
				if f := last.Payload.(domain.Failed); !f.Retryable {
					return fmt.Errorf("transfer %s failed: %s", id, f.Message)
				}
			case domain.TypeCancelled:
				return fmt.Errorf("transfer %s was cancelled", id)
			case domain.TypeDelivered:
				if published && !untilAck {
					return nil
				}
			case domain.TypeAcknowledged:
				if published {
					return nil
				}
			}
		}
		if len(evs) == 500 {
			continue // more to read now
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transfer %s: stopped waiting: %w", id, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// awaitPublished takes one batch from an EventBridge target queue and
// reports whether it held the Transfer Delivered event of transfer id. Other
// transfers' messages are left for their own watchers.
func awaitPublished(ctx context.Context, c *sqs.Client, queue, id string) (bool, error) {
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queue, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 1})
	if err != nil {
		return false, fmt.Errorf("receive from %s: %w", queue, err)
	}
	found := false
	for _, m := range out.Messages {
		var ev struct {
			DetailType string        `json:"detail-type"`
			Detail     schema.Detail `json:"detail"`
		}
		if json.Unmarshal([]byte(aws.ToString(m.Body)), &ev) != nil || ev.Detail.TransferID != id {
			continue
		}
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &queue, ReceiptHandle: m.ReceiptHandle}); err != nil {
			return false, err
		}
		if ev.DetailType == schema.DetailType(domain.TypeDelivered) {
			found = true
		}
	}
	return found, nil
}
