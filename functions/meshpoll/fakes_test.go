package meshpoll

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport/mesh"
)

// journal is the ordered log of what the handler did, shared by the fakes
// so that tests can check the order of MESH calls and appends.
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

// memStore is an in-memory Store with the real store's conflict rule
// (Append succeeds only after the current version) and a read model that
// finds a transfer by its remote reference.
type memStore struct {
	mu        sync.Mutex
	log       *journal
	transfers map[string][]domain.Event
	loads     map[string]int
	finds     []string
	// appendErr, when set, is consulted before every Append; a non-nil
	// result is returned and nothing is stored.
	appendErr func(prev domain.State, evs []domain.Event) error
	// loadErr, when set, fails every Load.
	loadErr error
	// findErr, when set, fails every FindByRef.
	findErr error
}

var _ Store = (*memStore)(nil)

func newMemStore(log *journal) *memStore {
	return &memStore{log: log, transfers: map[string][]domain.Event{}, loads: map[string]int{}}
}

func (s *memStore) Load(_ context.Context, id string) (domain.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads[id]++
	if s.loadErr != nil {
		return domain.State{}, s.loadErr
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

func (s *memStore) FindByRef(_ context.Context, ref string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finds = append(s.finds, ref)
	if s.findErr != nil {
		return "", s.findErr
	}
	for id, evs := range s.transfers {
		if domain.Fold(domain.State{}, evs...).Ref == ref {
			return id, nil
		}
	}
	return "", fmt.Errorf("ref %s: %w", ref, store.ErrNotFound)
}

// seed stores a transfer's history, one event a second from at.
func (s *memStore) seed(id string, at time.Time, payloads ...domain.Payload) domain.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := make([]domain.Event, len(payloads))
	for i, p := range payloads {
		evs[i] = domain.Event{TransferID: id, Seq: i + 1, At: at.Add(time.Duration(i) * time.Second), Payload: p}
	}
	s.transfers[id] = evs
	return domain.Fold(domain.State{}, evs...)
}

// history returns the events stored for id.
func (s *memStore) history(id string) []domain.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]domain.Event(nil), s.transfers[id]...)
}

func (s *memStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.transfers)
}

func (s *memStore) findCalls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.finds...)
}

// listing is one Inbox call's arguments.
type listing struct {
	MaxResults   int
	ContinueFrom string
}

// fakeInbox is one mailbox's MESH client. Inbox returns pages in order
// (then empty pages), or listErr; Head answers from heads, or headErr for
// the ids it names.
type fakeInbox struct {
	mailbox string
	log     *journal

	mu        sync.Mutex
	pages     []mesh.InboxPage
	listErr   error
	listings  []listing
	heads     map[string]mesh.Head
	headErr   map[string]error
	headCalls []string
	// headHook, when set, runs at the start of every Head call, outside
	// the fake's lock.
	headHook     func(id string)
	handshakes   int
	handshakeErr error
}

var _ Inbox = (*fakeInbox)(nil)

func newInbox(mailbox string, log *journal) *fakeInbox {
	return &fakeInbox{mailbox: mailbox, log: log, heads: map[string]mesh.Head{}, headErr: map[string]error{}}
}

func (f *fakeInbox) Handshake(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handshakes++
	f.log.add("handshake %s", f.mailbox)
	return f.handshakeErr
}

func (f *fakeInbox) Inbox(_ context.Context, maxResults int, continueFrom string) (mesh.InboxPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listings = append(f.listings, listing{maxResults, continueFrom})
	f.log.add("list %s %q", f.mailbox, continueFrom)
	if f.listErr != nil {
		return mesh.InboxPage{}, f.listErr
	}
	if len(f.pages) == 0 {
		return mesh.InboxPage{}, nil
	}
	p := f.pages[0]
	f.pages = f.pages[1:]
	return p, nil
}

func (f *fakeInbox) Head(_ context.Context, id string) (mesh.Head, error) {
	f.mu.Lock()
	hook := f.headHook
	f.mu.Unlock()
	if hook != nil {
		hook(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.headCalls = append(f.headCalls, id)
	f.log.add("head %s %s", f.mailbox, id)
	if err := f.headErr[id]; err != nil {
		return mesh.Head{}, err
	}
	h, ok := f.heads[id]
	if !ok {
		return mesh.Head{}, domain.Errorf(domain.KindNotFound, "mesh head %s: 404", id)
	}
	return h, nil
}

// put adds a message to the inbox: one page listing every id given, and
// the heads.
func (f *fakeInbox) put(heads ...mesh.Head) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, h := range heads {
		f.heads[h.Headers.MessageID] = h
		ids = append(ids, h.Headers.MessageID)
	}
	f.pages = append(f.pages, mesh.InboxPage{MessageIDs: ids})
}

func (f *fakeInbox) headsAsked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.headCalls...)
}

func (f *fakeInbox) listed() []listing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]listing(nil), f.listings...)
}

func (f *fakeInbox) handshakeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handshakes
}
