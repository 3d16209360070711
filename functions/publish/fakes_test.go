package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/schema"
)

// fakeBus records every PutEvents call. reject, when set, returns the error
// code an entry is refused with on the given call (1-based), or "" to accept
// it; callErr, when set, fails whole calls.
type fakeBus struct {
	mu      sync.Mutex
	calls   [][]ebtypes.PutEventsRequestEntry
	reject  func(call int, d schema.Detail) string
	callErr func(call int, ds []schema.Detail) error
}

var _ Bus = (*fakeBus)(nil)

func (b *fakeBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, append([]ebtypes.PutEventsRequestEntry(nil), in.Entries...))
	call := len(b.calls)
	if len(in.Entries) > 10 {
		return nil, fmt.Errorf("ValidationException: %d entries, at most 10", len(in.Entries))
	}
	ds := make([]schema.Detail, len(in.Entries))
	for i, e := range in.Entries {
		if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &ds[i]); err != nil {
			return nil, fmt.Errorf("detail is not JSON: %v", err)
		}
	}
	if b.callErr != nil {
		if err := b.callErr(call, ds); err != nil {
			return nil, err
		}
	}
	out := &eventbridge.PutEventsOutput{}
	for i := range in.Entries {
		var code string
		if b.reject != nil {
			code = b.reject(call, ds[i])
		}
		if code != "" {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("refused")})
			continue
		}
		out.Entries = append(out.Entries, ebtypes.PutEventsResultEntry{EventId: aws.String(fmt.Sprintf("eb-%d-%d", call, i))})
	}
	return out, nil
}

// details returns the details sent in each call.
func (b *fakeBus) details(t *testing.T) [][]schema.Detail {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([][]schema.Detail, len(b.calls))
	for i, c := range b.calls {
		for _, e := range c {
			var d schema.Detail
			if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &d); err != nil {
				t.Fatalf("call %d: detail %s: %v", i+1, aws.ToString(e.Detail), err)
			}
			out[i] = append(out[i], d)
		}
	}
	return out
}

func (b *fakeBus) entries() []ebtypes.PutEventsRequestEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []ebtypes.PutEventsRequestEntry
	for _, c := range b.calls {
		out = append(out, c...)
	}
	return out
}

var _ Projector = (*memstore.Store)(nil)
