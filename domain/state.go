package domain

import (
	"slices"
	"strings"
	"time"
)

// Status is a transfer's place in its life, as shown to operators and used
// by history queries.
type Status string

// The statuses. Terminal ones accept only operator commands.
const (
	StatusNew          Status = ""             // no events yet
	StatusInProgress   Status = "IN_PROGRESS"  // requested, started or sending chunks
	StatusRetrying     Status = "RETRYING"     // an attempt failed; another is scheduled
	StatusDelivered    Status = "DELIVERED"    // the destination holds the file
	StatusAcknowledged Status = "ACKNOWLEDGED" // the far end confirmed receipt (terminal)
	StatusFailed       Status = "FAILED"       // failed for good (terminal; may be replayed)
	StatusCancelled    Status = "CANCELLED"    // stopped by an operator (terminal)
)

// Statuses lists every status a transfer can have after its first event.
var Statuses = []Status{StatusInProgress, StatusRetrying, StatusDelivered, StatusAcknowledged, StatusFailed, StatusCancelled}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// StatusList is Statuses as text, for messages: "IN_PROGRESS, RETRYING, …".
func StatusList() string {
	names := make([]string, len(Statuses))
	for i, s := range Statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// State is a transfer folded from its events. It is small and bounded
// whatever the number of chunks, so it can be stored beside every event.
type State struct {
	ID      string    `json:"id"`
	Version int       `json:"version"`
	Status  Status    `json:"status"`
	Request Requested `json:"request"`
	// Created and Updated are the times of the first and latest events.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Started is true once the destination has been prepared; Ref is the
	// remote reference it returned.
	Started    bool   `json:"started,omitempty"`
	Ref        string `json:"ref,omitempty"`
	ChunksSent int    `json:"chunksSent"`
	BytesSent  int64  `json:"bytesSent"`
	// HeldFrom is the first chunk of the run of held chunks just before
	// the next one (0: none is held), and HeldBytes their total length:
	// chunks HeldFrom..ChunksSent were taken from the source but the
	// destination has not stored them yet (see ChunkSent.Held). They are
	// counted in ChunksSent and BytesSent.
	HeldFrom  int   `json:"heldFrom,omitempty"`
	HeldBytes int64 `json:"heldBytes,omitempty"`
	// Attempt counts failures since the last progress (a chunk sent, a
	// replay); it resets whenever the transfer moves forward.
	Attempt       int       `json:"attempt,omitempty"`
	LastFailure   *Failed   `json:"lastFailure,omitempty"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	Location      string    `json:"location,omitempty"`
}

// Size is the payload's size as far as it is known: the planned size, or
// for a source-chunked transfer (a MESH message) the bytes received so far.
func (s State) Size() int64 {
	if s.Request.SourceChunked() {
		return s.BytesSent
	}
	return s.Request.Size
}

// Terminal reports whether the transfer accepts only operator commands.
func (s State) Terminal() bool {
	switch s.Status {
	case StatusAcknowledged, StatusFailed, StatusCancelled:
		return true
	case StatusDelivered:
		return !s.Request.ExpectAck && !s.Request.AckSource
	}
	return false
}

// Evolve returns the state after applying e. It never fails: events are
// facts; Decide has already checked them.
func Evolve(s State, e Event) State {
	s.Version = e.Seq
	s.Updated = e.At
	switch p := e.Payload.(type) {
	case Requested:
		s.ID = e.TransferID
		s.Request = p
		s.Status = StatusInProgress
		s.Created = e.At
	case Started:
		s.Started = true
		s.Ref = p.Ref
	case ChunkSent:
		if s.Ref == "" && p.Index == 1 {
			// Some destinations create the remote object with the first
			// chunk (MESH returns the message id then), not at Start.
			s.Ref = p.Ref
		}
		s.ChunksSent = p.Index
		s.BytesSent += p.Bytes
		if p.Held {
			if s.HeldFrom == 0 {
				s.HeldFrom = p.Index
			}
			s.HeldBytes += p.Bytes
		} else {
			s.HeldFrom, s.HeldBytes = 0, 0
		}
		s.Attempt = 0
		s.LastFailure = nil
	case Delivered:
		s.Status = StatusDelivered
		s.Location = p.Location
		s.Attempt = 0
		s.LastFailure = nil
	case Failed:
		f := p
		s.LastFailure = &f
		s.Attempt = p.Attempt
		s.NextAttemptAt = p.NextAttemptAt
		if p.Retryable {
			s.Status = StatusRetrying
		} else {
			s.Status = StatusFailed
		}
	case Retried:
		s.Status = StatusInProgress
		s.NextAttemptAt = time.Time{}
	case Acknowledged:
		s.Status = StatusAcknowledged
	case Replayed:
		// A replay starts the delivery afresh: whatever the destination
		// held for the failed attempt (an S3 multipart upload, say) may
		// have expired since.
		s.Status = StatusInProgress
		s.Attempt = 0
		s.NextAttemptAt = time.Time{}
		s.LastFailure = nil
		s.Started = false
		s.Ref = ""
		s.ChunksSent = 0
		s.BytesSent = 0
		s.HeldFrom = 0
		s.HeldBytes = 0
	case Cancelled:
		s.Status = StatusCancelled
	}
	return s
}

// Fold applies events in order to s.
func Fold(s State, events ...Event) State {
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}
