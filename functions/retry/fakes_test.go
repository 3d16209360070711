package retry

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
)

// fakeSQS records the messages sent; err, when set, fails every send.
type fakeSQS struct {
	mu   sync.Mutex
	sent []sqs.SendMessageInput
	err  error
}

var _ Sender = (*fakeSQS)(nil)

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, *in)
	if f.err != nil {
		return nil, f.err
	}
	id := fmt.Sprintf("msg-%d", len(f.sent))
	return &sqs.SendMessageOutput{MessageId: &id}, nil
}

var (
	_ Store     = (*memstore.Store)(nil)
	_ Scheduler = (*memstore.Scheduler)(nil)
)

// fakeTracker answers Track with got, or err when set, and counts calls.
type fakeTracker struct {
	mu    sync.Mutex
	got   Tracking
	err   error
	calls []domain.State
}

var _ Tracker = (*fakeTracker)(nil)

func (f *fakeTracker) Track(_ context.Context, t domain.State) (Tracking, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, t)
	return f.got, f.err
}

// fakeAcknowledger records its calls and fails them with err when set.
type fakeAcknowledger struct {
	mu    sync.Mutex
	err   error
	calls []domain.State
}

var _ Acknowledger = (*fakeAcknowledger)(nil)

func (f *fakeAcknowledger) Acknowledge(_ context.Context, t domain.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, t)
	return f.err
}
