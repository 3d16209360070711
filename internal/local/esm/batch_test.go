package esm

import (
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"pgregory.net/rapid"
)

func failures(ids ...string) []events.DynamoDBBatchItemFailure {
	var fs []events.DynamoDBBatchItemFailure
	for _, id := range ids {
		fs = append(fs, events.DynamoDBBatchItemFailure{ItemIdentifier: id})
	}
	return fs
}

func TestFirstFailure(t *testing.T) {
	seqs := []string{"100", "200", "300", "400"}
	tests := []struct {
		name     string
		failures []events.DynamoDBBatchItemFailure
		want     int
	}{
		{"nil list is success", nil, -1},
		{"empty list is success", []events.DynamoDBBatchItemFailure{}, -1},
		{"one failure", failures("300"), 2},
		{"lowest sequence number wins", failures("400", "200", "300"), 1},
		{"first record", failures("100"), 0},
		{"empty identifier fails the batch", failures("300", ""), 0},
		{"unknown identifier fails the batch", failures("300", "999"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := firstFailure(seqs, events.DynamoDBEventResponse{BatchItemFailures: tt.failures})
			if got != tt.want {
				t.Errorf("firstFailure = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestFailedMessages(t *testing.T) {
	ids := []string{"a", "b", "c"}
	resp := func(ids ...string) events.SQSEventResponse {
		var r events.SQSEventResponse
		for _, id := range ids {
			r.BatchItemFailures = append(r.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
		}
		return r
	}
	tests := []struct {
		name string
		resp events.SQSEventResponse
		want []bool
	}{
		{"success", resp(), []bool{false, false, false}},
		{"some failed", resp("c", "a"), []bool{true, false, true}},
		{"empty identifier fails all", resp("b", ""), []bool{true, true, true}},
		{"unknown identifier fails all", resp("zzz"), []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failedMessages(ids, tt.resp); !slices.Equal(got, tt.want) {
				t.Errorf("failedMessages = %v, want %v", got, tt.want)
			}
		})
	}
}

// step is what the batcher should ask for and what it should decide.
type step struct {
	pending, size, failedAt, done, discard int
}

func TestBatcher(t *testing.T) {
	tests := []struct {
		name  string
		b     batcher
		steps []step
	}{
		{
			name: "success takes full batches",
			b:    batcher{batchSize: 4, maxRetries: 3, bisect: true},
			steps: []step{
				{pending: 10, size: 4, failedAt: -1, done: 4},
				{pending: 6, size: 4, failedAt: -1, done: 4},
				{pending: 2, size: 2, failedAt: -1, done: 2},
			},
		},
		{
			name: "partial failure completes the records before it and retries the rest",
			b:    batcher{batchSize: 4, maxRetries: 3, bisect: false},
			steps: []step{
				{pending: 6, size: 4, failedAt: 2, done: 2},
				{pending: 4, size: 2, failedAt: -1, done: 2},
				{pending: 2, size: 2, failedAt: -1, done: 2},
			},
		},
		{
			name: "bisect isolates a poison record without spending retries",
			b:    batcher{batchSize: 4, maxRetries: 2, bisect: true},
			steps: []step{
				// records 0..3, record 1 is poison; error fails whole batches
				{pending: 4, size: 4, failedAt: 0},           // split 2+2
				{pending: 4, size: 2, failedAt: 0},           // [0,1] split 1+1
				{pending: 4, size: 1, failedAt: -1, done: 1}, // [0]
				{pending: 3, size: 1, failedAt: 0},           // [1] retry 1
				{pending: 3, size: 1, failedAt: 0},           // [1] retry 2
				{pending: 3, size: 1, failedAt: 0, discard: 1},
				{pending: 2, size: 2, failedAt: -1, done: 2}, // the other half
			},
		},
		{
			name: "without bisect the whole failing batch is given up",
			b:    batcher{batchSize: 3, maxRetries: 1, bisect: false},
			steps: []step{
				{pending: 5, size: 3, failedAt: 0},
				{pending: 5, size: 3, failedAt: 0, discard: 3},
				{pending: 2, size: 2, failedAt: -1, done: 2},
			},
		},
		{
			name: "no retries gives up after one attempt",
			b:    batcher{batchSize: 1, maxRetries: 0, bisect: true},
			steps: []step{
				{pending: 2, size: 1, failedAt: 0, discard: 1},
				{pending: 1, size: 1, failedAt: -1, done: 1},
			},
		},
		{
			name: "a partial failure after a split retries within the half",
			b:    batcher{batchSize: 8, maxRetries: 3, bisect: true},
			steps: []step{
				{pending: 8, size: 8, failedAt: 0},           // split 4+4
				{pending: 8, size: 4, failedAt: 3, done: 3},  // 1 left of the first half
				{pending: 5, size: 1, failedAt: -1, done: 1}, // it succeeds on retry
				{pending: 4, size: 4, failedAt: -1, done: 4}, // second half
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			for i, s := range tt.steps {
				if got := b.next(s.pending); got != s.size {
					t.Fatalf("step %d: next(%d) = %d, want %d", i, s.pending, got, s.size)
				}
				done, discard := b.result(s.size, s.failedAt)
				if done != s.done || discard != s.discard {
					t.Fatalf("step %d: result(%d, %d) = (%d, %d), want (%d, %d)", i, s.size, s.failedAt, done, discard, s.done, s.discard)
				}
			}
			if len(b.queue) != 0 {
				t.Errorf("queue left %v, want empty", b.queue)
			}
		})
	}
}

// simulate runs a batcher over records 0..n-1 the way StreamMapping.process
// does, with a handler that fails on poison records, either by reporting the
// first one as a batch item failure or by failing the whole batch. It
// returns each invocation's records, the records handled successfully and
// those given up.
func simulate(b batcher, n int, poison map[int]bool, itemFailures bool) (calls [][]int, handled, given []int) {
	head := 0
	for head < n {
		size := b.next(n - head)
		batch := make([]int, size)
		for i := range batch {
			batch[i] = head + i
		}
		calls = append(calls, batch)
		failedAt := -1
		for i, r := range batch {
			if poison[r] {
				failedAt = i
				break
			}
		}
		if !itemFailures && failedAt > 0 {
			failedAt = 0
		}
		done, discard := b.result(size, failedAt)
		handled = append(handled, batch[:done]...)
		given = append(given, batch[done:done+discard]...)
		head += done + discard
		if len(calls) > 100000 {
			panic("no progress")
		}
	}
	return calls, handled, given
}

func TestBatcherProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 300).Draw(t, "records")
		b := batcher{
			batchSize:  rapid.IntRange(1, 100).Draw(t, "batchSize"),
			maxRetries: rapid.IntRange(0, 5).Draw(t, "maxRetries"),
			bisect:     rapid.Bool().Draw(t, "bisect"),
		}
		itemFailures := rapid.Bool().Draw(t, "itemFailures")
		poison := make(map[int]bool)
		for _, p := range rapid.SliceOfN(rapid.IntRange(0, n-1), 0, 5).Draw(t, "poison") {
			poison[p] = true
		}
		calls, handled, given := simulate(b, n, poison, itemFailures)

		// Every record is either handled or given up, once, in order.
		all := slices.Sorted(slices.Values(append(slices.Clone(handled), given...)))
		if len(all) != n || !slices.IsSorted(handled) || !slices.IsSorted(given) {
			t.Fatalf("handled %v, given up %v: not each of %d records once", handled, given, n)
		}
		for i, r := range all {
			if r != i {
				t.Fatalf("record %d missing (handled %v, given up %v)", i, handled, given)
			}
		}
		// Every poison record is given up; batches never exceed the size.
		for p := range poison {
			if !slices.Contains(given, p) {
				t.Fatalf("poison %d handled", p)
			}
		}
		for _, c := range calls {
			if len(c) > b.batchSize {
				t.Fatalf("batch of %d > %d", len(c), b.batchSize)
			}
		}
		if b.bisect || itemFailures && b.batchSize == 1 {
			// Only the poison records are given up, each after exactly
			// maxRetries+1 attempts on its own.
			if len(given) != len(poison) {
				t.Fatalf("given up %v, want only poison %v", given, poison)
			}
			for p := range poison {
				alone := 0
				for _, c := range calls {
					if len(c) == 1 && c[0] == p {
						alone++
					}
				}
				if b.bisect && alone != b.maxRetries+1 {
					t.Fatalf("poison %d invoked alone %d times, want %d", p, alone, b.maxRetries+1)
				}
			}
		}
	})
}
