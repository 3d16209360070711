package domain

import (
	"fmt"
	"math"
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
		{"source-chunked started: chunk 1, length unknown", hMESHStarted, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1, Offset: -1, Length: -1}}},
		{"source-chunked sending: chunk 2, length unknown", hMESHSending, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 2, Offset: -1, Length: -1}}},
		{"source-chunked holding chunks 1-2: chunk 3", hMESHHolding, Action{Kind: ActSendChunk, Chunk: Chunk{Index: 3, Offset: -1, Length: -1}}},
		{"source-chunked all chunks sent: complete", hMESHAllSent, Action{Kind: ActComplete}},
		{"delivered: acknowledge the source", hAckingSource, Action{Kind: ActAcknowledge}},
		{"delivered: acknowledge the source before awaiting the far end's", with([]Payload{func() Requested { r := reqMESH; r.ExpectAck = true; return r }()}, hAckingSource[1:]...), Action{Kind: ActAcknowledge}},
		{"delivered planned transfer: acknowledge the source", []Payload{func() Requested { r := req3; r.AckSource = true; return r }(), started, sent(1), sent(2), sent(3), delivered}, Action{Kind: ActAcknowledge}},
		{"source acknowledged", hSourceAcked, Action{Kind: ActNone}},
		{"source-chunked delivered without ack", hMESHDelivered, Action{Kind: ActNone}},
		{"failed after delivery", hNonDelivered, Action{Kind: ActNone}},
		{"cancelled while acknowledging the source", with(hAckingSource, Cancelled{Actor: "ops"}), Action{Kind: ActNone}},
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
	want := map[ActionKind]string{
		ActNone: "none", ActBegin: "begin", ActSendChunk: "send-chunk", ActComplete: "complete", ActWaitRetry: "wait-retry",
		ActAwaitAck: "await-ack", ActAcknowledge: "acknowledge",
		ActAcknowledge + 1: "unknown", 100: "unknown", -1: "unknown", math.MinInt: "unknown", math.MaxInt: "unknown",
	}
	for k, w := range want {
		if got := k.String(); got != w {
			t.Errorf("%d.String() = %q, want %q", int(k), got, w)
		}
	}
	if got := fmt.Sprint(ActAcknowledge); got != "acknowledge" {
		t.Errorf("fmt.Sprint(ActAcknowledge) = %q, want acknowledge", got)
	}
}

// TestNextDeliveredAcks pins how a delivered transfer's acknowledgements
// decide its next action and whether it has finished.
func TestNextDeliveredAcks(t *testing.T) {
	for _, tc := range []struct {
		expectAck, ackSource bool
		want                 ActionKind
	}{
		{false, false, ActNone},
		{true, false, ActAwaitAck},
		{false, true, ActAcknowledge},
		{true, true, ActAcknowledge}, // the source first; its acknowledgement ends the transfer
	} {
		for _, r := range []Requested{req3, reqMESH} {
			r.ExpectAck, r.AckSource = tc.expectAck, tc.ackSource
			h := []Payload{r, started}
			for i := 1; i <= r.Chunks; i++ {
				if r.SourceChunked() {
					h = append(h, meshSent(i))
				} else {
					h = append(h, sent(i))
				}
			}
			s := Fold(State{}, history(append(h, delivered)...)...)
			name := fmt.Sprintf("expectAck=%t ackSource=%t source-chunked=%t", tc.expectAck, tc.ackSource, r.SourceChunked())
			if got := Next(s).Kind; got != tc.want {
				t.Errorf("%s: Next = %v, want %v", name, got, tc.want)
			}
			if got := s.Terminal(); got != (tc.want == ActNone) {
				t.Errorf("%s: Terminal = %t, want %t", name, got, tc.want == ActNone)
			}
			if tc.want == ActNone {
				continue
			}
			// The handler does what Next says, then issues Acknowledge.
			events, err := Decide(s, Acknowledge{By: "ferry"}, t0)
			if err != nil {
				t.Fatalf("%s: Acknowledge: %v", name, err)
			}
			if s = Fold(s, events...); s.Status != StatusAcknowledged || !s.Terminal() || Next(s).Kind != ActNone {
				t.Errorf("%s: after Acknowledge %s terminal=%t next=%v", name, s.Status, s.Terminal(), Next(s).Kind)
			}
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

// TestNextAckByRecipient: a transfer whose recipient acknowledges it
// through the API waits, delivered, with nothing to do (nothing polls),
// yet is not finished: the recipient's Acknowledge is accepted.
func TestNextAckByRecipient(t *testing.T) {
	r := req3
	r.ExpectAck, r.AckByRecipient = true, true
	s := Fold(State{}, history(r, started, sent(1), sent(2), sent(3), delivered)...)
	if got := Next(s).Kind; got != ActNone || s.Terminal() {
		t.Fatalf("delivered: Next = %v, terminal %t; want nothing to do, not terminal", got, s.Terminal())
	}
	events, err := Decide(s, Acknowledge{By: "partner-a", Ref: "r1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if s = Fold(s, events...); s.Status != StatusAcknowledged {
		t.Errorf("after the recipient's Acknowledge: %s", s.Status)
	}
}
