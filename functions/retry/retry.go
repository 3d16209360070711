// Package retry wakes transfers whose retry time has come. A retryable
// failure is followed by a message on the retry queue, delayed until the
// retry is due (SQS delays at most 15 minutes; a longer wait is covered by
// rescheduling). The handler appends Retried, whose stream record wakes the
// advance function again. The same queue carries tracking checks for
// deliveries that wait for an acknowledgement (track.go).
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
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/store"
)

// maxDelay is the longest delay SQS accepts on a message.
const maxDelay = 15 * time.Minute

// Message is the body of a retry queue message.
type Message struct {
	// Kind is "retry" (the default: resume after a retryable failure) or
	// "track" (look for the acknowledgement of a delivered transfer).
	Kind       string    `json:"kind,omitempty"`
	TransferID string    `json:"transferId"`
	Version    int       `json:"version"`
	At         time.Time `json:"at"`
}

// Message kinds.
const (
	KindRetry = "retry"
	KindTrack = "track"
)

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
	return q.schedule(ctx, Message{Kind: KindRetry, TransferID: id, Version: version, At: at})
}

func (q *Queue) schedule(ctx context.Context, m Message) error {
	at := m.At
	body, err := json.Marshal(m)
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

// Scheduler re-arms a retry or a tracking check that is not due yet.
type Scheduler interface {
	ScheduleRetry(ctx context.Context, id string, version int, at time.Time) error
	ScheduleTrack(ctx context.Context, id string, version int, at time.Time) error
}

// Handler is the retry Lambda.
type Handler struct {
	Store     Store
	Scheduler Scheduler
	// Trackers by destination type, Acknowledgers by source kind.
	Trackers      map[string]Tracker
	Acknowledgers map[string]Acknowledger
	// TrackInterval is the wait between tracking checks (default
	// transport.DefaultTrackInterval); TrackFor is how long after delivery
	// to keep looking (default DefaultTrackFor).
	TrackInterval time.Duration
	TrackFor      time.Duration
	Now           func() time.Time
	Log           *slog.Logger
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
	if msg.Kind == KindTrack {
		return h.track(ctx, log, st, msg)
	}
	if st.Version != msg.Version || st.Status != domain.StatusRetrying {
		log.InfoContext(ctx, "retry no longer needed", "status", st.Status)
		return nil
	}
	now := h.Now()
	if now.Before(st.NextAttemptAt) {
		return h.Scheduler.ScheduleRetry(ctx, st.ID, st.Version, st.NextAttemptAt)
	}
	d, err := store.DecideAppend(ctx, h.Store, st, domain.Retry{}, now)
	if err != nil || d.Lost {
		return err
	}
	log.InfoContext(ctx, "retrying", "attempt", st.Attempt+1)
	return nil
}
