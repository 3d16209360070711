// Package notify pushes transfer events to the WebSocket connections that
// watch them. It takes ferry's events from an SQS queue (an EventBridge
// rule on ferry's bus sends them there), finds each event's subscribers —
// of its transfer, of its sender and of its recipient — with Queries of
// the connections table, and posts the event to each through the
// @connections management API, in order.
//
// Order per subscriber holds whatever order SQS delivers in: each
// connection has a cursor per transfer (the last seq sent to it), moved
// by a conditional write before a push. An event at or behind the cursor
// was sent already (a duplicate delivery, or a later event's catch-up) and
// is skipped; an event ahead of it by more than one is preceded by the
// events between, read from the event store. Pushes to different
// connections run side by side, each with a timeout, so one slow or dead
// connection holds up no other; a connection that answers 410 Gone is
// forgotten.
package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/live"
	ferrylive "github.com/ferryhq/ferry/live"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

// Connections is what notify needs of the connections table.
type Connections interface {
	Subscribers(ctx context.Context, topic ferrylive.Topic) ([]ferrylive.Subscriber, error)
	Claim(ctx context.Context, id, transfer string, seq int) (from int, ok bool, err error)
	Rewind(ctx context.Context, id, transfer string, seq, from int) error
	Disconnect(ctx context.Context, id string) error
}

// Events reads the events a subscriber missed.
type Events interface {
	EventStates(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, []domain.State, error)
}

// Pusher sends a frame to a connection; ferrylive.ErrGone when it is gone.
type Pusher interface {
	Post(ctx context.Context, id string, data []byte) error
}

// Handler is the notify Lambda.
type Handler struct {
	Connections Connections
	Events      Events
	Push        Pusher
	// Parallel is how many connections are pushed to at once; 16 when 0.
	Parallel int
	Log      *slog.Logger
}

// envelope is an EventBridge event as the rule delivers it to SQS.
type envelope struct {
	DetailType string        `json:"detail-type"`
	Detail     schema.Detail `json:"detail"`
}

// Handle pushes the events of one batch. A record whose subscribers could
// not be read, or whose push failed for a reason that may pass, is
// reported failed (SQS delivers it again; the cursors skip what was sent);
// a malformed record is logged and dropped: no retry would mend it.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	type item struct {
		msgID string
		d     schema.Detail
	}
	var items []item
	for _, r := range ev.Records {
		var env envelope
		if err := json.Unmarshal([]byte(r.Body), &env); err != nil || !domain.ValidID(env.Detail.TransferID) || env.Detail.Seq < 1 {
			h.Log.ErrorContext(ctx, "not a transfer event; dropped", "messageId", r.MessageId, "error", err)
			continue
		}
		items = append(items, item{r.MessageId, env.Detail})
	}
	// A batch's events of one transfer go out in their order.
	slices.SortStableFunc(items, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.d.TransferID, b.d.TransferID), cmp.Compare(a.d.Seq, b.d.Seq))
	})
	var resp events.SQSEventResponse
	for _, it := range items {
		if err := h.notify(ctx, it.d); err != nil {
			h.Log.WarnContext(ctx, "event not pushed to every subscriber; it will be retried", "transfer", it.d.TransferID, "seq", it.d.Seq, "error", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: it.msgID})
		}
	}
	return resp, nil
}

// notify pushes one event to every connection that watches it and may see
// it.
func (h *Handler) notify(ctx context.Context, d schema.Detail) error {
	subs := map[string]ferrylive.Subscriber{}
	topics := []ferrylive.Topic{ferrylive.TransferTopic(d.TransferID)}
	for _, p := range []string{d.Sender, d.Recipient} {
		if p != "" {
			topics = append(topics, ferrylive.PartyTopic(p))
		}
	}
	for _, t := range topics {
		found, err := h.Connections.Subscribers(ctx, t)
		if err != nil {
			return err
		}
		for _, s := range found {
			subs[s.Connection] = s
		}
	}
	req := domain.Requested{Sender: d.Sender, Recipient: d.Recipient}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, cmp.Or(h.Parallel, 16))
	)
	for _, s := range subs {
		if !live.Sees(s.Identity, req) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := h.send(ctx, s, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// send pushes d to one subscriber, after the events it has not had.
func (h *Handler) send(ctx context.Context, s ferrylive.Subscriber, d schema.Detail) error {
	from, ok, err := h.Connections.Claim(ctx, s.Connection, d.TransferID, d.Seq)
	if err != nil || !ok {
		return err
	}
	details := []schema.Detail{d}
	if missed := d.Seq - from - 1; missed > 0 {
		evs, states, err := h.Events.EventStates(ctx, d.TransferID, from, missed)
		if err != nil {
			return err
		}
		details = details[:0]
		for i, e := range evs {
			details = append(details, schema.NewDetail(e, states[i]))
		}
		details = append(details, d)
	}
	for _, x := range details {
		b, _ := json.Marshal(live.Frame{Type: "event", Event: Redact(x, s.Identity)})
		switch err := h.Push.Post(ctx, s.Connection, b); {
		case errors.Is(err, ferrylive.ErrGone):
			h.Log.InfoContext(ctx, "connection gone; forgotten", "connection", s.Connection, "party", s.Party)
			return h.Connections.Disconnect(ctx, s.Connection)
		case err != nil && domain.KindOf(err) == domain.KindUnavailable:
			// Sent up to before x: the retry starts there.
			if rerr := h.Connections.Rewind(ctx, s.Connection, d.TransferID, d.Seq, max(from, x.Seq-1)); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		case err != nil:
			h.Log.WarnContext(ctx, "push refused", "connection", s.Connection, "party", s.Party, "error", err)
			return nil
		}
	}
	return nil
}

// Redact is d as who may see it: a partner is not shown where a file was
// delivered (a path in the recipient's systems) nor who acted on it (which
// may name an operator's key).
func Redact(d schema.Detail, who ferrylive.Identity) schema.Detail {
	if who.Role != store.RoleOperator {
		d.Location, d.Actor = "", ""
	}
	return d
}
