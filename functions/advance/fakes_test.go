package advance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// journal is the ordered log of what the handler did, shared by the fakes
// so that tests can check the order of transport calls and appends.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// memStore is an in-memory Store with the real store's conflict rule:
// Append succeeds only after the current version.
type memStore struct {
	mu        sync.Mutex
	log       *journal
	transfers map[string][]domain.Event
	loads     map[string]int
	loadErr   map[string]error
	// appendErr, when set, is consulted before every Append; a non-nil
	// result is returned and nothing is stored.
	appendErr func(prev domain.State, evs []domain.Event) error
}

var _ Store = (*memStore)(nil)

func newMemStore(log *journal) *memStore {
	return &memStore{log: log, transfers: map[string][]domain.Event{}, loads: map[string]int{}, loadErr: map[string]error{}}
}

func (s *memStore) Load(_ context.Context, id string) (domain.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads[id]++
	if err := s.loadErr[id]; err != nil {
		return domain.State{}, err
	}
	evs, ok := s.transfers[id]
	if !ok {
		return domain.State{}, fmt.Errorf("load %s: %w", id, store.ErrNotFound)
	}
	return domain.Fold(domain.State{}, evs...), nil
}

func (s *memStore) Append(_ context.Context, prev domain.State, evs ...domain.Event) (domain.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.appendErr != nil {
		if err := s.appendErr(prev, evs); err != nil {
			return prev, err
		}
	}
	if len(evs) == 0 {
		return prev, domain.Errorf(domain.KindInvalid, "append: no events")
	}
	id := evs[0].TransferID
	if len(s.transfers[id]) != prev.Version {
		return prev, fmt.Errorf("append %s v%d: %w", id, evs[0].Seq, store.ErrConflict)
	}
	for i, e := range evs {
		if e.TransferID != id || e.Seq != prev.Version+1+i {
			return prev, domain.Errorf(domain.KindInvalid, "append %s: bad event %s v%d", id, e.TransferID, e.Seq)
		}
		s.log.add("append %s %s", id, e.Type())
	}
	s.transfers[id] = append(s.transfers[id], evs...)
	return domain.Fold(prev, evs...), nil
}

// seed stores a transfer's history and returns its events and the state
// after each.
func (s *memStore) seed(id string, at time.Time, payloads ...domain.Payload) ([]domain.Event, []domain.State) {
	s.mu.Lock()
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

// history returns the events stored for id.
func (s *memStore) history(id string) []domain.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]domain.Event(nil), s.transfers[id]...)
}

func (s *memStore) loadCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loads[id]
}

// fakeTransport records its calls in the journal. fail, when set, returns
// the error a call should fail with; hook runs at the start of every call;
// bytes, when set, says how long chunk i is (as only the source knows for a
// source-chunked transfer), else the plan's length is reported.
type fakeTransport struct {
	log   *journal
	mu    sync.Mutex
	fail  func(op string, id string, chunk int) error
	hook  func(ctx context.Context, op string, id string, chunk int)
	bytes func(chunk int) int64
}

var _ Transport = (*fakeTransport)(nil)

func (f *fakeTransport) call(ctx context.Context, op, id string, chunk int) error {
	if op == "send" {
		f.log.add("send %s %d", id, chunk)
	} else {
		f.log.add("%s %s", op, id)
	}
	f.mu.Lock()
	hook, fail := f.hook, f.fail
	f.mu.Unlock()
	if hook != nil {
		hook(ctx, op, id, chunk)
	}
	if fail != nil {
		return fail(op, id, chunk)
	}
	return nil
}

func (f *fakeTransport) Begin(ctx context.Context, t domain.State) (string, error) {
	if err := f.call(ctx, "begin", t.ID, 0); err != nil {
		return "", err
	}
	return "upload-" + t.ID, nil
}

func (f *fakeTransport) SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error) {
	if want := t.Request.Chunk(c.Index); c != want {
		return transport.Sent{}, domain.Errorf(domain.KindInternal, "chunk %+v is not the plan's %+v", c, want)
	}
	if err := f.call(ctx, "send", t.ID, c.Index); err != nil {
		return transport.Sent{}, err
	}
	n := c.Length
	if f.bytes != nil {
		n = f.bytes(c.Index)
	}
	return transport.Sent{Ref: fmt.Sprintf("etag-%d", c.Index), Bytes: n}, nil
}

func (f *fakeTransport) Complete(ctx context.Context, t domain.State) (transport.Delivery, error) {
	if err := f.call(ctx, "complete", t.ID, 0); err != nil {
		return transport.Delivery{}, err
	}
	return transport.Delivery{Ref: "final-" + t.ID, Location: "null://" + t.ID}, nil
}

// scheduled is one ScheduleRetry call.
type scheduled struct {
	ID      string
	Version int
	At      time.Time
}

type fakeScheduler struct {
	mu     sync.Mutex
	calls  []scheduled
	tracks []scheduled
	err    error
}

var _ Scheduler = (*fakeScheduler)(nil)

func (f *fakeScheduler) ScheduleTrack(_ context.Context, id string, version int, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tracks = append(f.tracks, scheduled{id, version, at})
	return f.err
}

func (f *fakeScheduler) ScheduleRetry(_ context.Context, id string, version int, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, scheduled{id, version, at})
	return f.err
}

func (f *fakeScheduler) all() []scheduled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scheduled(nil), f.calls...)
}

func (f *fakeScheduler) allTracks() []scheduled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scheduled(nil), f.tracks...)
}

// fakeAcknowledger records its calls in the journal ("ack ID") and fails
// them with err when set.
type fakeAcknowledger struct {
	log   *journal
	mu    sync.Mutex
	err   error
	calls []domain.State
}

var _ Acknowledger = (*fakeAcknowledger)(nil)

func (a *fakeAcknowledger) Acknowledge(_ context.Context, t domain.State) error {
	a.log.add("ack %s", t.ID)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, t)
	return a.err
}

func (a *fakeAcknowledger) acknowledged() []domain.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]domain.State(nil), a.calls...)
}
