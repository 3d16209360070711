package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// appender records what DecideAppend asks of it and answers with err, or
// else folds the events into prev as a store does.
type appender struct {
	err   error
	calls int
	prev  domain.State
	got   []domain.Event
}

func (a *appender) Append(_ context.Context, prev domain.State, events ...domain.Event) (domain.State, error) {
	a.calls++
	a.prev, a.got = prev, events
	if a.err != nil {
		return prev, a.err
	}
	for _, e := range events {
		prev = domain.Evolve(prev, e)
	}
	return prev, nil
}

var decideAt = time.Date(2024, 6, 3, 18, 0, 0, 0, time.UTC)

func requestCmd() domain.Command {
	return domain.Request{Requested: domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "in", Key: "outbound/a"},
		Route:       "r1",
		Destination: domain.Destination{Type: "null"},
		Sender:      "SENDER", Recipient: "RECIPIENT", Filename: "a.dat",
		Size: 8, ChunkSize: 4,
	}}
}

func TestDecideAppend(t *testing.T) {
	ctx := context.Background()
	fresh := domain.State{ID: "01J00000000000000000000000"}

	t.Run("success returns the new state and the events appended", func(t *testing.T) {
		a := &appender{}
		got, err := store.DecideAppend(ctx, a, fresh, requestCmd(), decideAt)
		if err != nil {
			t.Fatal(err)
		}
		want, err := domain.Decide(fresh, requestCmd(), decideAt)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Events, want) {
			t.Errorf("events = %+v, want %+v", got.Events, want)
		}
		if a.calls != 1 || !reflect.DeepEqual(a.got, want) || a.prev.ID != fresh.ID || a.prev.Version != 0 {
			t.Errorf("Append called %d times with prev v%d %q and %+v, want once after v0 with %+v", a.calls, a.prev.Version, a.prev.ID, a.got, want)
		}
		if got.Lost {
			t.Error("Lost on success")
		}
		if got.State.Version != 1 || got.State.Status != domain.StatusInProgress || got.State.Request.Chunks != 2 {
			t.Errorf("state v%d %s with %d chunks, want v1 in progress with 2", got.State.Version, got.State.Status, got.State.Request.Chunks)
		}
	})

	t.Run("a lost race is not an error", func(t *testing.T) {
		a := &appender{err: fmt.Errorf("append %s v1: %w", fresh.ID, store.ErrConflict)}
		got, err := store.DecideAppend(ctx, a, fresh, requestCmd(), decideAt)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if !got.Lost {
			t.Error("Lost = false, want true")
		}
		if got.State.Version != 0 || len(got.Events) != 1 {
			t.Errorf("state v%d with %d events, want prev (v0) and the 1 event decided", got.State.Version, len(got.Events))
		}
	})

	t.Run("other append errors are returned", func(t *testing.T) {
		for name, appendErr := range map[string]error{
			"unavailable": domain.Errorf(domain.KindUnavailable, "throttled"),
			// A conflict kind that is not the store's lost race (e.g. an
			// AWS transaction conflict): nothing was written and nobody
			// else's event will wake the transfer, so it must not pass as
			// lost.
			"conflict kind without ErrConflict": &domain.Error{Kind: domain.KindConflict, Code: "TransactionConflictException", Message: "append"},
		} {
			t.Run(name, func(t *testing.T) {
				a := &appender{err: appendErr}
				got, err := store.DecideAppend(ctx, a, fresh, requestCmd(), decideAt)
				if !errors.Is(err, appendErr) {
					t.Fatalf("err = %v, want %v", err, appendErr)
				}
				if got.Lost {
					t.Error("Lost = true, want false")
				}
				if got.State.Version != 0 {
					t.Errorf("state v%d, want prev (v0)", got.State.Version)
				}
			})
		}
	})

	t.Run("a refused command appends nothing and is an error", func(t *testing.T) {
		a := &appender{}
		// Retry of a transfer that is not retrying: Decide refuses with
		// KindConflict, which is not a lost race.
		st := domain.Evolve(fresh, mustDecide(t, fresh, requestCmd())[0])
		got, err := store.DecideAppend(ctx, a, st, domain.Retry{}, decideAt)
		if domain.KindOf(err) != domain.KindConflict || errors.Is(err, store.ErrConflict) {
			t.Fatalf("err = %v, want Decide's conflict", err)
		}
		if got.Lost || a.calls != 0 || len(got.Events) != 0 {
			t.Errorf("Lost %t, %d appends, %d events; want none", got.Lost, a.calls, len(got.Events))
		}
		if got.State.Version != st.Version {
			t.Errorf("state v%d, want v%d", got.State.Version, st.Version)
		}
	})
}

func mustDecide(t *testing.T, st domain.State, c domain.Command) []domain.Event {
	t.Helper()
	evs, err := domain.Decide(st, c, decideAt)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
