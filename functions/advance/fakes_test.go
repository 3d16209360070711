package advance

import (
	"context"
	"fmt"
	"sync"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/transport"
)

var (
	_ Store     = (*memstore.Store)(nil)
	_ Scheduler = (*memstore.Scheduler)(nil)
)

// fakeTransport records its calls in the journal. fail, when set, returns
// the error a call should fail with; hook runs at the start of every call;
// bytes, when set, says how long chunk i is (as only the source knows for a
// source-chunked transfer), else the plan's length is reported; held, when
// set, says whether the destination holds the chunk it is given (with the
// state it is sent in).
type fakeTransport struct {
	log   *memstore.Journal
	mu    sync.Mutex
	fail  func(op string, id string, chunk int) error
	hook  func(ctx context.Context, op string, id string, chunk int)
	bytes func(chunk int) int64
	held  func(t domain.State, chunk int) bool
}

var _ Transport = (*fakeTransport)(nil)

func (f *fakeTransport) call(ctx context.Context, op, id string, chunk int) error {
	if op == "send" {
		f.log.Add("send %s %d", id, chunk)
	} else {
		f.log.Add("%s %s", op, id)
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
	if f.held != nil && f.held(t, c.Index) {
		return transport.Sent{Bytes: n, Held: true}, nil
	}
	return transport.Sent{Ref: fmt.Sprintf("etag-%d", c.Index), Bytes: n}, nil
}

func (f *fakeTransport) Complete(ctx context.Context, t domain.State) (transport.Delivery, error) {
	if err := f.call(ctx, "complete", t.ID, 0); err != nil {
		return transport.Delivery{}, err
	}
	return transport.Delivery{Ref: "final-" + t.ID, Location: "null://" + t.ID}, nil
}

// fakeAcknowledger records its calls in the journal ("ack ID") and fails
// them with err when set.
type fakeAcknowledger struct {
	log   *memstore.Journal
	mu    sync.Mutex
	err   error
	calls []domain.State
}

var _ Acknowledger = (*fakeAcknowledger)(nil)

func (a *fakeAcknowledger) Acknowledge(_ context.Context, t domain.State) error {
	a.log.Add("ack %s", t.ID)
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
