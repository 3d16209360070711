// Package memstore is an in-memory event store for unit tests of handlers.
//
// Store keeps the contract of store.Store's Load, Append, Events, FindByRef
// and Project as handlers rely on it, held to it by the suite the real
// store runs (storetest.Run, in this package's tests): Append checks its
// events as the real store does (at most store.MaxAppend, one transfer,
// versions contiguous after prev's, a Requested first) and refuses, with an
// error satisfying errors.Is(err, store.ErrConflict) (domain.KindConflict),
// to write a version that is already stored; Load returns store.ErrNotFound
// for a transfer without events; FindByRef finds a transfer by its
// projected view, as the real store's read model does. Hooks inject errors, accessors report what the handler did, and a
// Journal shared with the test's other fakes records each append in order
// among their calls.
//
// NewImage, Insert and EventRecord build the DynamoDB stream records that the
// real store's table carries for its event items, as handlers triggered by
// the stream receive them. ReadJSON decodes a golden Lambda event from a
// file, and StreamFailures and QueueFailures list the batch item failures a
// handler reports.
//
// Scheduler records the retries and tracking checks that handlers schedule
// on the delay queue.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// Store is an in-memory event store. It is safe for concurrent use. Set its
// hooks and Log before the Store is in use; each hook is called with the
// Store locked, so a hook must not call the Store.
type Store struct {
	// AppendErr, when set, is consulted at the start of every Append: a
	// non-nil result is returned and nothing is stored.
	AppendErr func(prev domain.State, events []domain.Event) error
	// LoadErr, when set, is consulted at the start of every Load: a non-nil
	// result is returned.
	LoadErr func(id string) error
	// FindErr, when set, is consulted at the start of every FindByRef: a
	// non-nil result is returned.
	FindErr func(ref string) error
	// ProjectErr, when set, is consulted at the start of every Project: a
	// non-nil result is returned and nothing is projected.
	ProjectErr func(st domain.State) error
	// Log, when set, gets an entry "append <id> <type>" for every event that
	// Append stores, in order.
	Log *Journal

	mu        sync.Mutex
	transfers map[string][]domain.Event
	views     map[string]domain.State
	loads     map[string]int
	appends   int
	appended  []domain.Event
	finds     []string
	projected []domain.State
}

// New returns an empty Store. The zero Store is empty too, and ready to use.
func New() *Store { return &Store{} }

// lock locks the Store, making its maps first if it is new.
func (s *Store) lock() {
	s.mu.Lock()
	if s.transfers == nil {
		s.transfers = map[string][]domain.Event{}
		s.views = map[string]domain.State{}
		s.loads = map[string]int{}
	}
}

// Load returns the transfer's current state, the fold of its events. It
// returns an error satisfying errors.Is(err, store.ErrNotFound) if the
// transfer has no events.
func (s *Store) Load(_ context.Context, id string) (domain.State, error) {
	s.lock()
	defer s.mu.Unlock()
	s.loads[id]++
	if s.LoadErr != nil {
		if err := s.LoadErr(id); err != nil {
			return domain.State{}, err
		}
	}
	evs, ok := s.transfers[id]
	if !ok || len(evs) == 0 {
		return domain.State{}, fmt.Errorf("load %s: %w", id, store.ErrNotFound)
	}
	return domain.Fold(domain.State{}, evs...), nil
}

// Append stores events as the transfer's next versions after prev and
// returns the state they lead to. Events the real store would refuse are a
// domain.KindInvalid error, as is a prev newer than the stored history; if
// the first of the versions is already stored, nothing is written and the
// error satisfies errors.Is(err, store.ErrConflict).
func (s *Store) Append(_ context.Context, prev domain.State, events ...domain.Event) (domain.State, error) {
	s.lock()
	defer s.mu.Unlock()
	s.appends++
	if s.AppendErr != nil {
		if err := s.AppendErr(prev, events); err != nil {
			return prev, err
		}
	}
	if err := check(prev, events); err != nil {
		return prev, err
	}
	id := events[0].TransferID
	switch stored := len(s.transfers[id]); {
	case stored > prev.Version:
		return prev, fmt.Errorf("append %s v%d: %w", id, events[0].Seq, store.ErrConflict)
	case stored < prev.Version:
		return prev, domain.Errorf(domain.KindInvalid, "append %s: after v%d, but v%d is the newest stored", id, prev.Version, stored)
	}
	s.transfers[id] = append(s.transfers[id], events...)
	s.appended = append(s.appended, events...)
	for _, e := range events {
		s.Log.Add("append %s %s", id, e.Type())
	}
	return domain.Fold(prev, events...), nil
}

// check applies the real store's rules for the events of one Append: at
// most store.MaxAppend, one transfer (prev's, unless prev is new), versions
// contiguous after prev's, every event with a payload, and a Requested
// first.
func check(prev domain.State, events []domain.Event) error {
	if len(events) == 0 || events[0].TransferID == "" {
		return domain.Errorf(domain.KindInvalid, "append: no events, or no transfer id")
	}
	if len(events) > store.MaxAppend {
		return domain.Errorf(domain.KindInvalid, "append: %d events, at most %d at once", len(events), store.MaxAppend)
	}
	id := events[0].TransferID
	if prev.Version != 0 && prev.ID != id {
		return domain.Errorf(domain.KindInvalid, "append: event for %s after state of %s v%d", id, prev.ID, prev.Version)
	}
	for i, e := range events {
		if e.TransferID != id || e.Seq != prev.Version+1+i || e.Payload == nil {
			return domain.Errorf(domain.KindInvalid, "append %s after v%d: bad event %s v%d (%T)", id, prev.Version, e.TransferID, e.Seq, e.Payload)
		}
	}
	if prev.Version == 0 && events[0].Type() != domain.TypeRequested {
		return domain.Errorf(domain.KindInvalid, "append %s: first event is %s, want %s", id, events[0].Type(), domain.TypeRequested)
	}
	return nil
}

// Events returns the transfer's events with versions after afterSeq, oldest
// first, at most limit of them (all of them when limit <= 0). A transfer
// that does not exist has no events and no error.
func (s *Store) Events(_ context.Context, id string, afterSeq, limit int) ([]domain.Event, error) {
	s.lock()
	defer s.mu.Unlock()
	var out []domain.Event
	for _, e := range s.transfers[id] {
		if limit > 0 && len(out) == limit {
			break
		}
		if e.Seq > afterSeq {
			out = append(out, e)
		}
	}
	return out, nil
}

// EventStates is Events with the state after each event, folded as the
// real store stores it beside each event.
func (s *Store) EventStates(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, []domain.State, error) {
	all, _ := s.Events(ctx, id, 0, 0)
	st := domain.State{ID: id}
	var events []domain.Event
	var states []domain.State
	for _, e := range all {
		st = domain.Evolve(st, e)
		if e.Seq > afterSeq && (limit <= 0 || len(events) < limit) {
			events, states = append(events, e), append(states, st)
		}
	}
	return events, states, nil
}

// FindByRef returns the id of the transfer whose projected view (the newest
// state Project stored for it) has the remote reference ref (State.Ref), or
// an error satisfying errors.Is(err, store.ErrNotFound) when none has it.
// As in the real store, which reads its read model, a transfer is found
// once its view with that reference has been projected, not as soon as its
// events are stored: a test that needs it found projects first, as publish
// would.
func (s *Store) FindByRef(_ context.Context, ref string) (string, error) {
	s.lock()
	defer s.mu.Unlock()
	s.finds = append(s.finds, ref)
	if s.FindErr != nil {
		if err := s.FindErr(ref); err != nil {
			return "", err
		}
	}
	if ref != "" {
		var ids []string
		for id, v := range s.views {
			if v.Ref == ref {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			return slices.Min(ids), nil
		}
	}
	return "", fmt.Errorf("ref %s: %w", ref, store.ErrNotFound)
}

// Project stores st as the transfer's view unless the stored view is of
// version st.Version or a newer one. It returns true when it stored st,
// false (and no error) otherwise. st must have an ID and a version
// (domain.KindInvalid otherwise).
func (s *Store) Project(_ context.Context, st domain.State) (bool, error) {
	s.lock()
	defer s.mu.Unlock()
	if s.ProjectErr != nil {
		if err := s.ProjectErr(st); err != nil {
			return false, err
		}
	}
	if st.ID == "" || st.Version <= 0 {
		return false, domain.Errorf(domain.KindInvalid, "project: state has no id or version (%q v%d)", st.ID, st.Version)
	}
	s.projected = append(s.projected, st)
	if v, ok := s.views[st.ID]; ok && v.Version >= st.Version {
		return false, nil
	}
	s.views[st.ID] = st
	return true, nil
}

// Seed replaces the transfer's history with events of the payloads, versions
// 1, 2, … one a second from at, without checks or hooks. It returns the
// events and the state after each. It projects no view: Project the last
// state for FindByRef to find the transfer.
func (s *Store) Seed(id string, at time.Time, payloads ...domain.Payload) ([]domain.Event, []domain.State) {
	s.lock()
	defer s.mu.Unlock()
	evs := make([]domain.Event, len(payloads))
	states := make([]domain.State, len(payloads))
	st := domain.State{}
	for i, p := range payloads {
		evs[i] = domain.Event{TransferID: id, Seq: i + 1, At: at.Add(time.Duration(i) * time.Second), Payload: p}
		st = domain.Evolve(st, evs[i])
		states[i] = st
	}
	s.transfers[id] = evs
	return evs, states
}

// Put adds events to the end of their transfers' histories as they are,
// without checks, hooks or counting: another writer's append, or a history
// that Append would refuse.
func (s *Store) Put(events ...domain.Event) {
	s.lock()
	defer s.mu.Unlock()
	for _, e := range events {
		s.transfers[e.TransferID] = append(s.transfers[e.TransferID], e)
	}
}

// History returns the events stored for id, oldest first.
func (s *Store) History(id string) []domain.Event {
	s.lock()
	defer s.mu.Unlock()
	return slices.Clone(s.transfers[id])
}

// IDs returns the ids of the transfers that have events, sorted.
func (s *Store) IDs() []string {
	s.lock()
	defer s.mu.Unlock()
	return s.ids()
}

func (s *Store) ids() []string {
	var ids []string
	for id, evs := range s.transfers {
		if len(evs) > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Loads returns how many times Load was called for id, failing or not.
func (s *Store) Loads(id string) int {
	s.lock()
	defer s.mu.Unlock()
	return s.loads[id]
}

// Appends returns how many times Append was called, failing or not.
func (s *Store) Appends() int {
	s.lock()
	defer s.mu.Unlock()
	return s.appends
}

// Appended returns the events that Append stored, of every transfer, in
// order (nil when there are none).
func (s *Store) Appended() []domain.Event {
	s.lock()
	defer s.mu.Unlock()
	return slices.Clone(s.appended)
}

// FindCalls returns the refs FindByRef was called with, in order.
func (s *Store) FindCalls() []string {
	s.lock()
	defer s.mu.Unlock()
	return slices.Clone(s.finds)
}

// Projected returns the states Project was given and did not fail on, in
// order, whether or not it stored them.
func (s *Store) Projected() []domain.State {
	s.lock()
	defer s.mu.Unlock()
	return slices.Clone(s.projected)
}

// Journal is an ordered log of what a handler did, shared by a Store and a
// test's other fakes so that the test can check the order of calls and
// appends. It is safe for concurrent use; a nil Journal drops its entries.
type Journal struct {
	mu      sync.Mutex
	entries []string
}

// Add appends an entry, formatted as by fmt.Sprintf.
func (j *Journal) Add(format string, args ...any) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

// All returns the entries, oldest first.
func (j *Journal) All() []string {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}
