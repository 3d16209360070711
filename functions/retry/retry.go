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
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
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

// ScheduleTrack sends a message that asks, at at, whether delivered
// transfer id has been acknowledged (or acknowledges its source again).
func (q *Queue) ScheduleTrack(ctx context.Context, id string, version int, at time.Time) error {
	return q.schedule(ctx, Message{Kind: KindTrack, TransferID: id, Version: version, At: at})
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

// Tracker asks a destination whether the far end acknowledged a delivery.
type Tracker interface {
	Track(ctx context.Context, t domain.State) (Tracking, error)
}

// Tracking is what a Tracker learnt.
type Tracking = transport.Tracking

// Acknowledger confirms to a transfer's source that the file is safe.
type Acknowledger interface {
	Acknowledge(ctx context.Context, t domain.State) error
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

// DefaultTrackFor is how long after delivery an acknowledgement is looked
// for when Handler.TrackFor is zero: 5 days, MESH's inbox expiry.
const DefaultTrackFor = 5 * 24 * time.Hour

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

// track looks for the acknowledgement of a delivered transfer (or repeats
// the acknowledgement of its source) and records what it finds; otherwise
// it looks again later, until TrackFor has passed since delivery.
func (h *Handler) track(ctx context.Context, log *slog.Logger, st domain.State, msg Message) error {
	if st.Version != msg.Version || st.Status != domain.StatusDelivered {
		log.InfoContext(ctx, "tracking no longer needed", "status", st.Status)
		return nil
	}
	now := h.Now()
	if now.Before(msg.At) {
		return h.Scheduler.ScheduleTrack(ctx, st.ID, st.Version, msg.At)
	}
	var cmd domain.Command
	var err error
	switch {
	case st.Request.AckSource:
		a, ok := h.Acknowledgers[st.Request.Source.Kind]
		if !ok {
			return domain.Errorf(domain.KindInvalid, "cannot acknowledge a %q source", st.Request.Source.Kind)
		}
		if err = a.Acknowledge(ctx, st); err == nil {
			cmd = domain.Acknowledge{By: "ferry", Ref: st.Request.Source.MessageID}
		}
	case st.Request.ExpectAck:
		t, ok := h.Trackers[st.Request.Destination.Type]
		if !ok {
			return domain.Errorf(domain.KindInvalid, "cannot track a %q destination", st.Request.Destination.Type)
		}
		var got Tracking
		if got, err = t.Track(ctx, st); err == nil {
			switch {
			case got.Failure != nil:
				cmd = domain.Fail{Err: got.Failure}
			case got.Acknowledged:
				cmd = domain.Acknowledge{By: got.By, Ref: st.Ref}
			}
		}
	default:
		return nil
	}
	if err != nil && !domain.KindOf(err).Retryable() {
		// Tracking refused for good (e.g. credentials): record it.
		cmd = domain.Fail{Err: &domain.Error{Kind: domain.KindOf(err), Code: domain.CodeOf(err), Message: err.Error()}}
	}
	if cmd == nil {
		set := h.settings()
		if now.Sub(st.Updated) > set.trackFor {
			log.WarnContext(ctx, "stopped looking for an acknowledgement", "deliveredAt", st.Updated)
			return nil
		}
		if err != nil {
			log.WarnContext(ctx, "tracking check failed; will look again", "error", err)
		}
		return h.Scheduler.ScheduleTrack(ctx, st.ID, st.Version, now.Add(set.trackInterval))
	}
	d, err := store.DecideAppend(ctx, h.Store, st, cmd, now)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "tracking recorded", "event", d.Events[0].Type(), "lostRace", d.Lost)
	return nil
}

// settings are the handler's tunables with every zero field set to its
// default: the one place retry applies its defaults.
type settings struct {
	trackInterval, trackFor time.Duration
}

func (h *Handler) settings() settings {
	s := settings{trackInterval: h.TrackInterval, trackFor: h.TrackFor}
	if s.trackInterval <= 0 {
		s.trackInterval = transport.DefaultTrackInterval
	}
	if s.trackFor <= 0 {
		s.trackFor = DefaultTrackFor
	}
	return s
}
