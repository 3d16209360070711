// Package publish announces every transfer event on EventBridge and keeps
// the read model (the per-transfer view behind history queries) current.
//
// It reads the event table's stream. Each event becomes one EventBridge
// entry; entries go out at most ten per PutEvents call, and only the entries
// that failed are sent again. A record whose entry still fails is reported
// in BatchItemFailures; redelivery may publish some events twice, so
// subscribers dedupe on detail.eventId ("<transferId>/<seq>").
package publish

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/internal/metrics"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

// maxEntries is the most entries one PutEvents call takes.
const maxEntries = 10

// Bus is what publish needs of EventBridge.
type Bus interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Projector keeps the read model current.
type Projector interface {
	// Project stores st as the transfer's view unless a newer one is stored.
	Project(ctx context.Context, st domain.State) (bool, error)
}

// Handler is the publish Lambda.
type Handler struct {
	Bus       Bus
	BusName   string
	Source    string // the events' source, "ferry" by default
	Projector Projector
	// Attempts bounds the PutEvents calls made for one batch of entries
	// (default 3).
	Attempts int
	// Projections is how many transfers' views are projected at once
	// (DefaultProjections when not positive); a transfer's own events are
	// always projected one after another, in their order.
	Projections int
	// MetricsNamespace, when set, is where each published event that fails
	// a transfer for good counts one TransfersFailed (see internal/metrics),
	// the metric the failing-for-good alarm watches.
	MetricsNamespace string
	Log              *slog.Logger
}

type pending struct {
	seqNo string
	entry ebtypes.PutEventsRequestEntry
	state domain.State
	event domain.Event
}

// Handle publishes the events in a batch of stream records.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	failed := func(seqNo string) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: seqNo})
	}
	var todo []pending
	for _, r := range ev.Records {
		if r.EventName != string(events.DynamoDBOperationTypeInsert) || !store.IsEventImage(r.Change.NewImage) {
			continue
		}
		e, st, err := store.DecodeImage(r.Change.NewImage)
		if err != nil {
			h.Log.ErrorContext(ctx, "undecodable stream record", "sequenceNumber", r.Change.SequenceNumber, "error", err)
			failed(r.Change.SequenceNumber)
			continue
		}
		detail, err := json.Marshal(schema.NewDetail(e, st))
		if err != nil {
			failed(r.Change.SequenceNumber)
			continue
		}
		todo = append(todo, pending{
			seqNo: r.Change.SequenceNumber,
			state: st,
			event: e,
			entry: ebtypes.PutEventsRequestEntry{
				EventBusName: aws.String(h.BusName),
				Source:       aws.String(h.source()),
				DetailType:   aws.String(schema.DetailType(e.Type())),
				Detail:       aws.String(string(detail)),
				Resources:    []string{"transfer/" + e.TransferID},
				Time:         aws.Time(e.At),
			},
		})
	}

	// Project first: a subscriber reacting to an event may query history.
	projected := h.project(ctx, todo)
	var published []pending
	for i, p := range todo {
		if !projected[i] {
			failed(p.seqNo)
			continue
		}
		published = append(published, p)
	}
	for start := 0; start < len(published); start += maxEntries {
		batch := published[start:min(start+maxEntries, len(published))]
		notPut := map[string]bool{}
		for _, p := range h.put(ctx, batch) {
			failed(p.seqNo)
			notPut[p.seqNo] = true
		}
		for _, p := range batch {
			if !notPut[p.seqNo] {
				h.count(ctx, p)
			}
		}
	}
	return resp, nil
}

// DefaultProjections is how many transfers' views publish projects at once
// by default.
const DefaultProjections = 16

// project stores the views of todo's events that change a view, up to
// Projections transfers at once and each transfer's events in their
// order, and reports which events are done (projected, or needing no
// projection). A stream batch holds many transfers' events (up to the
// mapping's batch size), each projection is a DynamoDB round trip, and
// one after another they made a batch as slow as their sum.
func (h *Handler) project(ctx context.Context, todo []pending) []bool {
	done := make([]bool, len(todo))
	var order []string
	byTransfer := map[string][]int{}
	for i, p := range todo {
		if !changesView(p.event) {
			done[i] = true
			continue
		}
		id := p.event.TransferID
		if byTransfer[id] == nil {
			order = append(order, id)
		}
		byTransfer[id] = append(byTransfer[id], i)
	}
	limit := h.Projections
	if limit <= 0 {
		limit = DefaultProjections
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, id := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(idx []int) {
			defer func() { <-sem; wg.Done() }()
			for _, i := range idx {
				p := todo[i]
				if _, err := h.Projector.Project(ctx, p.state); err != nil {
					h.Log.ErrorContext(ctx, "projection failed", "transfer", p.event.TransferID, "version", p.event.Seq, "error", err)
					continue
				}
				done[i] = true
			}
		}(byTransfer[id])
	}
	wg.Wait()
	return done
}

// count publishes the metrics of an event that was put on the bus: a
// transfer that failed for good counts one TransfersFailed. Counting after
// the put keeps a batch delivered again from counting it twice, mostly.
func (h *Handler) count(ctx context.Context, p pending) {
	if h.MetricsNamespace == "" || p.event.Type() != domain.TypeFailed || p.state.Status != domain.StatusFailed {
		return
	}
	attrs := []any{"transfer", p.event.TransferID, "route", p.state.Request.Route}
	if f := p.state.LastFailure; f != nil {
		attrs = append(attrs, "kind", f.Kind, "reason", f.Message)
	}
	metrics.Count(ctx, h.Log, h.MetricsNamespace, "TransfersFailed", 1, attrs...)
}

func (h *Handler) source() string {
	if h.Source == "" {
		return "ferry"
	}
	return h.Source
}

// changesView reports whether an event changes what history queries show.
// Started and ChunkSent do not (status stays IN_PROGRESS), which keeps a
// transfer's writes at about N+5 for N chunks.
func changesView(e domain.Event) bool {
	switch e.Type() {
	case domain.TypeStarted, domain.TypeChunkSent:
		return false
	}
	return true
}

// put sends batch (≤ 10 entries), resending only the failed entries, and
// returns those that still failed after the last attempt.
func (h *Handler) put(ctx context.Context, batch []pending) []pending {
	attempts := h.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	for attempt := 1; ; attempt++ {
		entries := make([]ebtypes.PutEventsRequestEntry, len(batch))
		for i, p := range batch {
			entries[i] = p.entry
		}
		out, err := h.Bus.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
		var retry []pending
		switch {
		case err != nil:
			h.Log.WarnContext(ctx, "PutEvents failed", "attempt", attempt, "error", awserr.Classify("put events", err))
			retry = batch
		case out.FailedEntryCount > 0:
			for i, res := range out.Entries {
				if res.ErrorCode != nil && i < len(batch) {
					h.Log.WarnContext(ctx, "event not accepted", "transfer", batch[i].event.TransferID, "version", batch[i].event.Seq,
						"code", aws.ToString(res.ErrorCode), "attempt", attempt)
					retry = append(retry, batch[i])
				}
			}
		}
		if len(retry) == 0 || attempt >= attempts || ctx.Err() != nil {
			return retry
		}
		batch = retry
		select {
		case <-ctx.Done():
			return batch
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}
