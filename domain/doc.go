// Package domain holds ferry's vocabulary: the Transfer aggregate as a
// decider (Decide, Evolve, Next), its events and state, routes, the retry
// policy, the chunk plan and the error kinds.
//
// It is pure Go: no AWS SDK, no I/O and no clock reads. Time is passed in.
//
// A transfer's life:
//
//	Requested → Started → ChunkSent × n → Delivered [→ Acknowledged]
//	            any step may end in Failed; a retryable Failed is followed by
//	            Retried when its time comes, a final one may be Replayed by an
//	            operator; an unfinished transfer may be Cancelled.
package domain
