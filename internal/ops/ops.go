// Package ops holds the operator actions the CLI and the HTTP API both
// offer, so that `ferry replay --status FAILED` and POST /replays are one
// behaviour: commands on one transfer, explained when refused, and bulk
// replay, named by its reason.
package ops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// Store is what the actions need of the event store.
type Store interface {
	store.Appender
	Load(ctx context.Context, id string) (domain.State, error)
	Events(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, error)
}

// Historian is the history query bulk replay selects with.
type Historian interface {
	History(ctx context.Context, q store.Query) (store.Page, error)
}

// Command decides and appends an operator command on prev, explaining a
// refusal: a command the transfer's state does not allow is a
// domain.KindConflict error naming why, as is a transfer that changed
// while the command was decided.
func Command(ctx context.Context, st store.Appender, prev domain.State, cmd domain.Command, now time.Time) (domain.State, error) {
	d, err := store.DecideAppend(ctx, st, prev, cmd, now)
	var de *domain.Error
	switch {
	case errors.As(err, &de) && de.Kind == domain.KindConflict:
		return prev, domain.Errorf(domain.KindConflict, "transfer %s: refused, nothing recorded: %s", prev.ID, de.Message)
	case err != nil:
		return prev, fmt.Errorf("transfer %s: %w", prev.ID, err)
	case d.Lost:
		return prev, domain.Errorf(domain.KindConflict, "transfer %s changed while this ran (now past v%d); look at it again", prev.ID, prev.Version)
	}
	return d.State, nil
}

// FailedIDs lists every transfer the query selects, all pages, before any
// is replayed: replaying moves a transfer out of FAILED, which would shift
// the pages under a cursor.
func FailedIDs(ctx context.Context, h Historian, q store.Query) ([]string, error) {
	var ids []string
	for {
		page, err := h.History(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Items {
			ids = append(ids, s.ID)
		}
		if page.Cursor == "" {
			return ids, nil
		}
		q.Cursor = page.Cursor
	}
}

// BulkReplay replays failed transfers, paced and bounded. It is named by
// its reason: a transfer already replayed for the same reason is skipped,
// so a run that was interrupted (or stopped by Max) and is run again goes
// on with the transfers it has not replayed, never replaying one twice,
// even one that has failed again since.
type BulkReplay struct {
	Store         Store
	Actor, Reason string
	Code          string // only transfers whose last failure has this code
	DryRun        bool
	Max           int
	Pace          time.Duration // least time between two replays
	Now           func() time.Time
}

// Tally counts what a bulk replay did with the transfers it was given.
type Tally struct {
	Selected int
	Done     int // replayed (or, in a dry run, would be)
	Already  int // replayed for this reason before
	Skipped  int // no longer failed, or of another code
}

// Run replays ids in order, calling each with the state of every transfer
// it replays (or would), until Max are done. Transfers that cannot be
// loaded or replayed are named in the error, joined; the others go on. If
// ctx ends it stops, returning ctx's error with the tally so far.
func (r BulkReplay) Run(ctx context.Context, ids []string, each func(prev domain.State)) (Tally, error) {
	t := Tally{Selected: len(ids)}
	var errs []error
	var last time.Time
	for _, id := range ids {
		if t.Done == r.Max {
			break
		}
		if ctx.Err() != nil {
			return t, ctx.Err()
		}
		prev, err := r.Store.Load(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("transfer %s: %w", id, err))
			continue
		}
		if prev.Status != domain.StatusFailed || (r.Code != "" && (prev.LastFailure == nil || prev.LastFailure.Code != r.Code)) {
			t.Skipped++ // changed since the query, or another code
			continue
		}
		seen, err := ReplayedFor(ctx, r.Store, id, r.Reason)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen {
			t.Already++
			continue
		}
		if !r.DryRun {
			if wait := r.Pace - r.Now().Sub(last); !last.IsZero() && wait > 0 {
				select {
				case <-ctx.Done():
					return t, ctx.Err()
				case <-time.After(wait):
				}
			}
			last = r.Now()
			if _, err := Command(ctx, r.Store, prev, domain.Replay{Actor: r.Actor, Reason: r.Reason}, r.Now().UTC()); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		t.Done++
		each(prev)
	}
	return t, errors.Join(errs...)
}

// ReplayedFor reports whether transfer id has been replayed for reason.
func ReplayedFor(ctx context.Context, st Store, id, reason string) (bool, error) {
	after := 0
	for {
		page, err := st.Events(ctx, id, after, 500)
		if err != nil {
			return false, fmt.Errorf("events of %s: %w", id, err)
		}
		for _, ev := range page {
			if p, ok := ev.Payload.(domain.Replayed); ok && p.Reason == reason {
				return true, nil
			}
		}
		if len(page) < 500 {
			return false, nil
		}
		after = page[len(page)-1].Seq
	}
}
