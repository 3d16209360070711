package domain

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

// t0 is the tests' clock. Decide never reads the clock, so neither do its tests.
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

const testID = "01JNZ0TESTTRANSFER00000000"

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// Fixtures. req3 is a planned request of 25 bytes in 10-byte chunks
// (10, 10, 5 bytes) with the default retry policy; reqAck is the same with an
// acknowledgement expected.
var (
	req3 = Requested{
		Source:      Source{Kind: "s3", Bucket: "inbound", Key: "outbound/a.csv", VersionID: "v1"},
		Route:       "r1",
		Destination: Destination{Type: "null"},
		Sender:      "X26ABC1",
		Recipient:   "X26ABC2",
		Filename:    "a.csv",
		Size:        25,
		ChunkSize:   10,
		Chunks:      3,
	}
	reqAck = func() Requested { r := req3; r.ExpectAck = true; return r }()
	// reqUnrouted is what intake records for an upload it rejects before
	// routing it (invalid metadata, no route): no route, no destination.
	reqUnrouted = func() Requested { r := req3; r.Route, r.Destination = "", Destination{}; return r }()

	// reqMESH is source-chunked: a MESH message that arrives in three
	// chunks of lengths only the source knows (Size says nothing about
	// them); once delivered, the source message must be acknowledged.
	reqMESH = Requested{
		Source:      Source{Kind: "mesh", Mailbox: "X26OT001", MessageID: "20250301085900000000_IN0001"},
		Route:       "mesh-in",
		Destination: Destination{Type: "null"},
		Sender:      "X26ABC2",
		Recipient:   "X26OT001",
		Workflow:    "WF1",
		Filename:    "m.dat",
		Size:        25,
		ChunkSize:   0,
		Chunks:      3,
		AckSource:   true,
	}

	started   = Started{Ref: "upload-1"}
	delivered = Delivered{Ref: "final-ref", Location: "null://a.csv"}
	// retryWait is the pending retry of the retrying fixture.
	retryWait   = Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 1, NextAttemptAt: at(time.Minute)}
	failedFinal = Failed{Kind: KindUnauthorized, Message: "bad key", Attempt: 1}
)

// meshBytes are the lengths of reqMesh's chunks as the source delivered
// them: any lengths, an empty chunk among them, not summing to Size.
var meshBytes = []int64{7, 0, 1 << 33}

// meshMessageID is what MESH returns with the first chunk of the message
// ferry sends.
const meshMessageID = "20250301090000000000_OUT001"

// meshSent returns the ChunkSent event for chunk i of reqMesh. MESH returns
// the message id with chunk 1; later chunks carry their own refs.
func meshSent(i int) ChunkSent {
	ref := fmt.Sprintf("chunk-%d", i)
	if i == 1 {
		ref = meshMessageID
	}
	return ChunkSent{Index: i, Bytes: meshBytes[i-1], Ref: ref}
}

// sent returns the ChunkSent event for chunk i of req3.
func sent(i int) ChunkSent {
	return ChunkSent{Index: i, Bytes: req3.Chunk(i).Length, Ref: fmt.Sprintf("etag-%d", i)}
}

// with returns a copy of history h with more payloads appended.
func with(h []Payload, more ...Payload) []Payload {
	return append(append([]Payload(nil), h...), more...)
}

// history numbers payloads as the events of transfer testID: Seq from 1, one
// second apart from t0.
func history(payloads ...Payload) []Event {
	events := make([]Event, len(payloads))
	for i, p := range payloads {
		events[i] = Event{TransferID: testID, Seq: i + 1, At: at(time.Duration(i) * time.Second), Payload: p}
	}
	return events
}

// spec is one given/when/then case.
type spec struct {
	t     *testing.T
	state State
	cmd   Command
	now   time.Time
}

// given folds payloads (numbered by history) into the state a command meets.
// No payloads means a transfer that does not exist yet.
func given(t *testing.T, payloads ...Payload) spec {
	t.Helper()
	return spec{t: t, state: Fold(State{}, history(payloads...)...)}
}

// when sets the command and the time it is decided at.
func (s spec) when(c Command, now time.Time) spec {
	s.cmd, s.now = c, now
	return s
}

// then asserts that the command is accepted and yields exactly want, as events
// numbered after the given history, for the same transfer, stamped now. It
// returns the state after them.
func (s spec) then(want ...Payload) State {
	s.t.Helper()
	got, err := Decide(s.state, s.cmd, s.now)
	if err != nil {
		s.t.Fatalf("Decide(%#v) error = %v, want events %v", s.cmd, err, payloadTypes(want))
	}
	if len(got) != len(want) {
		s.t.Fatalf("Decide(%#v) = %d events %v, want %v", s.cmd, len(got), eventTypes(got), payloadTypes(want))
	}
	for i, e := range got {
		if e.Seq != s.state.Version+1+i {
			s.t.Errorf("event %d: Seq = %d, want %d", i, e.Seq, s.state.Version+1+i)
		}
		if e.TransferID != s.state.ID {
			s.t.Errorf("event %d: TransferID = %q, want %q", i, e.TransferID, s.state.ID)
		}
		if !e.At.Equal(s.now) {
			s.t.Errorf("event %d: At = %v, want %v", i, e.At, s.now)
		}
		if !reflect.DeepEqual(e.Payload, want[i]) {
			s.t.Errorf("event %d payload:\n got %#v\nwant %#v", i, e.Payload, want[i])
		}
	}
	return Fold(s.state, got...)
}

// thenError asserts that the command is refused with an *Error of kind and
// produces no events.
func (s spec) thenError(kind Kind) {
	s.t.Helper()
	got, err := Decide(s.state, s.cmd, s.now)
	if err == nil {
		s.t.Fatalf("Decide(%#v) accepted with %v, want a %s error", s.cmd, eventTypes(got), kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		s.t.Fatalf("Decide(%#v) error %v (%T) is not an *Error", s.cmd, err, err)
	}
	if e.Kind != kind {
		s.t.Errorf("Decide(%#v) error kind = %s (%v), want %s", s.cmd, e.Kind, err, kind)
	}
	if got != nil {
		s.t.Errorf("Decide(%#v) returned events %v with its error", s.cmd, eventTypes(got))
	}
}

func payloadTypes(ps []Payload) []EventType {
	ts := make([]EventType, len(ps))
	for i, p := range ps {
		ts[i] = p.EventType()
	}
	return ts
}

func eventTypes(es []Event) []EventType {
	ts := make([]EventType, len(es))
	for i, e := range es {
		ts[i] = e.Type()
	}
	return ts
}

// bogus is a command Decide has never heard of.
type bogus struct{}

func (bogus) command() {}

// The states a transfer can be in, as histories.
var (
	hNew          = []Payload{}
	hRequested    = []Payload{req3}
	hStarted      = []Payload{req3, started}
	hSending      = []Payload{req3, started, sent(1)}
	hAllSent      = []Payload{req3, started, sent(1), sent(2), sent(3)}
	hRetrying     = []Payload{req3, started, retryWait}
	hRetryBegin   = []Payload{req3, retryWait} // preparing the destination failed
	hDelivered    = []Payload{req3, started, sent(1), sent(2), sent(3), delivered}
	hAwaitingAck  = []Payload{reqAck, started, sent(1), sent(2), sent(3), delivered}
	hAcknowledged = []Payload{reqAck, started, sent(1), sent(2), sent(3), delivered, Acknowledged{By: "X26ABC2"}}
	hFailed       = []Payload{req3, started, failedFinal}
	// hRejected was rejected before routing, so it has no destination;
	// hRejectedLate was rejected after routing (missing metadata).
	hRejected     = []Payload{reqUnrouted, Failed{Kind: KindInvalid, Code: "NO_ROUTE", Message: "no route", Attempt: 1}}
	hRejectedLate = []Payload{req3, Failed{Kind: KindInvalid, Code: "MISSING_METADATA", Message: "missing metadata", Attempt: 1}}
	hCancelled    = []Payload{req3, Cancelled{Actor: "ops"}}
	// hReplayed failed for good after chunk 1; the replay starts afresh.
	hReplayed        = []Payload{req3, started, sent(1), failedFinal, Replayed{Actor: "ops"}}
	hReplayedStarted = with(hReplayed, Started{Ref: "upload-2"})
	// hNonDelivered was delivered, then the far end reported it undelivered
	// (a MESH non-delivery report): final, although the kind is retryable.
	hNonDelivered = with(hAwaitingAck, ndr)

	// Source-chunked (MESH) histories. MESH's Start returns no ref.
	hMESHRequested = []Payload{reqMESH}
	hMESHStarted   = []Payload{reqMESH, Started{}}
	hMESHSending   = []Payload{reqMESH, Started{}, meshSent(1)}
	hMESHAllSent   = []Payload{reqMESH, Started{}, meshSent(1), meshSent(2), meshSent(3)}
	// hMESHHolding has chunks 1 and 2 held by the destination (an S3
	// upload gathering small MESH chunks into one part).
	hMESHHolding = []Payload{reqMESH, Started{}, ChunkSent{Index: 1, Bytes: 7, Held: true}, ChunkSent{Index: 2, Bytes: 0, Held: true}}
	// hAckingSource is delivered and must acknowledge its source.
	hAckingSource = with(hMESHAllSent, Delivered{Location: "null://m.dat"})
	hSourceAcked  = with(hAckingSource, Acknowledged{By: "ferry"})
	// hMESHDelivered is source-chunked with no acknowledgement to make or
	// wait for: delivered is the end.
	hMESHDelivered = func() []Payload {
		r := reqMESH
		r.AckSource = false
		return []Payload{r, Started{}, meshSent(1), meshSent(2), meshSent(3), Delivered{Location: "null://m.dat"}}
	}()
)

// ndr is a non-delivery report turned into a failure.
var ndr = Failed{Kind: KindUnavailable, Code: "NDR", Message: "recipient mailbox inactive", Attempt: 1}

// matrixCommands are well-formed commands of every type. RecordChunk names
// the next chunk with its planned length, so that only the state decides.
var matrixCommands = []struct {
	name string
	cmd  func(State) Command
}{
	{"Request", func(State) Command { return Request{Requested: req3} }},
	{"Reject", func(State) Command { return Reject{Requested: req3, Reason: Errorf(KindInvalid, "no route")} }},
	{"Start", func(State) Command { return Start{Ref: "u"} }},
	{"RecordChunk", func(s State) Command {
		i := s.ChunksSent + 1
		if s.Request.SourceChunked() {
			return RecordChunk{Index: i, Bytes: 7}
		}
		return RecordChunk{Index: i, Bytes: s.Request.Chunk(i).Length}
	}},
	{"Complete", func(State) Command { return Complete{Location: "null://a"} }},
	{"Fail", func(State) Command { return Fail{Err: Errorf(KindUnavailable, "down")} }},
	{"Retry", func(State) Command { return Retry{} }},
	{"Acknowledge", func(State) Command { return Acknowledge{By: "X26ABC2"} }},
	{"Replay", func(State) Command { return Replay{Actor: "ops"} }},
	{"Cancel", func(State) Command { return Cancel{Actor: "ops"} }},
	{"bogus", func(State) Command { return bogus{} }},
	{"nil", func(State) Command { return nil }},
}

// TestDecideMatrix runs every command against every state. Commands not listed
// as accepted must be refused: KindNotFound on a new transfer, KindConflict
// otherwise (an unknown command on a live transfer is KindInvalid).
func TestDecideMatrix(t *testing.T) {
	states := []struct {
		name     string
		history  []Payload
		accepted map[string][]EventType
	}{
		{"new", hNew, map[string][]EventType{"Request": {TypeRequested}, "Reject": {TypeRequested, TypeFailed}}},
		{"requested", hRequested, map[string][]EventType{"Start": {TypeStarted}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"started", hStarted, map[string][]EventType{"RecordChunk": {TypeChunkSent}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"sending", hSending, map[string][]EventType{"RecordChunk": {TypeChunkSent}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"all chunks sent", hAllSent, map[string][]EventType{"Complete": {TypeDelivered}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"retrying", hRetrying, map[string][]EventType{"Retry": {TypeRetried}, "Cancel": {TypeCancelled}}},
		{"retrying before start", hRetryBegin, map[string][]EventType{"Retry": {TypeRetried}, "Cancel": {TypeCancelled}}},
		{"replayed", hReplayed, map[string][]EventType{"Start": {TypeStarted}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"replayed and started", hReplayedStarted, map[string][]EventType{"RecordChunk": {TypeChunkSent}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"delivered", hDelivered, nil},
		{"delivered awaiting ack", hAwaitingAck, map[string][]EventType{"Acknowledge": {TypeAcknowledged}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"acknowledged", hAcknowledged, nil},
		{"failed after delivery", hNonDelivered, map[string][]EventType{"Replay": {TypeReplayed}, "Cancel": {TypeCancelled}}},
		{"source-chunked requested", hMESHRequested, map[string][]EventType{"Start": {TypeStarted}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"source-chunked started", hMESHStarted, map[string][]EventType{"RecordChunk": {TypeChunkSent}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"source-chunked sending", hMESHSending, map[string][]EventType{"RecordChunk": {TypeChunkSent}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"source-chunked holding", hMESHHolding, map[string][]EventType{"RecordChunk": {TypeChunkSent}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"source-chunked all chunks sent", hMESHAllSent, map[string][]EventType{"Complete": {TypeDelivered}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"delivered acknowledging the source", hAckingSource, map[string][]EventType{"Acknowledge": {TypeAcknowledged}, "Fail": {TypeFailed}, "Cancel": {TypeCancelled}}},
		{"source acknowledged", hSourceAcked, nil},
		{"source-chunked delivered without ack", hMESHDelivered, nil},
		{"failed", hFailed, map[string][]EventType{"Replay": {TypeReplayed}, "Cancel": {TypeCancelled}}},
		{"rejected before routing", hRejected, map[string][]EventType{"Cancel": {TypeCancelled}}},
		{"rejected after routing", hRejectedLate, map[string][]EventType{"Replay": {TypeReplayed}, "Cancel": {TypeCancelled}}},
		{"cancelled", hCancelled, nil},
	}
	now := at(time.Hour) // late enough for any retry
	for _, st := range states {
		for _, c := range matrixCommands {
			t.Run(st.name+"/"+c.name, func(t *testing.T) {
				s := Fold(State{}, history(st.history...)...)
				got, err := Decide(s, c.cmd(s), now)
				want, ok := st.accepted[c.name]
				if ok {
					if err != nil {
						t.Fatalf("refused: %v; want %v", err, want)
					}
					if !reflect.DeepEqual(eventTypes(got), want) {
						t.Fatalf("events = %v, want %v", eventTypes(got), want)
					}
					return
				}
				wantKind := KindConflict
				switch {
				case st.name == "new":
					wantKind = KindNotFound
				case !s.Terminal() && (c.name == "bogus" || c.name == "nil"):
					wantKind = KindInvalid
				}
				if err == nil {
					t.Fatalf("accepted with %v, want a %s error", eventTypes(got), wantKind)
				}
				if k := KindOf(err); k != wantKind {
					t.Errorf("error kind = %s (%v), want %s", k, err, wantKind)
				}
				if got != nil {
					t.Errorf("events %v returned with the error", eventTypes(got))
				}
			})
		}
	}
}

func TestDecideRequest(t *testing.T) {
	t.Run("plans chunks from size and chunk size", func(t *testing.T) {
		for _, tc := range []struct {
			size, chunkSize int64
			want            int
		}{
			{25, 10, 3}, {30, 10, 3}, {31, 10, 4}, {1, 10, 1}, {10, 10, 1}, {11, 10, 2},
			{20 * MiB, DefaultChunkSize, 1}, {20*MiB + 1, DefaultChunkSize, 2},
		} {
			t.Run(fmt.Sprintf("%d/%d", tc.size, tc.chunkSize), func(t *testing.T) {
				for _, given_ := range []int{99, 1, 0, -1} { // the caller's count is ignored
					in := req3
					in.Size, in.ChunkSize, in.Chunks = tc.size, tc.chunkSize, given_
					want := in
					want.Chunks = tc.want
					s := given(t).when(Request{Requested: in}, t0).then(want)
					if s.Request.SourceChunked() {
						t.Errorf("a plan with chunk size %d is source-chunked", tc.chunkSize)
					}
				}
			})
		}
	})
	t.Run("empty file has one chunk", func(t *testing.T) {
		in := req3
		in.Size, in.Chunks = 0, 0
		want := in
		want.Chunks = 1
		s := given(t).when(Request{Requested: in}, t0).then(want)
		if s.Status != StatusInProgress || s.Created != t0 || s.Version != 1 {
			t.Errorf("state = %s v%d created %v, want IN_PROGRESS v1 created %v", s.Status, s.Version, s.Created, t0)
		}
	})
	t.Run("source-chunked: the source's chunk count is kept as is", func(t *testing.T) {
		for _, tc := range []struct {
			size   int64
			chunks int
		}{{25, 3}, {0, 1}, {0, 5}, {1, 1000}, {1 << 40, 1}} {
			t.Run(fmt.Sprintf("%d bytes in %d chunks", tc.size, tc.chunks), func(t *testing.T) {
				in := reqMESH
				in.Size, in.Chunks = tc.size, tc.chunks
				s := given(t).when(Request{Requested: in}, t0).then(in)
				if !s.Request.SourceChunked() || s.Request.Chunks != tc.chunks || s.Request.ChunkSize != 0 {
					t.Errorf("planned %d chunks of %d bytes (source-chunked %t), want %d source-chunked",
						s.Request.Chunks, s.Request.ChunkSize, s.Request.SourceChunked(), tc.chunks)
				}
				for i := 1; i <= tc.chunks && i <= 3; i++ {
					if got, want := s.Request.Chunk(i), (Chunk{Index: i, Offset: -1, Length: -1}); got != want {
						t.Errorf("Chunk(%d) = %+v, want %+v: the source decides the lengths", i, got, want)
					}
				}
				s = Fold(State{}, history(s.Request, Started{})...)
				if got, want := Next(s), (Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1, Offset: -1, Length: -1}}); got != want {
					t.Errorf("Next after start = %+v, want %+v", got, want)
				}
			})
		}
	})
	t.Run("keeps everything it was asked", func(t *testing.T) {
		in := reqAck
		in.SHA256 = "abc"
		in.Workflow = "WF1"
		in.Metadata = map[string]string{"subject": "s"}
		in.Retry = RetryPolicy{MaxAttempts: 3, BaseDelay: Duration(time.Second), MaxDelay: Duration(time.Minute)}
		in.Destination = Destination{Type: "s3", Bucket: "out", Prefix: "p/"}
		given(t).when(Request{Requested: in}, t0).then(in)
	})
	t.Run("keeps everything a MESH transfer was asked", func(t *testing.T) {
		in := reqMESH
		in.ExpectAck = true
		in.Compress = true
		in.Metadata = map[string]string{"subject": "s", "localid": "L1"}
		in.Destination = Destination{Type: "mesh"}
		given(t).when(Request{Requested: in}, t0).then(in)
	})
	invalid := []struct {
		name string
		edit func(*Requested)
	}{
		{"negative size", func(r *Requested) { r.Size = -1 }},
		{"zero chunk size without a chunk count", func(r *Requested) { r.ChunkSize, r.Chunks = 0, 0 }},
		{"zero chunk size with a negative chunk count", func(r *Requested) { r.ChunkSize, r.Chunks = 0, -3 }},
		{"negative chunk size", func(r *Requested) { r.ChunkSize = -10 }},
		{"negative chunk size with a chunk count", func(r *Requested) { r.ChunkSize, r.Chunks = -1, 3 }},
		{"negative chunk size without a chunk count", func(r *Requested) { r.ChunkSize, r.Chunks = -1, 0 }},
		{"source-chunked with a negative size", func(r *Requested) { r.ChunkSize, r.Chunks, r.Size = 0, 3, -1 }},
		{"source-chunked without a destination", func(r *Requested) { r.ChunkSize, r.Chunks, r.Destination = 0, 3, Destination{} }},
		{"no destination", func(r *Requested) { r.Destination = Destination{} }},
		{"unknown destination type", func(r *Requested) { r.Destination = Destination{Type: "ftp"} }},
		{"s3 destination without bucket", func(r *Requested) { r.Destination = Destination{Type: "s3"} }},
		{"negative max attempts", func(r *Requested) { r.Retry.MaxAttempts = -1 }},
		{"negative delay", func(r *Requested) { r.Retry.BaseDelay = Duration(-time.Second) }},
	}
	for _, tc := range invalid {
		t.Run(tc.name+" is invalid", func(t *testing.T) {
			in := req3
			tc.edit(&in)
			given(t).when(Request{Requested: in}, t0).thenError(KindInvalid)
		})
	}
	t.Run("existing transfer conflicts", func(t *testing.T) {
		given(t, hRequested...).when(Request{Requested: req3}, t0).thenError(KindConflict)
	})
}

func TestDecideReject(t *testing.T) {
	t.Run("records the request and a final failure at attempt 1", func(t *testing.T) {
		reason := Errorf(KindUnavailable, "no route for %s", "a.csv").WithCode("NO_ROUTE") // even a retryable kind is final
		s := given(t).when(Reject{Requested: req3, Reason: reason}, at(time.Second)).then(
			req3,
			Failed{Kind: KindUnavailable, Code: "NO_ROUTE", Message: "no route for a.csv", Retryable: false, Attempt: 1},
		)
		if s.Status != StatusFailed || !s.Terminal() || s.Version != 2 {
			t.Errorf("state = %s v%d terminal=%t, want FAILED v2 terminal", s.Status, s.Version, s.Terminal())
		}
		if got := Next(s); got.Kind != ActNone {
			t.Errorf("Next = %v, want none", got.Kind)
		}
	})
	t.Run("repairs a plan it cannot trust", func(t *testing.T) {
		for _, bad := range []struct {
			chunkSize int64
			chunks    int
		}{{0, 0}, {-3, 7}, {0, -2}} {
			in := Requested{Source: Source{Kind: "s3", Bucket: "b", Key: "k"}, Size: -5, ChunkSize: bad.chunkSize, Chunks: bad.chunks}
			want := in
			want.Size, want.ChunkSize, want.Chunks = 0, DefaultChunkSize, 1
			given(t).when(Reject{Requested: in, Reason: Errorf(KindInvalid, "bad")}, t0).then(
				want, Failed{Kind: KindInvalid, Message: "bad", Attempt: 1})
		}
	})
	t.Run("message falls back to the wrapped error", func(t *testing.T) {
		reason := &Error{Kind: KindInvalid, Err: errors.New("metadata sender missing")}
		given(t).when(Reject{Requested: req3, Reason: reason}, t0).then(
			req3, Failed{Kind: KindInvalid, Message: "metadata sender missing", Attempt: 1})
	})
	t.Run("needs a reason", func(t *testing.T) {
		given(t).when(Reject{Requested: req3}, t0).thenError(KindInvalid)
	})
	t.Run("existing transfer conflicts", func(t *testing.T) {
		given(t, hStarted...).when(Reject{Requested: req3, Reason: Errorf(KindInvalid, "x")}, t0).thenError(KindConflict)
	})
}

func TestDecideStart(t *testing.T) {
	t.Run("requested transfer starts", func(t *testing.T) {
		s := given(t, hRequested...).when(Start{Ref: "upload-9"}, t0).then(Started{Ref: "upload-9"})
		if !s.Started || s.Ref != "upload-9" || s.Status != StatusInProgress {
			t.Errorf("state started=%t ref=%q status=%s", s.Started, s.Ref, s.Status)
		}
	})
	t.Run("replayed transfer starts again, with the new remote reference", func(t *testing.T) {
		s := given(t, hReplayed...).when(Start{Ref: "upload-2"}, t0).then(Started{Ref: "upload-2"})
		if !s.Started || s.Ref != "upload-2" || s.Status != StatusInProgress || s.ChunksSent != 0 {
			t.Errorf("state started=%t ref=%q status=%s chunks=%d", s.Started, s.Ref, s.Status, s.ChunksSent)
		}
	})
	t.Run("a destination that returns no reference at start (MESH)", func(t *testing.T) {
		s := given(t, hMESHRequested...).when(Start{}, t0).then(Started{})
		if !s.Started || s.Ref != "" || Next(s).Kind != ActSendChunk {
			t.Errorf("state started=%t ref=%q next=%v, want started, no ref, send-chunk", s.Started, s.Ref, Next(s).Kind)
		}
	})
	for name, h := range map[string][]Payload{
		"started": hStarted, "sending": hSending, "retrying": hRetrying, "retrying before start": hRetryBegin, "awaiting ack": hAwaitingAck,
		"replayed and started": hReplayedStarted, "source-chunked started": hMESHStarted, "acknowledging the source": hAckingSource,
	} {
		t.Run("conflicts when "+name, func(t *testing.T) {
			given(t, h...).when(Start{}, t0).thenError(KindConflict)
		})
	}
	t.Run("new transfer is not found", func(t *testing.T) {
		given(t).when(Start{}, t0).thenError(KindNotFound)
	})
}

func TestDecideRecordChunk(t *testing.T) {
	t.Run("chunks in order", func(t *testing.T) {
		s := given(t, hStarted...).when(RecordChunk{Index: 1, Bytes: 10, Ref: "e1"}, t0).then(ChunkSent{Index: 1, Bytes: 10, Ref: "e1"})
		if s.ChunksSent != 1 || s.BytesSent != 10 {
			t.Errorf("after chunk 1: %d chunks, %d bytes; want 1, 10", s.ChunksSent, s.BytesSent)
		}
		given(t, hSending...).when(RecordChunk{Index: 2, Bytes: 10}, t0).then(ChunkSent{Index: 2, Bytes: 10})
		s = given(t, req3, started, sent(1), sent(2)).when(RecordChunk{Index: 3, Bytes: 5}, t0).then(ChunkSent{Index: 3, Bytes: 5})
		if s.ChunksSent != 3 || s.BytesSent != 25 {
			t.Errorf("after chunk 3: %d chunks, %d bytes; want 3, 25", s.ChunksSent, s.BytesSent)
		}
	})
	t.Run("after a replay, from chunk 1 again", func(t *testing.T) {
		s := given(t, hReplayedStarted...).when(RecordChunk{Index: 1, Bytes: 10, Ref: "e1b"}, t0).then(ChunkSent{Index: 1, Bytes: 10, Ref: "e1b"})
		if s.ChunksSent != 1 || s.BytesSent != 10 {
			t.Errorf("after chunk 1 again: %d chunks, %d bytes; want 1, 10", s.ChunksSent, s.BytesSent)
		}
	})
	t.Run("empty file sends one empty chunk", func(t *testing.T) {
		empty := req3
		empty.Size, empty.Chunks = 0, 1
		given(t, empty, started).when(RecordChunk{Index: 1, Bytes: 0}, t0).then(ChunkSent{Index: 1, Bytes: 0})
	})
	t.Run("source-chunked: any length the source gives, summed", func(t *testing.T) {
		r := reqMESH
		r.Chunks = 4
		s := Fold(State{}, history(r, Started{})...)
		var total int64
		for i, n := range []int64{0, 1, 1 << 40, math.MaxInt32} {
			s = spec{t: t, state: s}.when(RecordChunk{Index: i + 1, Bytes: n, Ref: "c"}, t0).then(ChunkSent{Index: i + 1, Bytes: n, Ref: "c"})
			total += n
			if s.ChunksSent != i+1 || s.BytesSent != total {
				t.Errorf("after chunk %d of %d bytes: %d chunks, %d bytes; want %d, %d", i+1, n, s.ChunksSent, s.BytesSent, i+1, total)
			}
		}
		if Next(s).Kind != ActComplete {
			t.Errorf("Next after the source's last chunk = %v, want complete", Next(s).Kind)
		}
	})
	t.Run("source-chunked: held chunks form a run until one is stored", func(t *testing.T) {
		r := reqMESH
		r.Chunks = 5
		s := Fold(State{}, history(r, Started{})...)
		for _, step := range []struct {
			cmd       RecordChunk
			heldFrom  int
			heldBytes int64
		}{
			{RecordChunk{Index: 1, Bytes: MiB, Held: true}, 1, MiB},
			{RecordChunk{Index: 2, Bytes: 0, Held: true}, 1, MiB},
			{RecordChunk{Index: 3, Bytes: MaxHeldBytes - MiB - 1, Held: true}, 1, MaxHeldBytes - 1},
			{RecordChunk{Index: 4, Bytes: 2 * MiB, Ref: "part-1"}, 0, 0},
			{RecordChunk{Index: 5, Bytes: 1, Ref: "part-5"}, 0, 0},
		} {
			c := step.cmd
			s = spec{t: t, state: s}.when(c, t0).then(ChunkSent{Index: c.Index, Bytes: c.Bytes, Ref: c.Ref, Held: c.Held})
			if s.HeldFrom != step.heldFrom || s.HeldBytes != step.heldBytes || s.ChunksSent != c.Index {
				t.Errorf("after chunk %d (held %t): held from %d, %d bytes, %d chunks; want %d, %d, %d",
					c.Index, c.Held, s.HeldFrom, s.HeldBytes, s.ChunksSent, step.heldFrom, step.heldBytes, c.Index)
			}
		}
		if s.BytesSent != MaxHeldBytes+2*MiB || Next(s).Kind != ActComplete {
			t.Errorf("after the last chunk: %d bytes, next %v; want %d, complete", s.BytesSent, Next(s).Kind, MaxHeldBytes+2*MiB)
		}
	})
	t.Run("source-chunked: a new run starts after a stored chunk", func(t *testing.T) {
		s := given(t, with(hMESHHolding, ChunkSent{Index: 3, Bytes: 9})...).state
		r := s.Request
		r.Chunks = 5
		s.Request = r
		s = spec{t: t, state: s}.when(RecordChunk{Index: 4, Bytes: 3, Held: true}, t0).then(ChunkSent{Index: 4, Bytes: 3, Held: true})
		if s.HeldFrom != 4 || s.HeldBytes != 3 {
			t.Errorf("held from %d, %d bytes; want 4, 3", s.HeldFrom, s.HeldBytes)
		}
	})
	for _, tc := range []struct {
		name    string
		history []Payload
		cmd     RecordChunk
		want    Kind
	}{
		{"held, but the plan chose the chunks", hStarted, RecordChunk{Index: 1, Bytes: 10, Held: true}, KindInvalid},
		{"source-chunked, the last chunk held", []Payload{reqMESH, Started{}, meshSent(1), meshSent(2)}, RecordChunk{Index: 3, Bytes: 7, Held: true}, KindInvalid},
		{"source-chunked, the last chunk held after a held run", hMESHHolding, RecordChunk{Index: 3, Bytes: 7, Held: true}, KindInvalid},
		{"source-chunked, a held run reaching MaxHeldBytes", hMESHStarted, RecordChunk{Index: 1, Bytes: MaxHeldBytes, Held: true}, KindInvalid},
		{"source-chunked, a held chunk of more than MaxHeldBytes", hMESHStarted, RecordChunk{Index: 1, Bytes: math.MaxInt64, Held: true}, KindInvalid},
		{"source-chunked, a held run growing to MaxHeldBytes", hMESHHolding, RecordChunk{Index: 3, Bytes: MaxHeldBytes - 7, Held: true}, KindInvalid},
		{"negative bytes", hStarted, RecordChunk{Index: 1, Bytes: -1}, KindInvalid},
		{"source-chunked, negative bytes", hMESHStarted, RecordChunk{Index: 1, Bytes: -1}, KindInvalid},
		{"source-chunked, very negative bytes", hMESHSending, RecordChunk{Index: 2, Bytes: math.MinInt64}, KindInvalid},
		{"source-chunked, before start", hMESHRequested, RecordChunk{Index: 1, Bytes: 7}, KindConflict},
		{"source-chunked, skipping ahead", hMESHStarted, RecordChunk{Index: 2, Bytes: 7}, KindConflict},
		{"source-chunked, repeating a chunk", hMESHSending, RecordChunk{Index: 1, Bytes: 7}, KindConflict},
		{"source-chunked, beyond the source's count", hMESHAllSent, RecordChunk{Index: 4, Bytes: 7}, KindConflict},
		{"source-chunked, after delivery", hAckingSource, RecordChunk{Index: 4, Bytes: 7}, KindConflict},
		{"before start", hRequested, RecordChunk{Index: 1, Bytes: 10}, KindConflict},
		{"skipping ahead", hStarted, RecordChunk{Index: 2, Bytes: 10}, KindConflict},
		{"index zero", hStarted, RecordChunk{Index: 0, Bytes: 10}, KindConflict},
		{"negative index", hStarted, RecordChunk{Index: -1, Bytes: 10}, KindConflict},
		{"repeating a chunk", hSending, RecordChunk{Index: 1, Bytes: 10}, KindConflict},
		{"going back", []Payload{req3, started, sent(1), sent(2)}, RecordChunk{Index: 1, Bytes: 10}, KindConflict},
		{"beyond the plan", hAllSent, RecordChunk{Index: 4, Bytes: 0}, KindConflict},
		{"too few bytes", hStarted, RecordChunk{Index: 1, Bytes: 9}, KindInvalid},
		{"too many bytes", hStarted, RecordChunk{Index: 1, Bytes: 11}, KindInvalid},
		{"last chunk full size", []Payload{req3, started, sent(1), sent(2)}, RecordChunk{Index: 3, Bytes: 10}, KindInvalid},
		{"while retrying", hRetrying, RecordChunk{Index: 1, Bytes: 10}, KindConflict},
		{"after delivery", hAwaitingAck, RecordChunk{Index: 4, Bytes: 0}, KindConflict},
		{"after a replay, before start", hReplayed, RecordChunk{Index: 1, Bytes: 10}, KindConflict},
		{"after a replay, before start, where the failed attempt stopped", hReplayed, RecordChunk{Index: 2, Bytes: 10}, KindConflict},
		{"after a replay, resuming where the failed attempt stopped", hReplayedStarted, RecordChunk{Index: 2, Bytes: 10}, KindConflict},
		{"new transfer", hNew, RecordChunk{Index: 1, Bytes: 10}, KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			given(t, tc.history...).when(tc.cmd, t0).thenError(tc.want)
		})
	}
}

// TestRemoteRef: Started sets the remote reference; a destination that
// returns none at start (MESH) gets it from chunk 1, and nothing later
// overwrites it.
func TestRemoteRef(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history []Payload
		want    string
	}{
		{"set by Started", []Payload{req3, Started{Ref: "upload-1"}}, "upload-1"},
		{"Started's ref survives chunk 1", []Payload{req3, Started{Ref: "upload-1"}, sent(1)}, "upload-1"},
		{"Started's ref survives every chunk", hAllSent, "upload-1"},
		{"none from Started, none yet", hMESHStarted, ""},
		{"none from Started: chunk 1's", hMESHSending, meshMessageID},
		{"chunk 1's ref survives later chunks", hMESHAllSent, meshMessageID},
		{"chunk 1's ref survives delivery", hAckingSource, meshMessageID},
		{"chunk 1 without a ref: later chunks do not set it", []Payload{reqMESH, Started{}, ChunkSent{Index: 1, Bytes: 1}, ChunkSent{Index: 2, Bytes: 1, Ref: "chunk-2"}}, ""},
		{"after a replay, the new chunk 1's", []Payload{reqMESH, Started{}, meshSent(1), failedFinal, Replayed{Actor: "ops"}, Started{}, ChunkSent{Index: 1, Bytes: 3, Ref: "msg-2"}}, "msg-2"},
		{"after a replay, the new Started's", []Payload{reqMESH, Started{}, meshSent(1), failedFinal, Replayed{Actor: "ops"}, Started{Ref: "s-2"}, ChunkSent{Index: 1, Bytes: 3, Ref: "msg-2"}}, "s-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Fold(State{}, history(tc.history...)...).Ref; got != tc.want {
				t.Errorf("Ref = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("through Decide", func(t *testing.T) {
		s := given(t, hMESHStarted...).when(RecordChunk{Index: 1, Bytes: 5, Ref: "msg-1"}, t0).then(ChunkSent{Index: 1, Bytes: 5, Ref: "msg-1"})
		if s.Ref != "msg-1" {
			t.Errorf("Ref after chunk 1 = %q, want msg-1", s.Ref)
		}
		s = spec{t: t, state: s}.when(RecordChunk{Index: 2, Bytes: 5, Ref: "other"}, t0).then(ChunkSent{Index: 2, Bytes: 5, Ref: "other"})
		if s.Ref != "msg-1" {
			t.Errorf("Ref after chunk 2 = %q, want msg-1", s.Ref)
		}
	})
}

func TestDecideComplete(t *testing.T) {
	t.Run("after every chunk", func(t *testing.T) {
		s := given(t, hAllSent...).when(Complete{Ref: "r", Location: "s3://out/a.csv"}, t0).then(Delivered{Ref: "r", Location: "s3://out/a.csv"})
		if s.Status != StatusDelivered || s.Location != "s3://out/a.csv" || !s.Terminal() {
			t.Errorf("state = %s at %q terminal=%t", s.Status, s.Location, s.Terminal())
		}
	})
	t.Run("with ack expected it is delivered but not terminal", func(t *testing.T) {
		s := given(t, reqAck, started, sent(1), sent(2), sent(3)).when(Complete{Location: "l"}, t0).then(Delivered{Location: "l"})
		if s.Terminal() {
			t.Error("delivered transfer awaiting an ack is terminal")
		}
	})
	t.Run("source-chunked, whatever the bytes came to; then acknowledge the source", func(t *testing.T) {
		s := given(t, hMESHAllSent...).when(Complete{Ref: meshMessageID, Location: "mesh://X26ABC2/" + meshMessageID}, t0).then(
			Delivered{Ref: meshMessageID, Location: "mesh://X26ABC2/" + meshMessageID})
		if s.Status != StatusDelivered || s.BytesSent == reqMESH.Size || s.Terminal() || Next(s).Kind != ActAcknowledge {
			t.Errorf("state = %s after %d bytes terminal=%t next=%v; want DELIVERED, not terminal, acknowledge",
				s.Status, s.BytesSent, s.Terminal(), Next(s).Kind)
		}
	})
	for _, tc := range []struct {
		name    string
		history []Payload
		cmd     Complete
		want    Kind
	}{
		{"before start", hRequested, Complete{Location: "l"}, KindConflict},
		{"before any chunk", hStarted, Complete{Location: "l"}, KindConflict},
		{"before the last chunk", []Payload{req3, started, sent(1), sent(2)}, Complete{Location: "l"}, KindConflict},
		{"without a location", hAllSent, Complete{Ref: "r"}, KindInvalid},
		{"while retrying after the last chunk", []Payload{req3, started, sent(1), sent(2), sent(3), retryWait}, Complete{Location: "l"}, KindConflict},
		{"twice", hAwaitingAck, Complete{Location: "l"}, KindConflict},
		{"twice, acknowledging the source", hAckingSource, Complete{Location: "l"}, KindConflict},
		{"source-chunked, before the source's last chunk", []Payload{reqMESH, Started{}, meshSent(1), meshSent(2)}, Complete{Location: "l"}, KindConflict},
		{"new transfer", hNew, Complete{Location: "l"}, KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			given(t, tc.history...).when(tc.cmd, t0).thenError(tc.want)
		})
	}
}

func TestDecideFail(t *testing.T) {
	down := Errorf(KindUnavailable, "peer down").WithCode("503")
	// jittered is a backoff less the test transfer's jitter for the attempt
	// (see TestDelay for its bounds).
	jittered := func(p RetryPolicy, attempt int, backoff time.Duration) time.Duration {
		t.Helper()
		if got := p.Backoff(attempt); got != backoff {
			t.Fatalf("Backoff(%d) = %v, want %v", attempt, got, backoff)
		}
		return p.Delay(testID, attempt)
	}
	t.Run("retryable kind schedules a retry after the backoff", func(t *testing.T) {
		now := at(time.Hour)
		s := given(t, hStarted...).when(Fail{Err: down}, now).then(
			Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 1, NextAttemptAt: now.Add(jittered(DefaultRetryPolicy, 1, 10*time.Second))})
		if s.Status != StatusRetrying || s.Attempt != 1 || !s.NextAttemptAt.Equal(now.Add(jittered(DefaultRetryPolicy, 1, 10*time.Second))) || s.LastFailure == nil || s.LastFailure.Code != "503" {
			t.Errorf("state = %s attempt %d next %v last %+v", s.Status, s.Attempt, s.NextAttemptAt, s.LastFailure)
		}
	})
	t.Run("backoff grows with the attempt under the route's policy", func(t *testing.T) {
		r := req3
		r.Retry = RetryPolicy{MaxAttempts: 6, BaseDelay: Duration(time.Second), MaxDelay: Duration(5 * time.Second)}
		h := []Payload{r, started}
		for attempt, wait := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 5: 5 * time.Second} {
			t.Run(fmt.Sprint("attempt ", attempt), func(t *testing.T) {
				h := append([]Payload(nil), h...)
				for i := 1; i < attempt; i++ {
					h = append(h, Failed{Kind: KindUnavailable, Retryable: true, Attempt: i, NextAttemptAt: t0}, Retried{Attempt: i + 1})
				}
				given(t, h...).when(Fail{Err: down}, t0).then(
					Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: attempt, NextAttemptAt: t0.Add(jittered(r.Retry, attempt, wait))})
			})
		}
	})
	for _, kind := range []Kind{KindInvalid, KindNotFound, KindConflict, KindUnauthorized, KindInternal} {
		t.Run(string(kind)+" is final", func(t *testing.T) {
			s := given(t, hSending...).when(Fail{Err: Errorf(kind, "no")}, t0).then(Failed{Kind: kind, Message: "no", Attempt: 1})
			if s.Status != StatusFailed || !s.Terminal() || !s.NextAttemptAt.IsZero() {
				t.Errorf("state = %s terminal=%t next=%v", s.Status, s.Terminal(), s.NextAttemptAt)
			}
		})
	}
	t.Run("attempts exhausted at MaxAttempts is final", func(t *testing.T) {
		r := req3
		r.Retry.MaxAttempts = 3
		h := []Payload{r, started,
			Failed{Kind: KindUnavailable, Retryable: true, Attempt: 1, NextAttemptAt: t0}, Retried{Attempt: 2},
			Failed{Kind: KindUnavailable, Retryable: true, Attempt: 2, NextAttemptAt: t0}, Retried{Attempt: 3}}
		given(t, h...).when(Fail{Err: down}, t0).then(Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Attempt: 3})
		given(t, h[:4]...).when(Fail{Err: down}, t0).then(Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 2, NextAttemptAt: t0.Add(jittered(r.Retry, 2, 20*time.Second))})
	})
	t.Run("default policy allows the first attempt and 5 retries", func(t *testing.T) {
		h := []Payload{req3, started}
		for i := 1; i < 6; i++ {
			h = append(h, Failed{Kind: KindUnavailable, Retryable: true, Attempt: i, NextAttemptAt: t0}, Retried{Attempt: i + 1})
		}
		given(t, h...).when(Fail{Err: down}, t0).then(Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Attempt: 6})
		given(t, h[:len(h)-2]...).when(Fail{Err: down}, t0).then(Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 5,
			NextAttemptAt: t0.Add(jittered(DefaultRetryPolicy, 5, 160*time.Second))})
	})
	t.Run("a peer's Retry-After holds the retry back when it is longer", func(t *testing.T) {
		throttled := &Error{Kind: KindUnavailable, Code: "429", Message: "slow down", RetryAfter: 7 * time.Minute}
		given(t, hStarted...).when(Fail{Err: throttled}, t0).then(
			Failed{Kind: KindUnavailable, Code: "429", Message: "slow down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(7 * time.Minute)})
		throttled.RetryAfter = time.Second // shorter than the backoff: the backoff wins
		given(t, hStarted...).when(Fail{Err: throttled}, t0).then(
			Failed{Kind: KindUnavailable, Code: "429", Message: "slow down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(jittered(DefaultRetryPolicy, 1, 10*time.Second))})
		throttled.RetryAfter = 30 * 24 * time.Hour
		given(t, hStarted...).when(Fail{Err: throttled}, t0).then(
			Failed{Kind: KindUnavailable, Code: "429", Message: "slow down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(MaxRetryAfter)})
	})
	t.Run("MaxAttempts 1 makes the first failure final", func(t *testing.T) {
		r := req3
		r.Retry.MaxAttempts = 1
		given(t, r, started).when(Fail{Err: down}, t0).then(Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Attempt: 1})
	})
	t.Run("attempt count resets after a chunk is sent", func(t *testing.T) {
		r := req3
		r.Retry.MaxAttempts = 3
		h := []Payload{r, started,
			Failed{Kind: KindUnavailable, Retryable: true, Attempt: 1, NextAttemptAt: t0}, Retried{Attempt: 2},
			Failed{Kind: KindUnavailable, Retryable: true, Attempt: 2, NextAttemptAt: t0}, Retried{Attempt: 3},
			sent(1)}
		s := given(t, h...).when(Fail{Err: down}, t0).then(
			Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(jittered(DefaultRetryPolicy, 1, 10*time.Second))})
		if s.Attempt != 1 {
			t.Errorf("Attempt = %d, want 1", s.Attempt)
		}
	})
	t.Run("attempt count resets after a replay", func(t *testing.T) {
		given(t, hReplayed...).when(Fail{Err: down}, t0).then(
			Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(jittered(DefaultRetryPolicy, 1, 10*time.Second))})
	})
	t.Run("message falls back to the wrapped error", func(t *testing.T) {
		err := &Error{Kind: KindUnavailable, Code: "EOF", Err: errors.New("connection reset")}
		given(t, hStarted...).when(Fail{Err: err}, t0).then(
			Failed{Kind: KindUnavailable, Code: "EOF", Message: "connection reset", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(jittered(DefaultRetryPolicy, 1, 10*time.Second))})
	})
	// A delivered transfer still owed an acknowledgement can fail: the far
	// end reported it undelivered (a MESH non-delivery report), or the
	// source could not be acknowledged. It is final, whatever the kind and
	// however many attempts the route allows.
	for name, h := range map[string][]Payload{
		"awaiting ack":                                hAwaitingAck,
		"acknowledging the source":                    hAckingSource,
		"awaiting ack and acknowledging source":       with([]Payload{func() Requested { r := reqMESH; r.ExpectAck = true; return r }()}, hAckingSource[1:]...),
		"awaiting ack after failures before delivery": {reqAck, started, sent(1), sent(2), sent(3), retryWait, Retried{Attempt: 2}, delivered},
	} {
		for _, kind := range allKinds {
			t.Run("after delivery, "+name+", "+string(kind)+" is final", func(t *testing.T) {
				before := Fold(State{}, history(h...)...)
				if before.Status != StatusDelivered || before.Terminal() {
					t.Fatalf("fixture is %s terminal=%t, want DELIVERED awaiting", before.Status, before.Terminal())
				}
				s := given(t, h...).when(Fail{Err: Errorf(kind, "undelivered").WithCode("NDR")}, at(time.Hour)).then(
					Failed{Kind: kind, Code: "NDR", Message: "undelivered", Retryable: false, Attempt: 1})
				if s.Status != StatusFailed || !s.Terminal() || !s.NextAttemptAt.IsZero() || Next(s).Kind != ActNone {
					t.Errorf("state = %s terminal=%t next at %v, action %v; want FAILED, terminal, none", s.Status, s.Terminal(), s.NextAttemptAt, Next(s).Kind)
				}
				if s.Location != before.Location || s.ChunksSent != before.ChunksSent {
					t.Errorf("failing after delivery forgot the delivery: at %q after %d chunks", s.Location, s.ChunksSent)
				}
				spec{t: t, state: s}.when(Acknowledge{By: "X26ABC2"}, t0).thenError(KindConflict)
				spec{t: t, state: s}.when(Replay{Actor: "ops"}, t0).then(Replayed{Actor: "ops"})
			})
		}
	}
	t.Run("after delivery, even with attempts to spare", func(t *testing.T) {
		r := reqAck
		r.Retry.MaxAttempts = 100
		given(t, r, started, sent(1), sent(2), sent(3), delivered).when(Fail{Err: down}, t0).then(
			Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Attempt: 1})
	})
	for _, tc := range []struct {
		name    string
		history []Payload
		err     *Error
		want    Kind
	}{
		{"without an error", hStarted, nil, KindInvalid},
		{"without an error, awaiting ack", hAwaitingAck, nil, KindInvalid},
		{"without an error, acknowledging the source", hAckingSource, nil, KindInvalid},
		{"while retrying", hRetrying, down, KindConflict},
		{"delivered without ack", hDelivered, down, KindConflict},
		{"delivered without ack, final kind", hDelivered, Errorf(KindInvalid, "undelivered"), KindConflict},
		{"source-chunked delivered without ack", hMESHDelivered, down, KindConflict},
		{"acknowledged", hAcknowledged, down, KindConflict},
		{"source acknowledged", hSourceAcked, down, KindConflict},
		{"failed after delivery", hNonDelivered, down, KindConflict},
		{"failed", hFailed, down, KindConflict},
		{"new transfer", hNew, down, KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			given(t, tc.history...).when(Fail{Err: tc.err}, t0).thenError(tc.want)
		})
	}
}

func TestDecideRetry(t *testing.T) {
	due := retryWait.NextAttemptAt
	t.Run("when due", func(t *testing.T) {
		s := given(t, hRetrying...).when(Retry{}, due).then(Retried{Attempt: 2})
		if s.Status != StatusInProgress || !s.NextAttemptAt.IsZero() || s.Attempt != 1 {
			t.Errorf("state = %s next=%v attempt=%d, want IN_PROGRESS, zero, 1", s.Status, s.NextAttemptAt, s.Attempt)
		}
		if got := Next(s); got.Kind != ActSendChunk || got.Chunk.Index != 1 {
			t.Errorf("Next after retry = %v chunk %d, want send-chunk 1", got.Kind, got.Chunk.Index)
		}
	})
	t.Run("late", func(t *testing.T) {
		given(t, hRetrying...).when(Retry{}, due.Add(time.Hour)).then(Retried{Attempt: 2})
	})
	t.Run("early", func(t *testing.T) {
		given(t, hRetrying...).when(Retry{}, due.Add(-time.Nanosecond)).thenError(KindConflict)
	})
	for name, h := range map[string][]Payload{"in progress": hSending, "failed": hFailed, "delivered": hDelivered, "awaiting ack": hAwaitingAck, "cancelled": hCancelled} {
		t.Run("conflicts when "+name, func(t *testing.T) {
			given(t, h...).when(Retry{}, due.Add(time.Hour)).thenError(KindConflict)
		})
	}
	t.Run("new transfer", func(t *testing.T) {
		given(t).when(Retry{}, due).thenError(KindNotFound)
	})
}

func TestDecideAcknowledge(t *testing.T) {
	t.Run("delivered with an ack expected", func(t *testing.T) {
		s := given(t, hAwaitingAck...).when(Acknowledge{By: "X26ABC2", Ref: "ack-1"}, t0).then(Acknowledged{By: "X26ABC2", Ref: "ack-1"})
		if s.Status != StatusAcknowledged || !s.Terminal() {
			t.Errorf("state = %s terminal=%t, want ACKNOWLEDGED terminal", s.Status, s.Terminal())
		}
	})
	t.Run("delivered, once the source is acknowledged", func(t *testing.T) {
		s := given(t, hAckingSource...).when(Acknowledge{By: "ferry", Ref: reqMESH.Source.MessageID}, t0).then(
			Acknowledged{By: "ferry", Ref: reqMESH.Source.MessageID})
		if s.Status != StatusAcknowledged || !s.Terminal() || Next(s).Kind != ActNone {
			t.Errorf("state = %s terminal=%t next=%v, want ACKNOWLEDGED terminal none", s.Status, s.Terminal(), Next(s).Kind)
		}
	})
	for name, h := range map[string][]Payload{
		"delivered without ack expected": hDelivered, "source-chunked delivered without ack": hMESHDelivered, "in progress": hSending, "all chunks sent": hAllSent,
		"source-chunked, all chunks sent": hMESHAllSent, "retrying": hRetrying, "acknowledged": hAcknowledged, "source acknowledged": hSourceAcked,
		"failed": hFailed, "failed after delivery": hNonDelivered, "cancelled": hCancelled,
	} {
		t.Run("conflicts when "+name, func(t *testing.T) {
			given(t, h...).when(Acknowledge{By: "x"}, t0).thenError(KindConflict)
		})
	}
	t.Run("new transfer", func(t *testing.T) {
		given(t).when(Acknowledge{}, t0).thenError(KindNotFound)
	})
}

func TestDecideReplay(t *testing.T) {
	t.Run("failed transfer starts the delivery afresh", func(t *testing.T) {
		h := []Payload{req3, started, sent(1), failedFinal}
		before := Fold(State{}, history(h...)...)
		if !before.Started || before.Ref == "" || before.ChunksSent == 0 || before.BytesSent == 0 || before.LastFailure == nil || before.Attempt == 0 {
			t.Fatalf("fixture made no progress to forget: %+v", before)
		}
		s := given(t, h...).when(Replay{Actor: "ops", Reason: "key rotated"}, t0).then(Replayed{Actor: "ops", Reason: "key rotated"})
		if s.Status != StatusInProgress || s.Terminal() {
			t.Errorf("state = %s terminal=%t, want IN_PROGRESS, not terminal", s.Status, s.Terminal())
		}
		if s.Started || s.Ref != "" || s.ChunksSent != 0 || s.BytesSent != 0 {
			t.Errorf("state started=%t ref=%q chunks=%d bytes=%d, want nothing sent", s.Started, s.Ref, s.ChunksSent, s.BytesSent)
		}
		if s.LastFailure != nil || s.Attempt != 0 || !s.NextAttemptAt.IsZero() {
			t.Errorf("state last=%+v attempt=%d next=%v, want no failure", s.LastFailure, s.Attempt, s.NextAttemptAt)
		}
		if !reflect.DeepEqual(s.Request, req3) {
			t.Errorf("Request = %+v, want the plan unchanged %+v", s.Request, req3)
		}
		if got := Next(s); got != (Action{Kind: ActBegin}) {
			t.Errorf("Next = %+v, want begin", got)
		}
	})
	t.Run("after a replay the whole plan is sent again", func(t *testing.T) {
		h := hReplayed
		next := func(c Command, want Payload) {
			t.Helper()
			given(t, h...).when(c, t0).then(want)
			h = with(h, want)
		}
		next(Start{Ref: "upload-2"}, Started{Ref: "upload-2"})
		for i := 1; i <= req3.Chunks; i++ {
			s := Fold(State{}, history(h...)...)
			if got, want := Next(s), (Action{Kind: ActSendChunk, Chunk: req3.Chunk(i)}); got != want {
				t.Fatalf("Next before chunk %d = %+v, want %+v", i, got, want)
			}
			given(t, h...).when(Complete{Location: "null://a.csv"}, t0).thenError(KindConflict)
			next(RecordChunk{Index: i, Bytes: req3.Chunk(i).Length}, ChunkSent{Index: i, Bytes: req3.Chunk(i).Length})
		}
		s := Fold(State{}, history(h...)...)
		if got := Next(s); got != (Action{Kind: ActComplete}) {
			t.Fatalf("Next after %d chunks = %+v, want complete", req3.Chunks, got)
		}
		s = given(t, h...).when(Complete{Location: "null://a.csv"}, t0).then(Delivered{Location: "null://a.csv"})
		if s.Status != StatusDelivered || s.ChunksSent != req3.Chunks || s.BytesSent != req3.Size {
			t.Errorf("state = %s after %d chunks, %d bytes; want DELIVERED after %d, %d", s.Status, s.ChunksSent, s.BytesSent, req3.Chunks, req3.Size)
		}
	})
	t.Run("source-chunked transfer is sent again from chunk 1", func(t *testing.T) {
		h := with(hMESHSending, failedFinal)
		s := given(t, h...).when(Replay{Actor: "ops"}, t0).then(Replayed{Actor: "ops"})
		if s.Ref != "" || s.ChunksSent != 0 || s.BytesSent != 0 || !reflect.DeepEqual(s.Request, reqMESH) {
			t.Errorf("after replay ref=%q chunks=%d bytes=%d request %+v; want a fresh start on the same plan", s.Ref, s.ChunksSent, s.BytesSent, s.Request)
		}
		s = spec{t: t, state: s}.when(Start{}, t0).then(Started{})
		if got, want := Next(s), (Action{Kind: ActSendChunk, Chunk: Chunk{Index: 1, Offset: -1, Length: -1}}); got != want {
			t.Errorf("Next = %+v, want %+v", got, want)
		}
	})
	t.Run("source-chunked transfer forgets the chunks its destination held", func(t *testing.T) {
		s := given(t, with(hMESHHolding, failedFinal)...).when(Replay{Actor: "ops"}, t0).then(Replayed{Actor: "ops"})
		if s.HeldFrom != 0 || s.HeldBytes != 0 || s.ChunksSent != 0 {
			t.Errorf("after replay held from %d, %d bytes, %d chunks; want nothing held or sent", s.HeldFrom, s.HeldBytes, s.ChunksSent)
		}
	})
	t.Run("transfer that failed after delivery is delivered again", func(t *testing.T) {
		s := given(t, hNonDelivered...).when(Replay{Actor: "ops", Reason: "mailbox back"}, t0).then(Replayed{Actor: "ops", Reason: "mailbox back"})
		if s.Status != StatusInProgress || s.ChunksSent != 0 || Next(s).Kind != ActBegin {
			t.Errorf("state = %s after %d chunks, next %v; want IN_PROGRESS, none sent, begin", s.Status, s.ChunksSent, Next(s).Kind)
		}
	})
	t.Run("transfer rejected after routing", func(t *testing.T) {
		s := given(t, hRejectedLate...).when(Replay{Actor: "ops"}, t0).then(Replayed{Actor: "ops"})
		if got := Next(s); got != (Action{Kind: ActBegin}) {
			t.Errorf("Next = %+v, want begin", got)
		}
	})
	t.Run("transfer rejected before it had a destination conflicts", func(t *testing.T) {
		given(t, hRejected...).when(Replay{Actor: "ops", Reason: "try again"}, t0).thenError(KindConflict)
		// However it was rejected: what matters is that it has nowhere to go.
		rejected := given(t).when(Reject{Requested: reqUnrouted, Reason: Errorf(KindInvalid, "invalid upload")}, t0).then(
			reqUnrouted, Failed{Kind: KindInvalid, Message: "invalid upload", Attempt: 1})
		spec{t: t, state: rejected}.when(Replay{Actor: "ops"}, t0).thenError(KindConflict)
	})
	t.Run("needs an actor", func(t *testing.T) {
		given(t, hFailed...).when(Replay{Reason: "why not"}, t0).thenError(KindInvalid)
	})
	for name, h := range map[string][]Payload{
		"in progress": hSending, "retrying": hRetrying, "delivered": hDelivered, "awaiting ack": hAwaitingAck,
		"acknowledging the source": hAckingSource, "acknowledged": hAcknowledged, "source acknowledged": hSourceAcked,
		"cancelled": hCancelled, "replayed": hReplayed,
	} {
		t.Run("conflicts when "+name, func(t *testing.T) {
			given(t, h...).when(Replay{Actor: "ops"}, t0).thenError(KindConflict)
		})
	}
	t.Run("new transfer", func(t *testing.T) {
		given(t).when(Replay{Actor: "ops"}, t0).thenError(KindNotFound)
	})
}

func TestDecideCancel(t *testing.T) {
	for name, h := range map[string][]Payload{
		"requested": hRequested, "sending": hSending, "all chunks sent": hAllSent, "retrying": hRetrying, "replayed": hReplayed,
		"awaiting ack": hAwaitingAck, "acknowledging the source": hAckingSource, "source-chunked sending": hMESHSending,
		"failed": hFailed, "failed after delivery": hNonDelivered, "rejected": hRejected, "rejected after routing": hRejectedLate,
	} {
		t.Run(name, func(t *testing.T) {
			s := given(t, h...).when(Cancel{Actor: "ops", Reason: "sender asked"}, t0).then(Cancelled{Actor: "ops", Reason: "sender asked"})
			if s.Status != StatusCancelled || !s.Terminal() || Next(s).Kind != ActNone {
				t.Errorf("state = %s terminal=%t next=%v", s.Status, s.Terminal(), Next(s).Kind)
			}
		})
	}
	t.Run("awaiting ack: cancel stops the wait", func(t *testing.T) {
		if Next(Fold(State{}, history(hAwaitingAck...)...)).Kind != ActAwaitAck {
			t.Fatal("fixture is not awaiting an ack")
		}
		s := given(t, hAwaitingAck...).when(Cancel{Actor: "ops", Reason: "peer gone"}, t0).then(Cancelled{Actor: "ops", Reason: "peer gone"})
		if s.Status != StatusCancelled || !s.Terminal() || Next(s).Kind != ActNone {
			t.Errorf("state = %s terminal=%t next=%v, want CANCELLED terminal none", s.Status, s.Terminal(), Next(s).Kind)
		}
		spec{t: t, state: s}.when(Acknowledge{By: "X26ABC2"}, t0).thenError(KindConflict)
	})
	t.Run("needs an actor", func(t *testing.T) {
		given(t, hSending...).when(Cancel{}, t0).thenError(KindInvalid)
		given(t, hAwaitingAck...).when(Cancel{}, t0).thenError(KindInvalid)
		given(t, hFailed...).when(Cancel{}, t0).thenError(KindInvalid)
	})
	// A delivered transfer with no acknowledgement to wait for is finished.
	for name, h := range map[string][]Payload{
		"delivered": hDelivered, "source-chunked delivered without ack": hMESHDelivered, "acknowledged": hAcknowledged,
		"source acknowledged": hSourceAcked, "cancelled": hCancelled,
	} {
		t.Run("conflicts when "+name, func(t *testing.T) {
			given(t, h...).when(Cancel{Actor: "ops"}, t0).thenError(KindConflict)
		})
	}
	t.Run("new transfer", func(t *testing.T) {
		given(t).when(Cancel{Actor: "ops"}, t0).thenError(KindNotFound)
	})
}

// TestTerminalStatesAcceptOnlyOperatorCommands checks the rule from the design:
// a terminal transfer refuses every non-operator command with KindConflict.
func TestTerminalStatesAcceptOnlyOperatorCommands(t *testing.T) {
	terminal := map[string][]Payload{
		"delivered": hDelivered, "source-chunked delivered without ack": hMESHDelivered, "acknowledged": hAcknowledged, "source acknowledged": hSourceAcked,
		"failed": hFailed, "failed after delivery": hNonDelivered, "rejected": hRejected, "rejected after routing": hRejectedLate, "cancelled": hCancelled,
	}
	for name, h := range terminal {
		s := Fold(State{}, history(h...)...)
		if !s.Terminal() {
			t.Fatalf("%s: not terminal", name)
		}
		for _, c := range matrixCommands {
			if c.name == "Replay" || c.name == "Cancel" {
				continue
			}
			t.Run(name+"/"+c.name, func(t *testing.T) {
				given(t, h...).when(c.cmd(s), at(24*time.Hour)).thenError(KindConflict)
			})
		}
	}
}

func TestDecideStampsEvents(t *testing.T) {
	t.Run("new transfer events carry no id; the caller sets it", func(t *testing.T) {
		events, err := Decide(State{}, Reject{Requested: req3, Reason: Errorf(KindInvalid, "x")}, t0)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range events {
			if e.TransferID != "" || e.Seq != i+1 || !e.At.Equal(t0) {
				t.Errorf("event %d = {%q seq %d at %v}, want {\"\" seq %d at %v}", i, e.TransferID, e.Seq, e.At, i+1, t0)
			}
		}
	})
	t.Run("later events carry the id and the next version", func(t *testing.T) {
		s := Fold(State{}, history(hSending...)...)
		if s.ID != testID || s.Version != 3 {
			t.Fatalf("state = {%q v%d}, want {%q v3}", s.ID, s.Version, testID)
		}
		given(t, hSending...).when(RecordChunk{Index: 2, Bytes: 10}, at(time.Minute)).then(ChunkSent{Index: 2, Bytes: 10})
	})
}

func TestEvolve(t *testing.T) {
	t.Run("tracks times and the failure", func(t *testing.T) {
		s := Fold(State{}, history(hRetrying...)...)
		if !s.Created.Equal(t0) || !s.Updated.Equal(at(2*time.Second)) {
			t.Errorf("created %v updated %v, want %v and %v", s.Created, s.Updated, t0, at(2*time.Second))
		}
		if s.LastFailure == nil || *s.LastFailure != retryWait {
			t.Errorf("LastFailure = %+v, want %+v", s.LastFailure, retryWait)
		}
	})
	t.Run("progress clears the failure", func(t *testing.T) {
		s := Fold(State{}, history(req3, started, retryWait, Retried{Attempt: 2}, sent(1))...)
		if s.LastFailure != nil || s.Attempt != 0 || s.ChunksSent != 1 || s.BytesSent != 10 {
			t.Errorf("state last=%+v attempt=%d chunks=%d bytes=%d", s.LastFailure, s.Attempt, s.ChunksSent, s.BytesSent)
		}
	})
	t.Run("Replayed forgets the failed attempt", func(t *testing.T) {
		before := State{
			ID: testID, Version: 7, Status: StatusFailed, Request: req3, Created: t0, Updated: at(time.Minute),
			Started: true, Ref: "upload-1", ChunksSent: 2, BytesSent: 20, HeldFrom: 2, HeldBytes: 10,
			Attempt: 3, LastFailure: &failedFinal, NextAttemptAt: at(time.Hour),
		}
		got := Evolve(before, Event{TransferID: testID, Seq: 8, At: at(2 * time.Minute), Payload: Replayed{Actor: "ops"}})
		want := State{ID: testID, Version: 8, Status: StatusInProgress, Request: req3, Created: t0, Updated: at(2 * time.Minute)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after Replayed:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("LastFailure does not alias the event", func(t *testing.T) {
		events := history(req3, started, retryWait)
		s := Fold(State{}, events...)
		s.LastFailure.Message = "changed"
		if events[2].Payload.(Failed).Message != "peer down" {
			t.Error("changing the state changed the event")
		}
	})
}

func TestTerminal(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    []Payload
		want bool
	}{
		{"new", hNew, false}, {"requested", hRequested, false}, {"sending", hSending, false}, {"retrying", hRetrying, false},
		{"delivered", hDelivered, true}, {"awaiting ack", hAwaitingAck, false}, {"acknowledged", hAcknowledged, true},
		{"failed", hFailed, true}, {"rejected", hRejected, true}, {"rejected after routing", hRejectedLate, true},
		{"cancelled", hCancelled, true}, {"replayed", hReplayed, false},
		{"source-chunked sending", hMESHSending, false}, {"source-chunked all sent", hMESHAllSent, false},
		{"delivered acknowledging the source", hAckingSource, false}, {"source acknowledged", hSourceAcked, true},
		{"source-chunked delivered without ack", hMESHDelivered, true}, {"failed after delivery", hNonDelivered, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Fold(State{}, history(tc.h...)...).Terminal(); got != tc.want {
				t.Errorf("Terminal() = %t, want %t", got, tc.want)
			}
		})
	}
}
