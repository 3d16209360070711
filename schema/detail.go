package schema

import (
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/domain"
)

// Detail is the detail of every EventBridge event ferry publishes. Its JSON
// Schema is schema/transfer-event.schema.json; change both together.
type Detail struct {
	TransferID string `json:"transferId"`
	Seq        int    `json:"seq"`
	EventID    string `json:"eventId"` // "<transferId>/<seq>": subscribers dedupe on it
	Type       string `json:"type"`
	Status     string `json:"status"`
	Route      string `json:"route,omitempty"`
	Sender     string `json:"sender,omitempty"`
	Recipient  string `json:"recipient,omitempty"`
	Workflow   string `json:"workflow,omitempty"`
	Filename   string `json:"filename,omitempty"`
	// CorrelationID is shared by transfers that belong together (the
	// attachments of one email).
	CorrelationID string       `json:"correlationId,omitempty"`
	Bytes         int64        `json:"bytes"`
	Chunks        int          `json:"chunks"`
	ChunksSent    int          `json:"chunksSent"`
	Chunk         int          `json:"chunk,omitempty"`
	Attempt       int          `json:"attempt,omitempty"`
	Location      string       `json:"location,omitempty"`
	Error         *DetailError `json:"error,omitempty"`
	NextAttemptAt *time.Time   `json:"nextAttemptAt,omitempty"`
	Actor         string       `json:"actor,omitempty"`
	OccurredAt    time.Time    `json:"occurredAt"`
}

// DetailError describes a failure in a Transfer Failed event.
type DetailError struct {
	Kind      string `json:"kind"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// DetailType returns the EventBridge detail type of an event type:
// "Transfer " and the type's words ("ChunkSent" → "Transfer Chunk Sent").
func DetailType(t domain.EventType) string {
	var b strings.Builder
	b.WriteString("Transfer")
	for i, r := range string(t) {
		if i == 0 || unicode.IsUpper(r) {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// NewDetail describes event e of a transfer whose state after e is st.
func NewDetail(e domain.Event, st domain.State) Detail {
	r := st.Request
	d := Detail{
		TransferID:    e.TransferID,
		Seq:           e.Seq,
		EventID:       EventID(e.TransferID, e.Seq),
		Type:          string(e.Type()),
		Status:        string(st.Status),
		Route:         r.Route,
		Sender:        r.Sender,
		Recipient:     r.Recipient,
		Workflow:      r.Workflow,
		Filename:      r.Filename,
		CorrelationID: r.CorrelationID,
		Bytes:         st.Size(),
		Chunks:        r.Chunks,
		ChunksSent:    st.ChunksSent,
		Attempt:       st.Attempt,
		Location:      st.Location,
		OccurredAt:    e.At.UTC(),
	}
	switch p := e.Payload.(type) {
	case domain.ChunkSent:
		d.Chunk = p.Index
	case domain.Failed:
		d.Error = &DetailError{Kind: string(p.Kind), Code: p.Code, Message: p.Message, Retryable: p.Retryable}
		d.Attempt = p.Attempt
		if !p.NextAttemptAt.IsZero() {
			t := p.NextAttemptAt.UTC()
			d.NextAttemptAt = &t
		}
	case domain.Retried:
		d.Attempt = p.Attempt // the attempt now beginning, as the event says
	case domain.Replayed:
		d.Actor = p.Actor
	case domain.Cancelled:
		d.Actor = p.Actor
	}
	return d
}

// EventID is the id subscribers dedupe on: "<transferId>/<seq>".
func EventID(transferID string, seq int) string {
	return transferID + "/" + strconv.Itoa(seq)
}
