// Package retry wakes transfers whose retry time has come. A retryable
// failure is followed by a message on the retry queue, delayed until the
// retry is due (SQS delays at most 15 minutes; a longer wait is covered by
// rescheduling). The handler appends Retried, whose stream record wakes the
// advance function again.
package retry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/awserr"
)

// maxDelay is the longest delay SQS accepts on a message.
const maxDelay = 15 * time.Minute

// Message is the body of a retry queue message.
type Message struct {
	TransferID string    `json:"transferId"`
	Version    int       `json:"version"`
	At         time.Time `json:"at"`
}

// Sender is what Queue needs of SQS.
type Sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Queue schedules retries as delayed SQS messages.
type Queue struct {
	SQS Sender
	URL string
	Now func() time.Time
}

// ScheduleRetry sends a message that becomes visible at at (or in 15
// minutes, whichever is sooner). Errors are classified *domain.Error values.
func (q *Queue) ScheduleRetry(ctx context.Context, id string, version int, at time.Time) error {
	body, err := json.Marshal(Message{TransferID: id, Version: version, At: at})
	if err != nil {
		return err
	}
	delay := min(max(at.Sub(q.Now()), 0), maxDelay)
	_, err = q.SQS.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     &q.URL,
		MessageBody:  aws.String(string(body)),
		DelaySeconds: int32(math.Ceil(delay.Seconds())),
	})
	if err != nil {
		return awserr.Classify("schedule retry", err)
	}
	return nil
}

// Store is what the retry handler needs of the event store.
type Store interface {
	Load(ctx context.Context, id string) (domain.State, error)
	Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error)
}

// Scheduler re-arms a retry that is not due yet.
type Scheduler interface {
	ScheduleRetry(ctx context.Context, id string, version int, at time.Time) error
}

// Handler is the retry Lambda.
type Handler struct {
	Store     Store
	Scheduler Scheduler
	Now       func() time.Time
	Log       *slog.Logger
}

// Handle processes retry messages. A message about a transfer that has
// moved on since (another retry, a replay, a cancel) is dropped. A malformed
// message or a store error is a batch item failure.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, m := range ev.Records {
		if err := h.one(ctx, m); err != nil {
			h.Log.ErrorContext(ctx, "retry message failed", "messageId", m.MessageId, "error", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		}
	}
	return resp, nil
}

func (h *Handler) one(ctx context.Context, m events.SQSMessage) error {
	var msg Message
	if err := json.Unmarshal([]byte(m.Body), &msg); err != nil || msg.TransferID == "" {
		return domain.Errorf(domain.KindInvalid, "not a retry message: %s", m.Body)
	}
	st, err := h.Store.Load(ctx, msg.TransferID)
	if err != nil {
		return fmt.Errorf("load %s: %w", msg.TransferID, err)
	}
	log := h.Log.With("transfer", st.ID, "version", st.Version)
	if st.Version != msg.Version || st.Status != domain.StatusRetrying {
		log.InfoContext(ctx, "retry no longer needed", "status", st.Status)
		return nil
	}
	now := h.Now()
	if now.Before(st.NextAttemptAt) {
		return h.Scheduler.ScheduleRetry(ctx, st.ID, st.Version, st.NextAttemptAt)
	}
	evs, err := domain.Decide(st, domain.Retry{}, now)
	if err != nil {
		return err
	}
	_, err = h.Store.Append(ctx, st, evs...)
	if domain.KindOf(err) == domain.KindConflict {
		return nil
	}
	if err == nil {
		log.InfoContext(ctx, "retrying", "attempt", st.Attempt+1)
	}
	return err
}
