package meshpoll

import (
	"context"
	"sync"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/transport/mesh"
)

var _ Store = (*memstore.Store)(nil)

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
	log     *memstore.Journal

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

func newInbox(mailbox string, log *memstore.Journal) *fakeInbox {
	return &fakeInbox{mailbox: mailbox, log: log, heads: map[string]mesh.Head{}, headErr: map[string]error{}}
}

func (f *fakeInbox) EnsureHandshake(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handshakes++
	f.log.Add("handshake %s", f.mailbox)
	return f.handshakeErr
}

func (f *fakeInbox) Inbox(_ context.Context, maxResults int, continueFrom string) (mesh.InboxPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listings = append(f.listings, listing{maxResults, continueFrom})
	f.log.Add("list %s %q", f.mailbox, continueFrom)
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
	f.log.Add("head %s %s", f.mailbox, id)
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

// eventTypes lists the types of evs in order.
func eventTypes(evs []domain.Event) []domain.EventType {
	var ts []domain.EventType
	for _, e := range evs {
		ts = append(ts, e.Type())
	}
	return ts
}
