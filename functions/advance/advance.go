// Package advance moves transfers forward. It is woken by the event
// table's stream; the stream record is only a wake-up, never the truth: the
// handler loads the transfer and acts only when the record is the
// transfer's head (its latest version). Stale and duplicate records are
// ignored, which makes it safe under at-least-once delivery and reordering.
//
// Acting means asking domain.Next what to do, doing it through the
// destination's transport, and appending the resulting event. Within a step
// budget one wake-up sends several consecutive chunks, so per-chunk overhead
// stays small without holding the shard for long.
package advance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// Store is what advance needs of the event store.
type Store interface {
	// Load returns the transfer's current state (store.ErrNotFound if none).
	Load(ctx context.Context, id string) (domain.State, error)
	// Append stores events after prev (store.ErrConflict if prev is stale).
	Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error)
}

// Transport delivers one transfer's chunks to one kind of destination; see
// package transport for the contract.
type Transport interface {
	Begin(ctx context.Context, t domain.State) (string, error)
	SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error)
	Complete(ctx context.Context, t domain.State) (transport.Delivery, error)
}

// Aborter is a transport that cleans up what a transfer left at the
// destination once it has failed for good (an SFTP transfer's temporary
// file). Abort must succeed when there is nothing to clean up.
type Aborter interface {
	Abort(ctx context.Context, t domain.State) error
}

// Scheduler arranges for a transfer to be woken at a time: to retry after
// a retryable failure, or to check whether the far end has acknowledged a
// delivery.
type Scheduler interface {
	ScheduleRetry(ctx context.Context, id string, version int, at time.Time) error
	ScheduleTrack(ctx context.Context, id string, version int, at time.Time) error
}

// Acknowledger confirms to a transfer's source that the file is safe (a
// MESH inbox message is acknowledged, and so leaves the inbox).
type Acknowledger interface {
	Acknowledge(ctx context.Context, t domain.State) error
}

// Budget bounds the work one wake-up does for one transfer.
type Budget struct {
	MaxChunks int           // chunks sent per wake-up (default 8)
	MaxTime   time.Duration // time spent per wake-up (default 2 minutes)
}

// DefaultBudget is the budget of a wake-up whose Budget leaves a field
// zero: 8 chunks or 2 minutes, whichever comes first.
var DefaultBudget = Budget{MaxChunks: 8, MaxTime: 2 * time.Minute}

// DefaultConcurrency is how many transfers of one batch are worked on at
// once when Handler.Concurrency is zero.
const DefaultConcurrency = 8

// WithDefaults returns b with each zero (or negative) field taken from
// DefaultBudget.
func (b Budget) WithDefaults() Budget {
	if b.MaxChunks <= 0 {
		b.MaxChunks = DefaultBudget.MaxChunks
	}
	if b.MaxTime <= 0 {
		b.MaxTime = DefaultBudget.MaxTime
	}
	return b
}

// Handler is the advance Lambda.
type Handler struct {
	Store      Store
	Transports map[string]Transport // by destination type
	Retries    Scheduler
	// Acknowledgers by source kind ("mesh").
	Acknowledgers map[string]Acknowledger
	// TrackInterval is how long after delivery (and between checks) the
	// far end's acknowledgement is looked for (default
	// transport.DefaultTrackInterval).
	TrackInterval time.Duration
	Budget        Budget // zero fields: DefaultBudget's
	// Concurrency bounds how many transfers of one batch are worked on at
	// once (default DefaultConcurrency).
	Concurrency int
	Now         func() time.Time
	Log         *slog.Logger
}

// Handle processes a batch of stream records. Records of different
// transfers are handled concurrently; a record whose transfer could not be
// advanced (store unavailable, undecodable record) is reported in
// BatchItemFailures by its sequence number, and the others are unaffected.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	type wake struct {
		seq    int
		record string // sequence number of the newest record for the transfer
	}
	heads := map[string]wake{}
	var order []string
	var mu sync.Mutex
	var resp events.DynamoDBEventResponse
	fail := func(seqNo string) {
		mu.Lock()
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: seqNo})
		mu.Unlock()
	}
	for _, r := range ev.Records {
		if r.EventName != string(events.DynamoDBOperationTypeInsert) || !store.IsEventImage(r.Change.NewImage) {
			continue
		}
		e, _, err := store.DecodeImage(r.Change.NewImage)
		if err != nil {
			h.Log.ErrorContext(ctx, "undecodable stream record", "sequenceNumber", r.Change.SequenceNumber, "error", err)
			fail(r.Change.SequenceNumber)
			continue
		}
		w, seen := heads[e.TransferID]
		if !seen {
			order = append(order, e.TransferID)
		}
		if e.Seq > w.seq {
			heads[e.TransferID] = wake{seq: e.Seq, record: r.Change.SequenceNumber}
		}
	}

	sem := make(chan struct{}, h.settings().concurrency)
	var wg sync.WaitGroup
	for _, id := range order {
		w := heads[id]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := h.wake(ctx, id, w.seq); err != nil {
				h.Log.ErrorContext(ctx, "advance failed", "transfer", id, "version", w.seq, "error", err)
				fail(w.record)
			}
		}()
	}
	wg.Wait()
	return resp, nil
}

// settings are the handler's tunables with every zero field set to its
// default: the one place advance applies its defaults.
type settings struct {
	budget        Budget
	trackInterval time.Duration
	concurrency   int
}

func (h *Handler) settings() settings {
	s := settings{budget: h.Budget.WithDefaults(), trackInterval: h.TrackInterval, concurrency: h.Concurrency}
	if s.trackInterval <= 0 {
		s.trackInterval = transport.DefaultTrackInterval
	}
	if s.concurrency <= 0 {
		s.concurrency = DefaultConcurrency
	}
	return s
}

// wake acts on transfer id if version seq is still its head.
func (h *Handler) wake(ctx context.Context, id string, seq int) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	st, err := h.Store.Load(ctx, id)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if st.Version != seq {
		return nil // stale wake-up: a newer record will (or did) wake us
	}
	return h.Step(ctx, st)
}

// Step does the work due for a transfer in state st, within the budget. It
// returns an error only when the outcome could not be recorded; transport
// failures are recorded as Failed events.
func (h *Handler) Step(ctx context.Context, st domain.State) error {
	log := h.Log.With("transfer", st.ID)
	set := h.settings()
	start := h.Now()
	// appended is true once this wake has recorded an event: that event's
	// record wakes us again, so a tracking check (which reschedules
	// itself) is left to that wake, or there would be two.
	appended := false
	for chunks := 0; ; {
		act := domain.Next(st)
		var cmd domain.Command
		switch act.Kind {
		case domain.ActNone:
			return nil
		case domain.ActAwaitAck:
			if appended {
				return nil
			}
			return h.scheduleTrack(ctx, st, set.trackInterval)
		case domain.ActWaitRetry:
			if err := h.Retries.ScheduleRetry(ctx, st.ID, st.Version, act.At); err != nil {
				return fmt.Errorf("schedule retry: %w", err)
			}
			log.InfoContext(ctx, "retry scheduled", "version", st.Version, "at", act.At, "attempt", st.Attempt)
			return nil
		}
		if act.Kind == domain.ActAcknowledge {
			if cmd = h.acknowledge(ctx, st); cmd == nil {
				log.WarnContext(ctx, "acknowledgement failed; will try again", "version", st.Version)
				if appended {
					return nil
				}
				return h.scheduleTrack(ctx, st, set.trackInterval)
			}
		} else if tr, ok := h.Transports[st.Request.Destination.Type]; !ok {
			cmd = domain.Fail{Err: domain.Errorf(domain.KindInvalid, "no transport for destination type %q", st.Request.Destination.Type)}
		} else {
			cmd = h.act(ctx, tr, st, act)
		}
		if err := ctx.Err(); err != nil {
			// Shutting down or out of time: leave the outcome unrecorded;
			// the record is delivered again and the step repeated.
			return err
		}
		d, err := store.DecideAppend(ctx, h.Store, st, cmd, h.Now())
		if err != nil {
			return err
		}
		if d.Lost {
			log.InfoContext(ctx, "another worker moved the transfer on", "version", st.Version)
			return nil
		}
		st, appended = d.State, true
		last := d.Events[len(d.Events)-1]
		attrs := []any{"version", st.Version, "event", last.Type(), "status", st.Status}
		if f, ok := last.Payload.(domain.Failed); ok {
			log.WarnContext(ctx, "attempt failed", append(attrs, "kind", f.Kind, "code", f.Code, "reason", f.Message, "retryable", f.Retryable, "attempt", f.Attempt)...)
			if st.Status == domain.StatusFailed {
				h.abort(ctx, st, log)
			}
			return nil // the Failed record wakes us to schedule the retry
		}
		log.InfoContext(ctx, "transfer advanced", attrs...)
		if act.Kind == domain.ActSendChunk {
			chunks++
		}
		if chunks >= set.budget.MaxChunks || h.Now().Sub(start) >= set.budget.MaxTime {
			return nil // the record of the event just appended wakes the next step
		}
	}
}

// abort lets the transport of a transfer that failed for good clean up
// after it. It is best effort: the failure is recorded already, and what
// is left (a temporary file) is named for the transfer and harmless, so an
// error is logged, not returned.
func (h *Handler) abort(ctx context.Context, st domain.State, log *slog.Logger) {
	ab, ok := h.Transports[st.Request.Destination.Type].(Aborter)
	if !ok {
		return
	}
	if err := ab.Abort(ctx, st); err != nil {
		log.WarnContext(ctx, "could not clean up after the failed transfer", "error", err)
	}
}

// act performs one action through the transport and returns the command
// that records its outcome.
func (h *Handler) act(ctx context.Context, tr Transport, st domain.State, act domain.Action) domain.Command {
	switch act.Kind {
	case domain.ActBegin:
		ref, err := tr.Begin(ctx, st)
		if err != nil {
			return failed(err)
		}
		return domain.Start{Ref: ref}
	case domain.ActSendChunk:
		sent, err := tr.SendChunk(ctx, st, act.Chunk)
		if err != nil {
			return failed(err)
		}
		return domain.RecordChunk{Index: act.Chunk.Index, Bytes: sent.Bytes, Ref: sent.Ref, Held: sent.Held}
	case domain.ActComplete:
		d, err := tr.Complete(ctx, st)
		if err != nil {
			return failed(err)
		}
		return domain.Complete{Ref: d.Ref, Location: d.Location}
	}
	return failed(domain.Errorf(domain.KindInternal, "unexpected action %s", act.Kind))
}

// acknowledge confirms receipt to the transfer's source. It returns nil
// when the attempt failed in a way worth repeating later (the retry
// function's tracking check repeats it); a delivered file is never failed
// for a passing fault of the acknowledgement.
func (h *Handler) acknowledge(ctx context.Context, st domain.State) domain.Command {
	a, ok := h.Acknowledgers[st.Request.Source.Kind]
	if !ok {
		return failed(domain.Errorf(domain.KindInvalid, "cannot acknowledge a %q source", st.Request.Source.Kind))
	}
	if err := a.Acknowledge(ctx, st); err != nil {
		if domain.KindOf(err).Retryable() {
			return nil
		}
		return failed(err)
	}
	return domain.Acknowledge{By: "ferry", Ref: st.Request.Source.MessageID}
}

// scheduleTrack arranges the next look at a delivered transfer's
// acknowledgement, interval from now.
func (h *Handler) scheduleTrack(ctx context.Context, st domain.State, interval time.Duration) error {
	if err := h.Retries.ScheduleTrack(ctx, st.ID, st.Version, h.Now().Add(interval)); err != nil {
		return fmt.Errorf("schedule tracking: %w", err)
	}
	return nil
}

func failed(err error) domain.Command {
	var e *domain.Error
	if !errors.As(err, &e) {
		e = &domain.Error{Kind: domain.KindInternal, Message: err.Error()}
	}
	return domain.Fail{Err: e}
}
