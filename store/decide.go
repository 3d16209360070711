package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// Appender is what DecideAppend needs of an event store: *Store meets it,
// and so does every store that keeps Append's contract (a lost race is an
// error satisfying errors.Is(err, ErrConflict)).
type Appender interface {
	Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error)
}

// Decided is the outcome of DecideAppend.
type Decided struct {
	// State is the transfer after Events; prev when Lost.
	State domain.State
	// Events are what domain.Decide made of the command, appended unless
	// Lost.
	Events []domain.Event
	// Lost says another writer appended after prev first: nothing was
	// written, and the newer events' stream records wake whoever acts next.
	Lost bool
}

// DecideAppend is the write step of every handler: it decides cmd against
// prev at now (domain.Decide) and appends the events after prev.
//
// A lost race is not an error: it returns Lost set and a nil error. It is
// recognised in one way only, errors.Is(err, ErrConflict), so an append
// error of kind domain.KindConflict for another reason (an AWS
// transaction conflict, say) is returned as the error it is. A command
// that domain.Decide refuses (its *domain.Error, often KindConflict too) is
// returned wrapped with the command and version, and nothing is appended.
func DecideAppend(ctx context.Context, a Appender, prev domain.State, cmd domain.Command, now time.Time) (Decided, error) {
	evs, err := domain.Decide(prev, cmd, now)
	if err != nil {
		return Decided{State: prev}, fmt.Errorf("decide %T at v%d: %w", cmd, prev.Version, err)
	}
	next, err := a.Append(ctx, prev, evs...)
	switch {
	case errors.Is(err, ErrConflict):
		return Decided{State: prev, Events: evs, Lost: true}, nil
	case err != nil:
		return Decided{State: prev, Events: evs}, err
	}
	return Decided{State: next, Events: evs}, nil
}

var _ Appender = (*Store)(nil)
