package overdue

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/bus"
	"github.com/ferryhq/ferry/store"
)

// memStore is the read model and the check's records in memory. History
// pages one item at a time, so counting follows cursors.
type memStore struct {
	views   []store.Summary
	events  map[string][]domain.Event
	seen    map[string]time.Time
	windows map[string]store.WindowRecord
	queries int
}

func (m *memStore) History(_ context.Context, q store.Query) (store.Page, error) {
	m.queries++
	var match []store.Summary
	for _, s := range m.views {
		if s.Route == q.Route && (q.Sender == "" || s.Sender == q.Sender) && (q.Workflow == "" || s.Workflow == q.Workflow) &&
			!s.Created.Before(q.Since) && !s.Created.After(q.Until) {
			match = append(match, s)
		}
	}
	i := 0
	if q.Cursor != "" {
		i = int(q.Cursor[0] - '0')
	}
	if i >= len(match) {
		return store.Page{}, nil
	}
	p := store.Page{Items: match[i : i+1]}
	if i+1 < len(match) {
		p.Cursor = string(rune('0' + i + 1))
	}
	return p, nil
}

func (m *memStore) Events(_ context.Context, id string, _, _ int) ([]domain.Event, error) {
	return m.events[id], nil
}

func (m *memStore) ExpectationSeen(_ context.Context, route, name string, now time.Time) (time.Time, error) {
	if t, ok := m.seen[route+name]; ok {
		return t, nil
	}
	m.seen[route+name] = now
	return now, nil
}

func key(w store.WindowRecord) string { return w.Route + w.Expectation + w.Window.End.String() }

func (m *memStore) JudgedWindows(_ context.Context, route, name string, from, to time.Time) (map[int64]store.WindowRecord, error) {
	out := map[int64]store.WindowRecord{}
	for _, w := range m.windows {
		if w.Route == route && w.Expectation == name && w.Window.End.After(from) && !w.Window.End.After(to) {
			out[w.Window.End.UnixNano()] = w
		}
	}
	return out, nil
}

func (m *memStore) RecordWindow(_ context.Context, w store.WindowRecord) (bool, error) {
	if old, ok := m.windows[key(w)]; ok && (old.Outcome != store.OutcomeMissed || old.Published) {
		return false, nil
	}
	w.Published = w.Outcome != store.OutcomeMissed
	m.windows[key(w)] = w
	return true, nil
}

func (m *memStore) MarkWindow(_ context.Context, w store.WindowRecord) error {
	w = m.windows[key(w)]
	w.Published = true
	m.windows[key(w)] = w
	return nil
}

type memBus struct {
	fail    bool
	details []OverdueDetail
}

func (b *memBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	if b.fail {
		return nil, errors.New("bus down")
	}
	for _, e := range in.Entries {
		if aws.ToString(e.DetailType) != DetailOverdue {
			return nil, errors.New("unexpected detail type " + aws.ToString(e.DetailType))
		}
		var d OverdueDetail
		if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &d); err != nil {
			return nil, err
		}
		b.details = append(b.details, d)
	}
	return &eventbridge.PutEventsOutput{}, nil
}

func TestOverdueOncePerMissedWindowNoneWhenMet(t *testing.T) {
	start := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC) // Thursday
	now := start
	st := &memStore{events: map[string][]domain.Event{}, seen: map[string]time.Time{}, windows: map[string]store.WindowRecord{}}
	b := &memBus{}
	routes := domain.Routes{Routes: []domain.Route{{Name: "labs", Expect: []domain.Expectation{
		{Name: "results", Sender: "lab", Workflow: "PATH", By: "06:00", Days: []string{"weekdays"}},
		{Name: "pair", Sender: "gp", By: "06:00", Count: 2},
	}}}}
	h := &Handler{Targets: Targets(routes), Store: st, Bus: bus.Bus{Client: b}, Settle: time.Minute,
		Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	run := func(at time.Time) {
		t.Helper()
		now = at
		if err := h.Handle(context.Background()); err != nil {
			t.Fatalf("run at %s: %v", at, err)
		}
	}
	run(start) // first seen: nothing ended since
	// Thursday: the lab delivers in time; acknowledged after the deadline,
	// its Delivered event says it was in time. gp sends one of two.
	thu := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	st.views = append(st.views,
		store.Summary{ID: "t1", Route: "labs", Sender: "lab", Workflow: "PATH", Status: domain.StatusAcknowledged, Created: thu.Add(-30 * time.Minute), Updated: thu.Add(time.Hour)},
		store.Summary{ID: "t2", Route: "labs", Sender: "lab", Workflow: "OTHER", Status: domain.StatusDelivered, Created: thu.Add(-20 * time.Minute), Updated: thu.Add(-10 * time.Minute)},
		store.Summary{ID: "t3", Route: "labs", Sender: "gp", Status: domain.StatusDelivered, Created: thu.Add(-10 * time.Minute), Updated: thu.Add(-5 * time.Minute)},
		store.Summary{ID: "t4", Route: "labs", Sender: "gp", Status: domain.StatusInProgress, Created: thu.Add(-5 * time.Minute), Updated: thu.Add(-4 * time.Minute)},
	)
	st.events["t1"] = []domain.Event{{TransferID: "t1", Seq: 4, At: thu.Add(-time.Minute), Payload: domain.Delivered{}}}
	run(thu.Add(30 * time.Second)) // not settled yet
	if len(b.details) != 0 {
		t.Fatalf("events before the window settled: %+v", b.details)
	}
	run(thu.Add(2 * time.Minute))
	run(thu.Add(7 * time.Minute))
	if len(b.details) != 1 {
		t.Fatalf("events after Thursday = %+v, want one (pair, got 1 of 2)", b.details)
	}
	if d := b.details[0]; d.Expectation != "pair" || d.Got != 1 || d.Want != 2 || !d.WindowEnd.Equal(thu) || !d.WindowStart.Equal(thu.Add(-24*time.Hour)) || d.Route != "labs" {
		t.Errorf("event = %+v, want pair's window to %s with 1 of 2", d, thu)
	}
	// Friday: nothing comes and the bus is down at the first check after.
	fri := thu.Add(24 * time.Hour)
	b.fail = true
	now = fri.Add(2 * time.Minute)
	if err := h.Handle(context.Background()); err == nil {
		t.Fatal("a run whose events could not be published succeeded")
	}
	b.fail = false
	run(fri.Add(7 * time.Minute))
	run(fri.Add(12 * time.Minute))
	var friday []string
	for _, d := range b.details[1:] {
		if !d.WindowEnd.Equal(fri) {
			t.Errorf("event for %s, want only Friday's", d.WindowEnd)
		}
		friday = append(friday, d.Expectation)
	}
	if len(friday) != 2 || friday[0] != "results" || friday[1] != "pair" {
		t.Errorf("Friday's events = %v, want one each for results and pair", friday)
	}
	// Saturday: results is weekdays only; pair misses again.
	run(fri.Add(24*time.Hour + 2*time.Minute))
	if n := len(b.details); n != 4 || b.details[3].Expectation != "pair" {
		t.Errorf("after Saturday: %+v, want pair's Saturday window only", b.details[3:])
	}
}

func TestOverdueDeliveredLateIsMissed(t *testing.T) {
	end := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	st := &memStore{events: map[string][]domain.Event{}, seen: map[string]time.Time{"labsx": end.Add(-time.Hour)}, windows: map[string]store.WindowRecord{}}
	st.views = []store.Summary{
		{ID: "late", Route: "labs", Status: domain.StatusDelivered, Created: end.Add(-time.Minute), Updated: end.Add(time.Second)},
		{ID: "acked-late", Route: "labs", Status: domain.StatusAcknowledged, Created: end.Add(-time.Minute), Updated: end.Add(time.Hour)},
		{ID: "failed", Route: "labs", Status: domain.StatusFailed, Created: end.Add(-time.Minute), Updated: end.Add(-time.Second)},
	}
	st.events["acked-late"] = []domain.Event{{Seq: 3, At: end.Add(time.Second), Payload: domain.Delivered{}}}
	b := &memBus{}
	h := &Handler{Targets: []Target{{Route: "labs", Expectation: domain.Expectation{Name: "x", By: "06:00"}}}, Store: st, Bus: bus.Bus{Client: b},
		Now: func() time.Time { return end.Add(2 * time.Minute) }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := h.Handle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(b.details) != 1 || b.details[0].Got != 0 {
		t.Errorf("events = %+v, want one with none in time", b.details)
	}
	if st.queries != 3 {
		t.Errorf("history pages read = %d, want 3 (all three transfers, none counted)", st.queries)
	}
}
