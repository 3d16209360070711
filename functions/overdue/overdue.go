// Package overdue is the scheduled check of the routes' expectations
// (domain.Expectation): for each window that has ended, it counts the
// transfers on the route that match and were delivered by the window's
// end, from the read model's history indexes (no Scan), and publishes
// Transfer Overdue, once, for a window without enough of them.
package overdue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/bus"
	"github.com/ferryhq/ferry/store"
)

// DetailOverdue is the detail type of the event a missed window gets.
const DetailOverdue = "Transfer Overdue"

// Defaults of the Handler's timing.
const (
	// DefaultSettle is how long after a window's end it is judged: the
	// time the read model may lag behind the events (the stream and the
	// publish function), so a file delivered just in time counts.
	DefaultSettle = time.Minute
	// DefaultLookback is how far back windows are judged, so a check
	// that did not run for a while (an outage) makes good the windows it
	// missed.
	DefaultLookback = 48 * time.Hour
	// MaxWindows is the most windows of one expectation judged per run;
	// the next run takes the rest.
	MaxWindows = 200
)

// Target is one expectation of one route.
type Target struct {
	Route       string
	Expectation domain.Expectation
}

// Targets returns every expectation of the routing table.
func Targets(rs domain.Routes) []Target {
	var ts []Target
	for _, r := range rs.Routes {
		for _, e := range r.Expect {
			ts = append(ts, Target{Route: r.Name, Expectation: e})
		}
	}
	return ts
}

// Store is the read model and the check's own records (store.Store).
type Store interface {
	History(ctx context.Context, q store.Query) (store.Page, error)
	Events(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, error)
	ExpectationSeen(ctx context.Context, route, name string, now time.Time) (time.Time, error)
	JudgedWindows(ctx context.Context, route, name string, from, to time.Time) (map[int64]store.WindowRecord, error)
	RecordWindow(ctx context.Context, w store.WindowRecord) (bool, error)
	MarkWindow(ctx context.Context, w store.WindowRecord) error
}

// Handler is the scheduled overdue Lambda. Each run judges, for every
// expectation, the windows that ended since it was first seen (at most
// Lookback ago) and at least Settle ago and have no outcome yet. A window's
// outcome is recorded before its event is published and marked after, so
// an event whose publishing fails is published by the next run.
type Handler struct {
	Targets  []Target
	Store    Store
	Bus      bus.Bus
	Settle   time.Duration // DefaultSettle when 0
	Lookback time.Duration // DefaultLookback when 0
	Now      func() time.Time
	Log      *slog.Logger
}

// OverdueDetail is the detail of Transfer Overdue.
type OverdueDetail struct {
	Route       string    `json:"route"`
	Expectation string    `json:"expectation"`
	Sender      string    `json:"sender,omitempty"`
	Recipient   string    `json:"recipient,omitempty"`
	Workflow    string    `json:"workflow,omitempty"`
	WindowStart time.Time `json:"windowStart"`
	WindowEnd   time.Time `json:"windowEnd"`
	Want        int       `json:"want"`
	Got         int       `json:"got"`
}

// Handle runs one check. Its error joins what could not be read, recorded
// or published, so the invocation shows as failed; every expectation is
// checked regardless.
func (h *Handler) Handle(ctx context.Context) error {
	now := h.now()
	var errs []error
	for _, t := range h.Targets {
		if err := h.check(ctx, t, now); err != nil {
			errs = append(errs, fmt.Errorf("expectation %s of route %s: %w", t.Expectation.Name, t.Route, err))
		}
	}
	return errors.Join(errs...)
}

func (h *Handler) check(ctx context.Context, t Target, now time.Time) error {
	e := t.Expectation
	seen, err := h.Store.ExpectationSeen(ctx, t.Route, e.Name, now)
	if err != nil {
		return err
	}
	from := now.Add(-h.lookback())
	if seen.After(from) {
		from = seen
	}
	to := now.Add(-h.settle())
	windows := e.Windows(from, to, MaxWindows)
	if len(windows) == 0 {
		return nil
	}
	judged, err := h.Store.JudgedWindows(ctx, t.Route, e.Name, from, to)
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range windows {
		rec, ok := judged[w.End.UnixNano()]
		switch {
		case ok && (rec.Outcome != store.OutcomeMissed || rec.Published):
			continue
		case ok: // missed, its event not yet published
			errs = append(errs, h.announce(ctx, t, rec))
			continue
		}
		got, err := h.delivered(ctx, t, w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rec = store.WindowRecord{Route: t.Route, Expectation: e.Name, Window: w, Outcome: store.OutcomeMet, Got: got, Want: e.Want(), Checked: now}
		if got < e.Want() {
			rec.Outcome = store.OutcomeMissed
		}
		claimed, err := h.Store.RecordWindow(ctx, rec)
		if err != nil || !claimed || rec.Outcome == store.OutcomeMet {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, h.announce(ctx, t, rec))
	}
	return errors.Join(errs...)
}

// delivered counts the transfers on t's route matching t's expectation
// that were created in w and delivered by its end, stopping at as many
// as it wants.
func (h *Handler) delivered(ctx context.Context, t Target, w domain.Window) (int, error) {
	e := t.Expectation
	q := store.Query{Route: t.Route, Sender: e.Sender, Recipient: e.Recipient, Workflow: e.Workflow,
		Since: w.Start, Until: w.End, Limit: store.MaxLimit}
	got := 0
	for {
		page, err := h.Store.History(ctx, q)
		if err != nil {
			return 0, err
		}
		for _, s := range page.Items {
			ok, err := h.deliveredBy(ctx, s, w.End)
			if err != nil {
				return 0, err
			}
			if ok {
				got++
			}
			if got == e.Want() {
				return got, nil
			}
		}
		if page.Cursor == "" {
			return got, nil
		}
		q.Cursor = page.Cursor
	}
}

// deliveredBy reports whether s was delivered at or before end. Its view
// says so unless it has moved on since (acknowledged after end): then its
// events say when it was delivered.
func (h *Handler) deliveredBy(ctx context.Context, s store.Summary, end time.Time) (bool, error) {
	switch {
	case s.Status != domain.StatusDelivered && s.Status != domain.StatusAcknowledged:
		return false, nil
	case !s.Updated.After(end):
		return true, nil
	case s.Status == domain.StatusDelivered:
		return false, nil // its latest event, Delivered, came too late
	}
	evs, err := h.Store.Events(ctx, s.ID, 0, 0)
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		if ev.Type() == domain.TypeDelivered {
			return !ev.At.After(end), nil
		}
	}
	return false, nil
}

// announce publishes rec's Transfer Overdue and marks it published.
func (h *Handler) announce(ctx context.Context, t Target, rec store.WindowRecord) error {
	e := t.Expectation
	d := OverdueDetail{Route: t.Route, Expectation: e.Name, Sender: e.Sender, Recipient: e.Recipient, Workflow: e.Workflow,
		WindowStart: rec.Window.Start, WindowEnd: rec.Window.End, Want: rec.Want, Got: rec.Got}
	if err := h.Bus.Put(ctx, DetailOverdue, "route/"+t.Route, d, h.now()); err != nil {
		return err
	}
	h.Log.WarnContext(ctx, DetailOverdue, "route", t.Route, "expectation", e.Name, "windowEnd", rec.Window.End, "got", rec.Got, "want", rec.Want)
	return h.Store.MarkWindow(ctx, rec)
}

func (h *Handler) settle() time.Duration {
	if h.Settle > 0 {
		return h.Settle
	}
	return DefaultSettle
}

func (h *Handler) lookback() time.Duration {
	if h.Lookback > 0 {
		return h.Lookback
	}
	return DefaultLookback
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}
