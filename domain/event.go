package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventType names an event. The names are stable: they are stored, streamed
// and published, and readers in the wild depend on them.
type EventType string

// The transfer's events.
const (
	// TypeRequested: a transfer exists and says what it must do.
	TypeRequested EventType = "Requested"
	// TypeStarted: the destination is ready to take chunks (an S3 multipart
	// upload was created); carries the remote reference later steps need.
	TypeStarted EventType = "Started"
	// TypeChunkSent: chunk n reached the destination.
	TypeChunkSent EventType = "ChunkSent"
	// TypeDelivered: the destination holds the whole file.
	TypeDelivered EventType = "Delivered"
	// TypeFailed: an attempt failed; when retryable it says when to try again.
	TypeFailed EventType = "Failed"
	// TypeRetried: the wait after a retryable failure is over; work resumes.
	TypeRetried EventType = "Retried"
	// TypeAcknowledged: the far end confirmed receipt.
	TypeAcknowledged EventType = "Acknowledged"
	// TypeReplayed: an operator restarted a transfer that had failed for good.
	TypeReplayed EventType = "Replayed"
	// TypeCancelled: an operator stopped a transfer.
	TypeCancelled EventType = "Cancelled"
)

// Payload is the body of an event; its concrete type decides the EventType.
type Payload interface {
	EventType() EventType
}

// Event is one step in a transfer's history. Seq counts from 1 without gaps.
type Event struct {
	TransferID string
	Seq        int
	At         time.Time
	Payload    Payload
}

// Type returns the event's type.
func (e Event) Type() EventType { return e.Payload.EventType() }

// Source says where a transfer's bytes come from.
type Source struct {
	Kind      string `json:"kind"` // "s3" or "mesh"
	Bucket    string `json:"bucket,omitempty"`
	Key       string `json:"key,omitempty"`
	VersionID string `json:"versionId,omitempty"`
	ETag      string `json:"etag,omitempty"`
	// Mailbox and MessageID name a message in a MESH inbox.
	Mailbox   string `json:"mailbox,omitempty"`
	MessageID string `json:"messageId,omitempty"`
}

// Requested is the first event of every transfer.
type Requested struct {
	Source      Source      `json:"source"`
	Route       string      `json:"route,omitempty"`
	Destination Destination `json:"destination"`
	Sender      string      `json:"sender,omitempty"`
	Recipient   string      `json:"recipient,omitempty"`
	Workflow    string      `json:"workflow,omitempty"`
	Filename    string      `json:"filename,omitempty"`
	Size        int64       `json:"size"`
	SHA256      string      `json:"sha256,omitempty"`
	ChunkSize   int64       `json:"chunkSize"`
	Chunks      int         `json:"chunks"`
	// ChunkSizeRaisedFrom is the route's chunk size when the plan raised it
	// (PlanChunkSize) to keep within MaxChunks chunks; 0 when it did not.
	ChunkSizeRaisedFrom int64       `json:"chunkSizeRaisedFrom,omitempty"`
	Retry               RetryPolicy `json:"retry,omitzero"`
	// ExpectAck: after delivery, wait for the far end to acknowledge
	// receipt (MESH tracking). AckSource: after delivery, acknowledge the
	// source (a MESH inbox message is acknowledged once the file is safe).
	ExpectAck bool `json:"expectAck,omitempty"`
	AckSource bool `json:"ackSource,omitempty"`
	// AckByRecipient: the acknowledgement ExpectAck waits for comes from
	// the recipient itself, through the HTTP API (a route's expectAck on
	// a destination without tracking); nothing polls for it.
	AckByRecipient bool `json:"ackByRecipient,omitempty"`
	// Compress asks the transport to compress each chunk (MESH gzip).
	Compress bool              `json:"compress,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// CorrelationID (added in payload version 1 with omitempty; absent
	// means none) is shared by transfers that belong together: the
	// attachments of one email, or the uploads that carried the same
	// correlation-id metadata.
	CorrelationID string `json:"correlationId,omitempty"`
}

// SourceChunked reports whether the source decides the chunks' lengths
// (a MESH message arrives in the chunks its sender chose): the plan then
// knows how many chunks there are, not how long each is.
func (r Requested) SourceChunked() bool { return r.ChunkSize == 0 }

// Chunk returns chunk i (1-based) of the requested payload. For a
// source-chunked transfer only the index is known; Offset and Length are -1.
func (r Requested) Chunk(i int) Chunk {
	if r.SourceChunked() {
		return Chunk{Index: i, Offset: -1, Length: -1}
	}
	return ChunkAt(r.Size, r.ChunkSize, i)
}

// Started records that the destination is ready for chunks.
type Started struct {
	Ref string `json:"ref,omitempty"` // e.g. the S3 multipart upload id
}

// ChunkSent records that chunk Index reached the destination.
//
// Held (added in payload version 1 with omitempty; absent means false)
// says the destination took the chunk from the source but has not stored
// it yet: it will store it together with the chunks that follow, the
// first of them not held. Only a source-chunked transfer's chunks other
// than the last may be held, and a run of held chunks stays under
// MaxHeldBytes. An S3 destination holds a MESH message's chunks smaller
// than S3's smallest multipart part, re-reading them from the source
// (which keeps the message until it is acknowledged) when it stores the
// part they belong to.
type ChunkSent struct {
	Index int    `json:"index"`
	Bytes int64  `json:"bytes"`
	Ref   string `json:"ref,omitempty"` // e.g. the part's ETag
	Held  bool   `json:"held,omitempty"`
}

// Delivered records that the destination holds the whole file.
type Delivered struct {
	Ref      string `json:"ref,omitempty"`
	Location string `json:"location"`
}

// Failed records a failed attempt. Retryable is the decision, taken from
// the error kind and the route's retry policy: when true, NextAttemptAt says
// when work resumes; when false the transfer has failed for good.
type Failed struct {
	Kind          Kind      `json:"kind"`
	Code          string    `json:"code,omitempty"`
	Message       string    `json:"message"`
	Retryable     bool      `json:"retryable"`
	Attempt       int       `json:"attempt"`
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
}

// Retried records that a retry began after a retryable failure.
type Retried struct {
	Attempt int `json:"attempt"`
}

// Acknowledged records the far end's confirmation of receipt.
type Acknowledged struct {
	By  string `json:"by,omitempty"`
	Ref string `json:"ref,omitempty"`
}

// Replayed records an operator restarting a failed transfer.
type Replayed struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// Cancelled records an operator stopping a transfer.
type Cancelled struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// EventType implements Payload.
func (Requested) EventType() EventType { return TypeRequested }

// EventType implements Payload.
func (Started) EventType() EventType { return TypeStarted }

// EventType implements Payload.
func (ChunkSent) EventType() EventType { return TypeChunkSent }

// EventType implements Payload.
func (Delivered) EventType() EventType { return TypeDelivered }

// EventType implements Payload.
func (Failed) EventType() EventType { return TypeFailed }

// EventType implements Payload.
func (Retried) EventType() EventType { return TypeRetried }

// EventType implements Payload.
func (Acknowledged) EventType() EventType { return TypeAcknowledged }

// EventType implements Payload.
func (Replayed) EventType() EventType { return TypeReplayed }

// EventType implements Payload.
func (Cancelled) EventType() EventType { return TypeCancelled }

// PayloadVersion is the schema version written with every payload. Readers
// accept every version up to it.
const PayloadVersion = 1

// MarshalPayload encodes p as versioned JSON: {"v":1, ...fields}.
func MarshalPayload(p Payload) ([]byte, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, Errorf(KindInvalid, "%T payload does not encode as a JSON object", p)
	}
	if string(body) == "{}" {
		return []byte(fmt.Sprintf(`{"v":%d}`, PayloadVersion)), nil
	}
	return append([]byte(fmt.Sprintf(`{"v":%d,`, PayloadVersion)), body[1:]...), nil
}

// UnmarshalPayload decodes a payload written by MarshalPayload (any version
// up to PayloadVersion) for an event of type t.
func UnmarshalPayload(t EventType, data []byte) (Payload, error) {
	var v struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, Errorf(KindInvalid, "%s payload: %v", t, err)
	}
	if v.V < 1 || v.V > PayloadVersion {
		return nil, Errorf(KindInvalid, "%s payload: unsupported version %d", t, v.V)
	}
	var p Payload
	var err error
	switch t {
	case TypeRequested:
		p, err = decode[Requested](data)
	case TypeStarted:
		p, err = decode[Started](data)
	case TypeChunkSent:
		p, err = decode[ChunkSent](data)
	case TypeDelivered:
		p, err = decode[Delivered](data)
	case TypeFailed:
		p, err = decode[Failed](data)
	case TypeRetried:
		p, err = decode[Retried](data)
	case TypeAcknowledged:
		p, err = decode[Acknowledged](data)
	case TypeReplayed:
		p, err = decode[Replayed](data)
	case TypeCancelled:
		p, err = decode[Cancelled](data)
	default:
		return nil, Errorf(KindInvalid, "unknown event type %q", t)
	}
	if err != nil {
		return nil, Errorf(KindInvalid, "%s payload: %v", t, err)
	}
	return p, nil
}

func decode[T Payload](data []byte) (Payload, error) {
	var p T
	err := json.Unmarshal(data, &p)
	return p, err
}
