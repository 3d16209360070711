package esm

import (
	"github.com/aws/aws-lambda-go/events"
)

// firstFailure applies Lambda's ReportBatchItemFailures rules for streams to
// a handler's response over a batch whose records have the sequence numbers
// seqs. It returns -1 when the batch succeeded, otherwise the index of the
// first failed record: records before it are done, it and everything after it
// must be retried. An empty item identifier, or one that names no record of
// the batch, fails the whole batch (index 0), as in Lambda.
func firstFailure(seqs []string, resp events.DynamoDBEventResponse) int {
	if len(resp.BatchItemFailures) == 0 {
		return -1
	}
	index := make(map[string]int, len(seqs))
	for i, s := range seqs {
		index[s] = i
	}
	first := len(seqs)
	for _, f := range resp.BatchItemFailures {
		i, ok := index[f.ItemIdentifier]
		if f.ItemIdentifier == "" || !ok {
			return 0
		}
		first = min(first, i)
	}
	return first
}

// failedMessages applies Lambda's ReportBatchItemFailures rules for SQS to a
// handler's response over messages with the given IDs. It returns whether
// each message failed. An empty item identifier, or one that names no message
// of the batch, fails every message, as in Lambda.
func failedMessages(ids []string, resp events.SQSEventResponse) []bool {
	failed := make([]bool, len(ids))
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	for _, f := range resp.BatchItemFailures {
		i, ok := index[f.ItemIdentifier]
		if f.ItemIdentifier == "" || !ok {
			for j := range failed {
				failed[j] = true
			}
			return failed
		}
		failed[i] = true
	}
	return failed
}

// batcher decides which records at the head of a shard's pending records the
// next invocation gets, and what a failure means, the way a Lambda stream
// event source mapping does:
//
//   - A batch is at most batchSize records.
//   - A partial failure (first failed record at index i > 0) completes the
//     records before i; the rest of the batch is retried.
//   - A batch that fails as a whole (error, panic, or first failure at index
//     0) is split in two halves when bisect is on and it holds more than one
//     record; each half is then processed in turn. Splitting does not count
//     as a retry.
//   - A batch that cannot be split is retried up to maxRetries times; after
//     that it is given up (its records go to the on-failure destination) and
//     processing moves past it.
//
// The retry count belongs to the batch at the head: it starts again from zero
// whenever the head moves or the head batch changes size. batcher does no I/O.
type batcher struct {
	batchSize  int
	maxRetries int
	bisect     bool

	queue   []int // sizes of the batches still to run from the head, when retrying a failed batch
	retries int   // failed attempts of queue[0] so far
}

// next returns the number of records the next invocation gets, given how
// many records are pending.
func (b *batcher) next(pending int) int {
	if len(b.queue) > 0 {
		return min(b.queue[0], pending)
	}
	return min(b.batchSize, pending)
}

// result records the outcome of invoking the handler on the next n records:
// failedAt is -1 when they all succeeded, otherwise the index of the first
// failed record (0 when the whole batch failed). It returns how many records
// at the head are done and how many after those are given up; the caller
// checkpoints past done+discard records.
func (b *batcher) result(n, failedAt int) (done, discard int) {
	if len(b.queue) == 0 || b.queue[0] != n {
		// A fresh batch (or the tail of the pending records): track it.
		if len(b.queue) > 0 {
			b.queue[0] -= n
			if b.queue[0] == 0 {
				b.queue = b.queue[1:]
			}
		}
		b.queue = append([]int{n}, b.queue...)
		b.retries = 0
	}
	switch {
	case failedAt < 0 || failedAt >= n:
		b.pop()
		return n, 0
	case failedAt > 0:
		b.queue[0] = n - failedAt
		b.retries = 0
		return failedAt, 0
	case b.bisect && n > 1:
		half := (n + 1) / 2
		b.queue = append([]int{half, n - half}, b.queue[1:]...)
		b.retries = 0
		return 0, 0
	}
	b.retries++
	if b.retries > b.maxRetries {
		b.pop()
		return 0, n
	}
	return 0, 0
}

// attempts returns how many times the head batch has failed without being
// split, for logs and on-failure messages.
func (b *batcher) attempts() int { return b.retries }

func (b *batcher) pop() {
	b.queue = b.queue[1:]
	b.retries = 0
	if len(b.queue) == 0 {
		b.queue = nil
	}
}
