package domain

import "time"

// ActionKind names what a handler should do next for a transfer.
type ActionKind int

// The actions.
const (
	ActNone        ActionKind = iota // nothing to do: terminal, or waiting on someone else
	ActBegin                         // prepare the destination, then Start
	ActSendChunk                     // send Action.Chunk, then RecordChunk
	ActComplete                      // finish the delivery, then Complete
	ActWaitRetry                     // wait until Action.At, then Retry
	ActAwaitAck                      // delivered; wait for the far end's acknowledgement
	ActAcknowledge                   // delivered; acknowledge the source, then Acknowledge
)

func (k ActionKind) String() string {
	names := [...]string{"none", "begin", "send-chunk", "complete", "wait-retry", "await-ack", "acknowledge"}
	if int(k) < 0 || int(k) >= len(names) {
		return "unknown"
	}
	return names[k]
}

// Action is the next step for a transfer.
type Action struct {
	Kind  ActionKind
	Chunk Chunk     // for ActSendChunk
	At    time.Time // for ActWaitRetry
}

// Next tells a handler what to do with a transfer in state s.
func Next(s State) Action {
	switch s.Status {
	case StatusInProgress:
		switch {
		case !s.Started:
			return Action{Kind: ActBegin}
		case s.ChunksSent < s.Request.Chunks:
			return Action{Kind: ActSendChunk, Chunk: s.Request.Chunk(s.ChunksSent + 1)}
		default:
			return Action{Kind: ActComplete}
		}
	case StatusRetrying:
		return Action{Kind: ActWaitRetry, At: s.NextAttemptAt}
	case StatusDelivered:
		if s.Request.AckSource {
			return Action{Kind: ActAcknowledge}
		}
		if s.Request.ExpectAck && !s.Request.AckByRecipient {
			return Action{Kind: ActAwaitAck}
		}
	}
	return Action{Kind: ActNone}
}
