package domain

import (
	"fmt"
	"time"
)

// Command is an intention to change a transfer. Decide turns it into events
// or refuses it.
type Command interface{ command() }

// Request creates a transfer. Chunks is computed from Size and ChunkSize.
type Request struct{ Requested Requested }

// Reject creates a transfer that failed before it began (bad metadata, no
// route): it records what was asked and why it cannot be done.
type Reject struct {
	Requested Requested
	Reason    *Error
}

// Start records that the destination is ready for chunks.
type Start struct{ Ref string }

// RecordChunk records that a chunk reached the destination. Held says the
// destination has not stored it yet (see ChunkSent).
type RecordChunk struct {
	Index int
	Bytes int64
	Ref   string
	Held  bool
}

// Complete records that the destination holds the whole file.
type Complete struct {
	Ref      string
	Location string
}

// Fail records a failed attempt. Whether it is retried follows from the
// error's kind and the route's retry policy.
type Fail struct{ Err *Error }

// Retry resumes a transfer whose retry time has come.
type Retry struct{}

// Acknowledge records the far end's confirmation of receipt.
type Acknowledge struct{ By, Ref string }

// Replay restarts a transfer that failed for good. Operator command.
type Replay struct{ Actor, Reason string }

// Cancel stops a transfer that has not finished. Operator command.
type Cancel struct{ Actor, Reason string }

func (Request) command()     {}
func (Reject) command()      {}
func (Start) command()       {}
func (RecordChunk) command() {}
func (Complete) command()    {}
func (Fail) command()        {}
func (Retry) command()       {}
func (Acknowledge) command() {}
func (Replay) command()      {}
func (Cancel) command()      {}

// Decide returns the events that command c causes on a transfer in state s
// at time now, or an *Error: KindInvalid for a malformed command, KindConflict
// for a command the transfer's state does not allow (a terminal transfer
// accepts only Replay and Cancel). It is pure. The returned events carry
// consecutive Seq numbers after s.Version and the transfer's id (for Request
// and Reject the caller sets the id on the returned events).
func Decide(s State, c Command, now time.Time) ([]Event, error) {
	payloads, err := decide(s, c, now)
	if err != nil {
		return nil, err
	}
	events := make([]Event, len(payloads))
	for i, p := range payloads {
		events[i] = Event{TransferID: s.ID, Seq: s.Version + 1 + i, At: now, Payload: p}
	}
	return events, nil
}

func decide(s State, c Command, now time.Time) ([]Payload, error) {
	if s.Status == StatusNew {
		switch c := c.(type) {
		case Request:
			r, err := plan(c.Requested)
			if err != nil {
				return nil, err
			}
			return []Payload{r}, nil
		case Reject:
			if c.Reason == nil {
				return nil, Errorf(KindInvalid, "reject needs a reason")
			}
			r := c.Requested
			if r.ChunkSize <= 0 {
				r.ChunkSize = DefaultChunkSize
			}
			if r.Size < 0 {
				r.Size = 0
			}
			r.Chunks = ChunkCount(r.Size, r.ChunkSize)
			return []Payload{r, failure(c.Reason, 1, false, time.Time{})}, nil
		default:
			return nil, Errorf(KindNotFound, "transfer does not exist")
		}
	}
	if s.Terminal() {
		switch c := c.(type) {
		case Replay:
			if s.Status != StatusFailed {
				return nil, Errorf(KindConflict, "only a failed transfer can be replayed; this one is %s", s.Status)
			}
			if c.Actor == "" {
				return nil, Errorf(KindInvalid, "replay needs an actor")
			}
			if s.Request.Destination.Type == "" {
				return nil, Errorf(KindConflict, "transfer was rejected before it had a route; fix the upload and send it again")
			}
			return []Payload{Replayed{Actor: c.Actor, Reason: c.Reason}}, nil
		case Cancel:
			if s.Status != StatusFailed {
				return nil, Errorf(KindConflict, "transfer is already %s", s.Status)
			}
			return cancel(c)
		default:
			return nil, Errorf(KindConflict, "transfer is %s and accepts only replay or cancel", s.Status)
		}
	}
	switch c := c.(type) {
	case Request, Reject:
		return nil, Errorf(KindConflict, "transfer already exists")
	case Start:
		if s.Status != StatusInProgress || s.Started {
			return nil, Errorf(KindConflict, "transfer cannot start: it is %s (started=%t)", s.Status, s.Started)
		}
		return []Payload{Started{Ref: c.Ref}}, nil
	case RecordChunk:
		if s.Status != StatusInProgress || !s.Started {
			return nil, Errorf(KindConflict, "no chunk can be recorded while the transfer is %s (started=%t)", s.Status, s.Started)
		}
		if c.Index != s.ChunksSent+1 || c.Index > s.Request.Chunks {
			return nil, Errorf(KindConflict, "chunk %d is out of order: %d of %d sent", c.Index, s.ChunksSent, s.Request.Chunks)
		}
		if c.Bytes < 0 {
			return nil, Errorf(KindInvalid, "chunk %d has %d bytes", c.Index, c.Bytes)
		}
		if want := s.Request.Chunk(c.Index).Length; !s.Request.SourceChunked() && c.Bytes != want {
			return nil, Errorf(KindInvalid, "chunk %d has %d bytes, the plan says %d", c.Index, c.Bytes, want)
		}
		if c.Held {
			switch {
			case !s.Request.SourceChunked():
				return nil, Errorf(KindInvalid, "chunk %d is held, but only a source-chunked transfer's chunks may be", c.Index)
			case c.Index == s.Request.Chunks:
				return nil, Errorf(KindInvalid, "chunk %d is the last and cannot be held", c.Index)
			case c.Bytes >= MaxHeldBytes-s.HeldBytes:
				return nil, Errorf(KindInvalid, "chunk %d of %d bytes would make the held run %d bytes; it must stay under %d",
					c.Index, c.Bytes, s.HeldBytes+c.Bytes, MaxHeldBytes)
			}
		}
		return []Payload{ChunkSent{Index: c.Index, Bytes: c.Bytes, Ref: c.Ref, Held: c.Held}}, nil
	case Complete:
		if s.Status != StatusInProgress || s.ChunksSent != s.Request.Chunks {
			return nil, Errorf(KindConflict, "cannot complete: %d of %d chunks sent, status %s", s.ChunksSent, s.Request.Chunks, s.Status)
		}
		if c.Location == "" {
			return nil, Errorf(KindInvalid, "delivery needs a location")
		}
		return []Payload{Delivered{Ref: c.Ref, Location: c.Location}}, nil
	case Fail:
		if c.Err == nil {
			return nil, Errorf(KindInvalid, "fail needs an error")
		}
		if s.Status == StatusDelivered {
			// The far end refused what was delivered (a MESH non-delivery
			// report): final, whatever the error's kind.
			return []Payload{failure(c.Err, s.Attempt+1, false, time.Time{})}, nil
		}
		if s.Status != StatusInProgress {
			return nil, Errorf(KindConflict, "cannot fail a transfer that is %s", s.Status)
		}
		attempt := s.Attempt + 1
		policy := s.Request.Retry.withDefaults()
		retry := c.Err.Kind.Retryable() && attempt < policy.MaxAttempts
		var next time.Time
		if retry {
			next = now.Add(retryDelay(policy, s.ID, attempt, c.Err.RetryAfter))
		}
		return []Payload{failure(c.Err, attempt, retry, next)}, nil
	case Retry:
		if s.Status != StatusRetrying {
			return nil, Errorf(KindConflict, "nothing to retry: transfer is %s", s.Status)
		}
		if now.Before(s.NextAttemptAt) {
			return nil, Errorf(KindConflict, "retry is due at %s", s.NextAttemptAt.Format(time.RFC3339))
		}
		return []Payload{Retried{Attempt: s.Attempt + 1}}, nil
	case Acknowledge:
		if s.Status != StatusDelivered {
			return nil, Errorf(KindConflict, "cannot acknowledge a transfer that is %s", s.Status)
		}
		return []Payload{Acknowledged{By: c.By, Ref: c.Ref}}, nil
	case Replay:
		return nil, Errorf(KindConflict, "only a failed transfer can be replayed; this one is %s", s.Status)
	case Cancel:
		// A delivered transfer still waiting for its acknowledgement may be
		// cancelled: that stops the wait, not the delivery.
		return cancel(c)
	default:
		return nil, Errorf(KindInvalid, "unknown command %T", c)
	}
}

// MaxRetryAfter bounds how long a peer's Retry-After may hold a retry back.
const MaxRetryAfter = 24 * time.Hour

// retryDelay is the wait before the next attempt: the policy's jittered
// backoff, or the peer's Retry-After when that is longer (up to
// MaxRetryAfter), so a throttling peer is not asked again before it said.
func retryDelay(p RetryPolicy, id string, attempt int, retryAfter time.Duration) time.Duration {
	return max(p.Delay(id, attempt), min(retryAfter, MaxRetryAfter))
}

func cancel(c Cancel) ([]Payload, error) {
	if c.Actor == "" {
		return nil, Errorf(KindInvalid, "cancel needs an actor")
	}
	return []Payload{Cancelled{Actor: c.Actor, Reason: c.Reason}}, nil
}

func failure(e *Error, attempt int, retry bool, next time.Time) Failed {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return Failed{Kind: e.Kind, Code: e.Code, Message: msg, Retryable: retry, Attempt: attempt, NextAttemptAt: next}
}

func plan(r Requested) (Requested, error) {
	if r.Size < 0 {
		return r, Errorf(KindInvalid, "size %d is negative", r.Size)
	}
	switch {
	case r.ChunkSize == 0 && r.Chunks > 0:
		// Source-chunked: the source says how many chunks, not their sizes.
	case r.ChunkSize <= 0:
		return r, Errorf(KindInvalid, "chunk size %d is not positive", r.ChunkSize)
	default:
		if planned := PlanChunkSize(r.Size, r.ChunkSize); planned != r.ChunkSize {
			r.ChunkSizeRaisedFrom, r.ChunkSize = r.ChunkSize, planned
		}
		r.Chunks = ChunkCount(r.Size, r.ChunkSize)
	}
	if err := r.Destination.Validate(); err != nil {
		return r, &Error{Kind: KindInvalid, Message: fmt.Sprintf("route %q", r.Route), Err: err}
	}
	if err := r.Retry.Validate(); err != nil {
		return r, &Error{Kind: KindInvalid, Message: fmt.Sprintf("route %q", r.Route), Err: err}
	}
	return r, nil
}
