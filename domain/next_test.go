package domain

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history []Payload
		want    Action
	}{
		{"new", hNew, Action{Kind: ActNone}},
		{"requested: prepare the destination", hRequested, Action{Kind: ActBegin}},
		{"started: send chunk 1", hStarted, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1, Offset: 0, Length: 10}}},
		{"sending: send chunk 2", hSending, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 2, Offset: 10, Length: 10}}},
		{"sending: short last chunk", []Payload{req3, started, sent(1), sent(2)}, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 3, Offset: 20, Length: 5}}},
		{"empty file: one empty chunk", []Payload{func() Requested { r := req3; r.Size, r.Chunks = 0, 1; return r }(), started}, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1}}},
		{"all chunks sent: complete", hAllSent, Action{Kind: ActComplete}},
		{"retrying: wait", hRetrying, Action{Kind: ActWaitRetry, At: retryWait.NextAttemptAt}},
		{"retried: resume", append(append([]Payload(nil), hRetrying...), Retried{Attempt: 2}), Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1, Offset: 0, Length: 10}}},
		{"failed before start, retried: begin again", []Payload{req3, retryWait, Retried{Attempt: 2}}, Action{Kind: ActBegin}},
		{"replayed: begin again", hReplayed, Action{Kind: ActBegin}},
		{"replayed and started: chunk 1 again", hReplayedStarted, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1, Offset: 0, Length: 10}}},
		{"delivered", hDelivered, Action{Kind: ActNone}},
		{"delivered awaiting ack", hAwaitingAck, Action{Kind: ActAwaitAck}},
		{"acknowledged", hAcknowledged, Action{Kind: ActNone}},
		{"failed", hFailed, Action{Kind: ActNone}},
		{"rejected", hRejected, Action{Kind: ActNone}},
		{"rejected after routing", hRejectedLate, Action{Kind: ActNone}},
		{"cancelled", hCancelled, Action{Kind: ActNone}},
		{"cancelled while awaiting ack", with(hAwaitingAck, Cancelled{Actor: "ops"}), Action{Kind: ActNone}},
		{"cancelled while retrying", append(append([]Payload(nil), hRetrying...), Cancelled{Actor: "ops"}), Action{Kind: ActNone}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Next(Fold(State{}, history(tc.history...)...))
			if got != tc.want {
				t.Errorf("Next = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestNextCoversEveryStatus makes sure a new status cannot be added without
// deciding what Next does with it.
func TestNextCoversEveryStatus(t *testing.T) {
	covered := map[Status]bool{}
	for _, h := range [][]Payload{hRequested, hRetrying, hDelivered, hAcknowledged, hFailed, hCancelled} {
		covered[Fold(State{}, history(h...)...).Status] = true
	}
	for _, s := range Statuses {
		if !covered[s] {
			t.Errorf("status %s has no Next test", s)
		}
	}
	if len(Statuses) != len(covered) {
		t.Errorf("Statuses = %v, tests cover %v", Statuses, covered)
	}
}

func TestActionKindString(t *testing.T) {
	want := map[ActionKind]string{ActNone: "none", ActBegin: "begin", ActSendChunk: "send-chunk", ActComplete: "complete", ActWaitRetry: "wait-retry", ActAwaitAck: "await-ack"}
	for k, w := range want {
		if got := k.String(); got != w {
			t.Errorf("%d.String() = %q, want %q", int(k), got, w)
		}
	}
}

// TestNextWaitRetryIsTheRetryTime checks that the time Next says to wait until
// is exactly when Decide starts accepting Retry.
func TestNextWaitRetryIsTheRetryTime(t *testing.T) {
	s := Fold(State{}, history(hRetrying...)...)
	a := Next(s)
	if _, err := Decide(s, Retry{}, a.At.Add(-time.Nanosecond)); err == nil {
		t.Error("Retry accepted before Next's time")
	}
	if _, err := Decide(s, Retry{}, a.At); err != nil {
		t.Errorf("Retry at Next's time: %v", err)
	}
}
