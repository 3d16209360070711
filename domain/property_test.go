package domain

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var allKinds = []Kind{KindInvalid, KindNotFound, KindConflict, KindUnauthorized, KindUnavailable, KindInternal}

// genPolicy draws a retry policy that RetryPolicy.Validate accepts, often
// leaving fields to their defaults.
func genPolicy(t *rapid.T) RetryPolicy {
	p := RetryPolicy{MaxAttempts: rapid.IntRange(0, 6).Draw(t, "maxAttempts")}
	p.MaxDelay = Duration(rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(1, int64(time.Hour))).Draw(t, "maxDelay"))
	limit := int64(p.MaxDelay)
	if limit == 0 {
		limit = int64(time.Hour)
	}
	p.BaseDelay = Duration(rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(1, limit)).Draw(t, "baseDelay"))
	return p
}

// genRequested draws a valid request; Decide plans its chunks. About a third
// are source-chunked (a MESH message: the source gives the chunk count, not
// the lengths).
func genRequested(t *rapid.T) Requested {
	r := Requested{
		Source:      Source{Kind: "s3", Bucket: "inbound", Key: "k"},
		Route:       "r",
		Destination: rapid.SampledFrom([]Destination{{Type: "null"}, {Type: "s3", Bucket: "out", Prefix: "p/"}, {Type: "mesh"}}).Draw(t, "destination"),
		Size:        rapid.OneOf(rapid.Int64Range(0, 3), rapid.Int64Range(0, 300)).Draw(t, "size"),
		Retry:       genPolicy(t),
		ExpectAck:   rapid.Bool().Draw(t, "expectAck"),
		AckSource:   rapid.Bool().Draw(t, "ackSource"),
		Compress:    rapid.Bool().Draw(t, "compress"),
	}
	if rapid.IntRange(0, 2).Draw(t, "sourceChunked") == 0 {
		r.Source = Source{Kind: "mesh", Mailbox: "X26OT001", MessageID: "20250301085900000000_IN0001"}
		r.Chunks = rapid.IntRange(1, 6).Draw(t, "chunks")
	} else {
		r.ChunkSize = rapid.OneOf(rapid.Int64Range(1, 4), rapid.Int64Range(1, 64)).Draw(t, "chunkSize")
		r.Chunks = rapid.IntRange(-2, 9).Draw(t, "ignoredChunks") // Decide overwrites it
	}
	return r
}

// genAnyRequested draws requests valid or not.
func genAnyRequested(t *rapid.T) Requested {
	r := genRequested(t)
	switch rapid.IntRange(0, 6).Draw(t, "spoil") {
	case 1:
		r.Size = rapid.Int64Range(math.MinInt64, -1).Draw(t, "badSize")
	case 2:
		r.ChunkSize = rapid.Int64Range(math.MinInt64, -1).Draw(t, "badChunkSize")
	case 3:
		r.Destination = rapid.SampledFrom([]Destination{{}, {Type: "s3"}, {Type: "carrier-pigeon"}}).Draw(t, "badDestination")
	case 4:
		r.ChunkSize = 0
		r.Chunks = rapid.IntRange(math.MinInt, 0).Draw(t, "badChunks")
	case 5:
		r.ChunkSize = 0 // source-chunked, or not if there is no count
	}
	return r
}

// wantPlan is the model of planning: the request Decide records for r, or
// false when r must be refused as invalid.
func wantPlan(r Requested) (Requested, bool) {
	if r.Size < 0 || r.Destination.Validate() != nil || r.Retry.Validate() != nil {
		return r, false
	}
	switch {
	case r.ChunkSize > 0:
		r.Chunks = ChunkCount(r.Size, r.ChunkSize)
	case r.ChunkSize < 0 || r.Chunks <= 0:
		return r, false
	}
	return r, true
}

func genError(t *rapid.T) *Error {
	if rapid.IntRange(0, 9).Draw(t, "nilError") == 0 {
		return nil
	}
	return Errorf(rapid.SampledFrom(allKinds).Draw(t, "kind"), "boom")
}

// genChunkBytes draws the length of chunk c as a perfect transport would
// report it: the plan's, or for a source-chunked transfer whatever the
// source gave.
func genChunkBytes(t *rapid.T, r Requested, c Chunk) int64 {
	if r.SourceChunked() {
		return rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(0, 100), rapid.Int64Range(MaxHeldBytes/2-50, MaxHeldBytes/2+50), rapid.Int64Range(0, math.MaxInt32)).Draw(t, "sourceBytes")
	}
	return c.Length
}

// mayHold reports whether the destination may hold chunk index of bytes
// bytes of a transfer in state s: a source-chunked transfer's chunk other
// than the last, keeping the held run under MaxHeldBytes.
func mayHold(s State, index int, bytes int64) bool {
	return s.Request.SourceChunked() && index < s.Request.Chunks && bytes >= 0 && s.HeldBytes+bytes < MaxHeldBytes
}

// genHeld draws whether a perfect destination holds chunk index of bytes
// bytes: sometimes, when it may.
func genHeld(t *rapid.T, s State, index int, bytes int64) bool {
	return mayHold(s, index, bytes) && rapid.Bool().Draw(t, "held")
}

// genCommand draws a command for a transfer in state s: often the one Next
// asks for (so that transfers make progress), otherwise anything at all,
// including malformed and unknown commands.
func genCommand(t *rapid.T, s State) Command {
	switch rapid.IntRange(0, 15).Draw(t, "command") {
	case 0:
		return Request{Requested: genAnyRequested(t)}
	case 1:
		return Reject{Requested: genAnyRequested(t), Reason: genError(t)}
	case 2:
		return Start{Ref: rapid.SampledFrom([]string{"", "u"}).Draw(t, "startRef")}
	case 3:
		i := rapid.IntRange(-1, s.Request.Chunks+2).Draw(t, "index")
		bytes := rapid.OneOf(rapid.Just(s.Request.Chunk(i).Length), rapid.Int64Range(-1, 70)).Draw(t, "bytes")
		return RecordChunk{Index: i, Bytes: bytes, Ref: rapid.SampledFrom([]string{"", "part"}).Draw(t, "chunkRef"), Held: rapid.Bool().Draw(t, "anyHeld")}
	case 4:
		return Complete{Location: rapid.SampledFrom([]string{"", "null://x"}).Draw(t, "location")}
	case 5:
		return Fail{Err: genError(t)}
	case 6:
		return Retry{}
	case 7:
		return Acknowledge{By: "peer"}
	case 8:
		return Replay{Actor: rapid.SampledFrom([]string{"", "ops"}).Draw(t, "actor")}
	case 9:
		return Cancel{Actor: rapid.SampledFrom([]string{"", "ops"}).Draw(t, "actor")}
	case 10:
		return rapid.SampledFrom([]Command{nil, bogus{}}).Draw(t, "nonsense")
	default:
		switch a := Next(s); a.Kind {
		case ActBegin:
			return Start{Ref: rapid.SampledFrom([]string{"", "u"}).Draw(t, "startRef")}
		case ActSendChunk:
			n := genChunkBytes(t, s.Request, a.Chunk)
			held := genHeld(t, s, a.Chunk.Index, n)
			if rapid.IntRange(0, 3).Draw(t, "holdAnyway") == 0 {
				held = true // where the destination may not, too
			}
			return RecordChunk{Index: a.Chunk.Index, Bytes: n, Ref: rapid.SampledFrom([]string{"", "part"}).Draw(t, "chunkRef"), Held: held}
		case ActComplete:
			return Complete{Location: "null://x"}
		case ActWaitRetry:
			return Retry{}
		case ActAwaitAck:
			return Acknowledge{By: "peer"}
		case ActAcknowledge:
			return Acknowledge{By: "ferry"}
		default:
			if s.Status == StatusNew {
				return Request{Requested: genRequested(t)}
			}
			return Replay{Actor: "ops"}
		}
	}
}

func isOperator(c Command) bool {
	switch c.(type) {
	case Replay, Cancel:
		return true
	}
	return false
}

// awaitingAck reports whether a delivered transfer with request r still
// waits for an acknowledgement: the far end's or its own of the source.
func awaitingAck(r Requested) bool { return r.ExpectAck || r.AckSource }

// replayable reports whether an operator may replay a transfer in state s:
// it failed for good, and it has somewhere to go (a transfer rejected before
// routing has no destination).
func replayable(s State) bool {
	return s.Status == StatusFailed && s.Request.Destination.Type != ""
}

// cancellable reports whether an operator may cancel a transfer in state s:
// it has not finished, it failed for good, or it is delivered and still
// waiting for an acknowledgement.
func cancellable(s State) bool {
	switch s.Status {
	case StatusInProgress, StatusRetrying, StatusFailed:
		return true
	case StatusDelivered:
		return awaitingAck(s.Request)
	}
	return false
}

// nextChunkFits reports whether c names the next chunk of a transfer in
// state s that is ready for it, with a length the plan allows, held only
// where it may be.
func nextChunkFits(s State, c RecordChunk) bool {
	if s.Status != StatusInProgress || !s.Started || c.Index != s.ChunksSent+1 || c.Index > s.Request.Chunks || c.Bytes < 0 {
		return false
	}
	if c.Held && !mayHold(s, c.Index, c.Bytes) {
		return false
	}
	return s.Request.SourceChunked() || c.Bytes == s.Request.Chunk(c.Index).Length
}

func maxAttempts(p RetryPolicy) int {
	if p.MaxAttempts == 0 {
		return DefaultRetryPolicy.MaxAttempts
	}
	return p.MaxAttempts
}

// TestPropertyDecide applies random command sequences through Decide and Fold
// and checks the aggregate's invariants after every step.
func TestPropertyDecide(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var (
			s       State
			hist    []Event
			now     = t0
			attempt int // failures since the last progress, counted independently of State
		)
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for step := 0; step < steps; step++ {
			switch rapid.IntRange(0, 3).Draw(t, "clock") {
			case 0: // stand still
			case 1:
				if s.NextAttemptAt.After(now) {
					now = s.NextAttemptAt
				}
			default:
				now = now.Add(time.Duration(rapid.Int64Range(0, int64(20*time.Minute)).Draw(t, "tick")))
			}
			c := genCommand(t, s)
			events, err := Decide(s, c, now)
			again, err2 := Decide(s, c, now)
			if !reflect.DeepEqual(events, again) || (err == nil) != (err2 == nil) {
				t.Fatalf("Decide is not deterministic for %#v", c)
			}
			if r, ok := c.(Request); ok && s.Status == StatusNew {
				want, valid := wantPlan(r.Requested)
				switch {
				case valid && err != nil:
					t.Fatalf("valid request %+v refused: %v", r.Requested, err)
				case !valid && KindOf(err) != KindInvalid:
					t.Fatalf("invalid request %+v: %v, want invalid", r.Requested, err)
				case valid && (len(events) != 1 || !reflect.DeepEqual(events[0].Payload, want)):
					t.Fatalf("request %+v planned as %+v, want %+v", r.Requested, events, want)
				}
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if len(events) != 0 {
					t.Fatalf("%#v: events %v with error %v", c, eventTypes(events), err)
				}
				if s.Status == StatusNew {
					switch c.(type) {
					case Request, Reject:
					default:
						if e.Kind != KindNotFound {
							t.Fatalf("%#v on a new transfer: %v, want not_found", c, err)
						}
					}
				}
				if s.Terminal() && !isOperator(c) && e.Kind != KindConflict {
					t.Fatalf("%#v on a terminal transfer: %v, want conflict", c, err)
				}
				switch c := c.(type) {
				case Replay:
					if c.Actor != "" && replayable(s) {
						t.Fatalf("replay of a failed transfer to %q refused: %v", s.Request.Destination.Type, err)
					}
					if s.Status != StatusNew && c.Actor != "" && e.Kind != KindConflict {
						t.Fatalf("replay of a %s transfer (destination %q): %v, want conflict", s.Status, s.Request.Destination.Type, err)
					}
				case Cancel:
					if c.Actor != "" && cancellable(s) {
						t.Fatalf("cancel of a %s transfer (ack expected %t, ack source %t) refused: %v", s.Status, s.Request.ExpectAck, s.Request.AckSource, err)
					}
					if s.Status != StatusNew && c.Actor != "" && e.Kind != KindConflict {
						t.Fatalf("cancel of a %s transfer (ack expected %t, ack source %t): %v, want conflict", s.Status, s.Request.ExpectAck, s.Request.AckSource, err)
					}
				case Fail:
					if c.Err != nil && (s.Status == StatusInProgress || s.Status == StatusDelivered && awaitingAck(s.Request)) {
						t.Fatalf("failure of a %s transfer (ack expected %t, ack source %t) refused: %v", s.Status, s.Request.ExpectAck, s.Request.AckSource, err)
					}
				case Acknowledge:
					if s.Status == StatusDelivered && awaitingAck(s.Request) {
						t.Fatalf("acknowledgement of a delivered transfer (ack expected %t, ack source %t) refused: %v", s.Request.ExpectAck, s.Request.AckSource, err)
					}
				case RecordChunk:
					if nextChunkFits(s, c) {
						t.Fatalf("chunk %d of %d bytes (source-chunked %t) refused: %v", c.Index, c.Bytes, s.Request.SourceChunked(), err)
					}
					if s.Status == StatusInProgress && s.Started && c.Index == s.ChunksSent+1 && c.Index <= s.Request.Chunks && e.Kind != KindInvalid {
						t.Fatalf("next chunk %d with %d bytes: %v, want invalid", c.Index, c.Bytes, err)
					}
				}
				continue
			}
			if len(events) == 0 {
				t.Fatalf("%#v accepted with no events", c)
			}
			if s.Terminal() && !isOperator(c) {
				t.Fatalf("terminal %s transfer accepted %#v", s.Status, c)
			}
			if s.Status == StatusNew {
				for i := range events {
					events[i].TransferID = testID // as the caller does
				}
			}
			cur := s
			for i, e := range events {
				if e.Seq != len(hist)+1 || e.Seq != s.Version+1+i {
					t.Fatalf("event Seq %d after %d events", e.Seq, len(hist))
				}
				if e.TransferID != testID || !e.At.Equal(now) {
					t.Fatalf("event %d stamped {%q %v}, want {%q %v}", e.Seq, e.TransferID, e.At, testID, now)
				}
				_, rejected := c.(Reject)
				checkEvent(t, cur, e, now, rejected, &attempt)
				hist = append(hist, e)
				cur = Evolve(cur, e)
			}
			s = cur
			checkState(t, s, hist)
		}
	})
}

// checkEvent checks one event against the state before it.
func checkEvent(t *rapid.T, s State, e Event, now time.Time, rejected bool, attempt *int) {
	switch p := e.Payload.(type) {
	case Requested:
		if s.Status != StatusNew {
			t.Fatalf("Requested on a %s transfer", s.Status)
		}
		planned := p.ChunkSize > 0 && p.Chunks == ChunkCount(p.Size, p.ChunkSize)
		sourceChunked := p.ChunkSize == 0 && p.Chunks > 0 && p.SourceChunked()
		if p.Size < 0 || !(planned || sourceChunked && !rejected) {
			t.Fatalf("Requested with a bad plan: size %d chunk size %d chunks %d (rejected %t)", p.Size, p.ChunkSize, p.Chunks, rejected)
		}
		*attempt = 0
	case Started:
		if s.Status != StatusInProgress || s.Started {
			t.Fatalf("Started on %s started=%t", s.Status, s.Started)
		}
	case ChunkSent:
		if s.Status != StatusInProgress || !s.Started {
			t.Fatalf("ChunkSent on %s started=%t", s.Status, s.Started)
		}
		if p.Index != s.ChunksSent+1 || p.Index > s.Request.Chunks {
			t.Fatalf("ChunkSent %d after %d of %d", p.Index, s.ChunksSent, s.Request.Chunks)
		}
		if s.Request.SourceChunked() {
			if p.Bytes < 0 {
				t.Fatalf("source-chunked ChunkSent %d with %d bytes", p.Index, p.Bytes)
			}
		} else if p.Bytes != s.Request.Chunk(p.Index).Length {
			t.Fatalf("ChunkSent %d with %d bytes, plan says %d", p.Index, p.Bytes, s.Request.Chunk(p.Index).Length)
		}
		if p.Held && !mayHold(s, p.Index, p.Bytes) {
			t.Fatalf("ChunkSent %d of %d held (source-chunked %t, %d chunks, %d bytes held before)", p.Index, p.Bytes, s.Request.SourceChunked(), s.Request.Chunks, s.HeldBytes)
		}
		*attempt = 0
	case Delivered:
		if s.Status != StatusInProgress || s.ChunksSent != s.Request.Chunks {
			t.Fatalf("Delivered on %s after %d of %d chunks", s.Status, s.ChunksSent, s.Request.Chunks)
		}
		if !s.Request.SourceChunked() && s.BytesSent != s.Request.Size {
			t.Fatalf("Delivered after %d of %d bytes", s.BytesSent, s.Request.Size)
		}
		*attempt = 0
	case Failed:
		if rejected {
			if s.Version != 1 || p.Retryable || p.Attempt != 1 || !p.NextAttemptAt.IsZero() {
				t.Fatalf("rejection %+v, want final at attempt 1", p)
			}
			break
		}
		*attempt++
		if p.Attempt != *attempt {
			t.Fatalf("Failed attempt %d, want %d (failures since the last progress)", p.Attempt, *attempt)
		}
		if s.Status == StatusDelivered {
			// The far end refused the delivery, or the source could not be
			// acknowledged: final, whatever the kind.
			if !awaitingAck(s.Request) || p.Retryable || !p.NextAttemptAt.IsZero() {
				t.Fatalf("Failed %+v after delivery (ack expected %t, ack source %t), want final", p, s.Request.ExpectAck, s.Request.AckSource)
			}
			break
		}
		if s.Status != StatusInProgress {
			t.Fatalf("Failed on a %s transfer", s.Status)
		}
		wantRetry := p.Kind.Retryable() && p.Attempt < maxAttempts(s.Request.Retry)
		if p.Retryable != wantRetry {
			t.Fatalf("Failed %+v: retryable %t, want %t (max %d)", p, p.Retryable, wantRetry, maxAttempts(s.Request.Retry))
		}
		if want := now.Add(s.Request.Retry.Delay(s.ID, p.Attempt)); p.Retryable && !p.NextAttemptAt.Equal(want) {
			t.Fatalf("NextAttemptAt %v, want %v", p.NextAttemptAt, want)
		}
		if !p.Retryable && !p.NextAttemptAt.IsZero() {
			t.Fatalf("final failure with NextAttemptAt %v", p.NextAttemptAt)
		}
	case Retried:
		if s.Status != StatusRetrying || now.Before(s.NextAttemptAt) {
			t.Fatalf("Retried on %s at %v, due %v", s.Status, now, s.NextAttemptAt)
		}
	case Acknowledged:
		if s.Status != StatusDelivered || !awaitingAck(s.Request) {
			t.Fatalf("Acknowledged on %s, ack expected %t, ack source %t", s.Status, s.Request.ExpectAck, s.Request.AckSource)
		}
	case Replayed:
		if !replayable(s) {
			t.Fatalf("Replayed on %s with destination %q", s.Status, s.Request.Destination.Type)
		}
		*attempt = 0
	case Cancelled:
		if !cancellable(s) {
			t.Fatalf("Cancelled on %s, ack expected %t, ack source %t", s.Status, s.Request.ExpectAck, s.Request.AckSource)
		}
	default:
		t.Fatalf("unexpected payload %T", p)
	}
}

// checkState checks the state against the whole history.
func checkState(t *rapid.T, s State, hist []Event) {
	if s.Version != len(hist) {
		t.Fatalf("Version %d after %d events", s.Version, len(hist))
	}
	// What has been sent counts from the last replay: a replay starts the
	// delivery afresh.
	var (
		chunks    int
		bytes     int64
		started   bool
		ref       string
		heldFrom  int   // first chunk of the held run; 0 for none
		heldBytes int64 // its bytes
	)
	for i, e := range hist {
		if e.Seq != i+1 {
			t.Fatalf("event %d has Seq %d", i+1, e.Seq)
		}
		if (i == 0) != (e.Type() == TypeRequested) {
			t.Fatalf("event %d is %s", e.Seq, e.Type())
		}
		switch p := e.Payload.(type) {
		case Started:
			started, ref = true, p.Ref
		case ChunkSent:
			chunks++
			if p.Index != chunks {
				t.Fatalf("chunk %d recorded as the %dth since the last replay", p.Index, chunks)
			}
			bytes += p.Bytes
			if p.Index == 1 && ref == "" {
				ref = p.Ref // the destination named the remote object only now
			}
			switch {
			case !p.Held:
				heldFrom, heldBytes = 0, 0
			case heldFrom == 0:
				heldFrom, heldBytes = p.Index, p.Bytes
			default:
				heldBytes += p.Bytes
			}
		case Replayed:
			chunks, bytes, started, ref, heldFrom, heldBytes = 0, 0, false, "", 0, 0
		}
	}
	if s.HeldFrom != heldFrom || s.HeldBytes != heldBytes || heldBytes >= MaxHeldBytes || (heldFrom != 0 && (heldFrom > chunks || chunks >= s.Request.Chunks)) {
		t.Fatalf("state holds chunks from %d, %d bytes; history %d, %d after %d of %d chunks", s.HeldFrom, s.HeldBytes, heldFrom, heldBytes, chunks, s.Request.Chunks)
	}
	if (s.Status == StatusDelivered || s.Status == StatusAcknowledged) && s.HeldFrom != 0 {
		t.Fatalf("%s with chunks %d.. still held", s.Status, s.HeldFrom)
	}
	if s.ChunksSent != chunks || s.BytesSent != bytes || chunks > s.Request.Chunks || (!s.Request.SourceChunked() && bytes > s.Request.Size) {
		t.Fatalf("state has %d chunks, %d bytes; history %d, %d; plan %d, %d", s.ChunksSent, s.BytesSent, chunks, bytes, s.Request.Chunks, s.Request.Size)
	}
	if s.Started != started || s.Ref != ref {
		t.Fatalf("state started=%t ref=%q; history %t, %q", s.Started, s.Ref, started, ref)
	}
	if e := hist[len(hist)-1]; e.Type() == TypeReplayed && (s.Status != StatusInProgress || s.Attempt != 0 || s.LastFailure != nil || !s.NextAttemptAt.IsZero() || Next(s).Kind != ActBegin) {
		t.Fatalf("after a replay: %s attempt %d last %+v next %v, action %v; want IN_PROGRESS with no failure, begin", s.Status, s.Attempt, s.LastFailure, s.NextAttemptAt, Next(s).Kind)
	}
	if s.Status == StatusDelivered {
		want := ActNone
		switch {
		case s.Request.AckSource:
			want = ActAcknowledge
		case s.Request.ExpectAck:
			want = ActAwaitAck
		}
		if Next(s).Kind != want || s.Terminal() != (want == ActNone) {
			t.Fatalf("delivered (ack expected %t, ack source %t): next %v terminal %t, want %v", s.Request.ExpectAck, s.Request.AckSource, Next(s).Kind, s.Terminal(), want)
		}
	}
	if s.Terminal() && Next(s).Kind != ActNone {
		t.Fatalf("terminal %s transfer has next action %v", s.Status, Next(s).Kind)
	}
	if !reflect.DeepEqual(Fold(State{}, hist...), s) {
		t.Fatalf("folding the history does not give the state")
	}
}

// drive follows Next from s as a handler with a perfect transport would,
// failing with a retryable error whenever fail says so, acknowledging the
// source when told to. It returns the state it stops in (delivered or
// acknowledged), the chunks Next asked for and the number of events appended.
func drive(t *rapid.T, s State, now time.Time, fail func(State) bool) (State, []Chunk, int) {
	var chunks []Chunk
	n := 0
	apply := func(c Command) {
		events, err := Decide(s, c, now)
		if err != nil {
			t.Fatalf("%s transfer refused %#v: %v", s.Status, c, err)
		}
		n += len(events)
		s = Fold(s, events...)
	}
	for steps := 0; ; steps++ {
		if steps > 10*(s.Request.Chunks+3)*(maxAttempts(s.Request.Retry)+1) {
			t.Fatalf("no end in sight: %s after %d steps", s.Status, steps)
		}
		a := Next(s)
		if fail != nil && s.Status == StatusInProgress && fail(s) {
			apply(Fail{Err: Errorf(KindUnavailable, "flaky")})
			continue
		}
		switch a.Kind {
		case ActBegin:
			apply(Start{Ref: rapid.SampledFrom([]string{"", "upload"}).Draw(t, "startRef")})
		case ActSendChunk:
			chunks = append(chunks, a.Chunk)
			n := genChunkBytes(t, s.Request, a.Chunk)
			apply(RecordChunk{Index: a.Chunk.Index, Bytes: n, Ref: "part", Held: genHeld(t, s, a.Chunk.Index, n)})
		case ActComplete:
			apply(Complete{Location: "null://out"})
		case ActWaitRetry:
			if a.At.Before(now) {
				t.Fatalf("retry at %v, before the failure at %v", a.At, now)
			}
			now = a.At
			apply(Retry{})
		case ActAcknowledge:
			if s.Status != StatusDelivered || s.Terminal() || !s.Request.AckSource {
				t.Fatalf("acknowledge the source of a %s transfer (terminal %t, ack source %t)", s.Status, s.Terminal(), s.Request.AckSource)
			}
			apply(Acknowledge{By: "ferry", Ref: s.Request.Source.MessageID})
		case ActAwaitAck, ActNone:
			return s, chunks, n
		default:
			t.Fatalf("unknown action %v", a.Kind)
		}
	}
}

// checkCover checks that chunks cut [0,size) into consecutive pieces of
// chunkSize bytes (the last may be shorter; an empty payload has one empty chunk).
func checkCover(t *rapid.T, chunks []Chunk, size, chunkSize int64) {
	var off int64
	for i, c := range chunks {
		if c.Index != i+1 || c.Offset != off || c.Length > chunkSize || (c.Length <= 0 && size > 0) {
			t.Fatalf("chunk %d = %+v, want index %d at offset %d, 1..%d bytes", i+1, c, i+1, off, chunkSize)
		}
		if i < len(chunks)-1 && c.Length != chunkSize {
			t.Fatalf("chunk %d of %d has %d bytes, want %d", i+1, len(chunks), c.Length, chunkSize)
		}
		off += c.Length
	}
	if off != size || len(chunks) == 0 || (size == 0 && len(chunks) != 1) {
		t.Fatalf("%d chunks cover %d of %d bytes", len(chunks), off, size)
	}
}

// checkPlanCover checks the chunks Next asked for against request r: the
// plan's byte ranges, or for a source-chunked transfer the source's count of
// chunks whose offsets and lengths are unknown.
func checkPlanCover(t *rapid.T, chunks []Chunk, r Requested) {
	if !r.SourceChunked() {
		checkCover(t, chunks, r.Size, r.ChunkSize)
		return
	}
	if len(chunks) != r.Chunks {
		t.Fatalf("%d chunks sent, the source has %d", len(chunks), r.Chunks)
	}
	for i, c := range chunks {
		if c != (Chunk{Index: i + 1, Offset: -1, Length: -1}) {
			t.Fatalf("source-chunked chunk %d = %+v, want index %d, offset and length -1", i+1, c, i+1)
		}
	}
}

// checkDelivered checks where drive stopped on a transfer with request r,
// after n events: delivered in Chunks+2 events (Started, Chunks × ChunkSent,
// Delivered) plus extra, then acknowledged in one more when the source must
// be acknowledged.
func checkDelivered(t *rapid.T, s State, n, extra int, r Requested) {
	want, status := r.Chunks+2+extra, StatusDelivered
	if r.AckSource {
		want, status = want+1, StatusAcknowledged
	}
	if s.Status != status || n != want || s.Request.Chunks != r.Chunks {
		t.Fatalf("reached %s in %d events, want %s in %d (%d chunks, ack source %t)", s.Status, n, status, want, r.Chunks, r.AckSource)
	}
}

// TestPropertyFollowingNextDelivers: a handler that does what Next says,
// with a transport that never fails, delivers in exactly Chunks+2 events
// after Requested (Started, Chunks × ChunkSent, Delivered); then it
// acknowledges the source in one more event when asked to, or waits for the
// far end's acknowledgement when one is expected.
func TestPropertyFollowingNextDelivers(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRequested(t)
		events, err := Decide(State{}, Request{Requested: r}, t0)
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		r = events[0].Payload.(Requested)
		s, chunks, n := drive(t, Fold(State{}, events...), t0, nil)
		checkDelivered(t, s, n, 0, r)
		checkPlanCover(t, chunks, r)
		if !r.SourceChunked() && s.BytesSent != r.Size {
			t.Fatalf("sent %d of %d bytes", s.BytesSent, r.Size)
		}
		switch {
		case r.AckSource:
			if !s.Terminal() || Next(s).Kind != ActNone {
				t.Fatalf("source acknowledged: terminal %t, next %v", s.Terminal(), Next(s).Kind)
			}
			return
		case !r.ExpectAck:
			if !s.Terminal() || Next(s).Kind != ActNone {
				t.Fatalf("delivered without ack expected: terminal %t, next %v", s.Terminal(), Next(s).Kind)
			}
			return
		}
		if s.Terminal() || Next(s).Kind != ActAwaitAck {
			t.Fatalf("delivered awaiting ack: terminal %t, next %v", s.Terminal(), Next(s).Kind)
		}
		events, err = Decide(s, Acknowledge{By: "peer"}, t0)
		if err != nil || len(events) != 1 {
			t.Fatalf("Acknowledge: %v, %d events", err, len(events))
		}
		s = Fold(s, events...)
		if s.Status != StatusAcknowledged || !s.Terminal() || Next(s).Kind != ActNone {
			t.Fatalf("after ack: %s terminal %t next %v", s.Status, s.Terminal(), Next(s).Kind)
		}
	})
}

// TestPropertyRetriesRecover: retryable failures, fewer in a row than the
// policy allows, never stop a transfer from being delivered; each costs
// exactly two events (Failed, Retried).
func TestPropertyRetriesRecover(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRequested(t)
		r.Retry.MaxAttempts = rapid.IntRange(2, 6).Draw(t, "maxAttempts")
		events, err := Decide(State{}, Request{Requested: r}, t0)
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		r = events[0].Payload.(Requested)
		failures := 0
		s, chunks, n := drive(t, Fold(State{}, events...), t0, func(s State) bool {
			if s.Attempt+1 >= r.Retry.MaxAttempts || !rapid.Bool().Draw(t, "fail") {
				return false
			}
			failures++
			return true
		})
		checkDelivered(t, s, n, 2*failures, r)
		checkPlanCover(t, chunks, r)
	})
}

// TestPropertyReplayStartsAfresh: a transfer that fails for good part-way,
// or after delivery while it awaits an acknowledgement, once or more, and is
// replayed is delivered by sending the whole plan again: after each Replayed
// come exactly Chunks+2 events (Started, Chunks × ChunkSent from chunk 1,
// Delivered), whatever the failed attempt had sent.
func TestPropertyReplayStartsAfresh(t *testing.T) {
	finalKinds := []Kind{KindInvalid, KindNotFound, KindConflict, KindUnauthorized, KindInternal}
	rapid.Check(t, func(t *rapid.T) {
		r := genRequested(t)
		events, err := Decide(State{}, Request{Requested: r}, t0)
		if err != nil {
			t.Fatalf("valid request refused: %v", err)
		}
		r = events[0].Payload.(Requested)
		s := Fold(State{}, events...)
		apply := func(c Command) {
			events, err := Decide(s, c, t0)
			if err != nil {
				t.Fatalf("%s transfer refused %#v: %v", s.Status, c, err)
			}
			s = Fold(s, events...)
		}
		step := func() {
			switch a := Next(s); a.Kind {
			case ActBegin:
				apply(Start{Ref: "upload"})
			case ActSendChunk:
				apply(RecordChunk{Index: a.Chunk.Index, Bytes: genChunkBytes(t, s.Request, a.Chunk), Ref: "part"})
			case ActComplete:
				apply(Complete{Location: "null://out"})
			default:
				t.Fatalf("part-way through, Next = %v", a.Kind)
			}
		}
		for round := rapid.IntRange(1, 3).Draw(t, "rounds"); round > 0; round-- {
			kind := rapid.SampledFrom(finalKinds).Draw(t, "kind")
			if awaitingAck(r) && rapid.Bool().Draw(t, "failAfterDelivery") {
				// Deliver, then hear that the delivery failed (a MESH
				// non-delivery report): final, even for a retryable kind.
				for s.Status != StatusDelivered {
					step()
				}
				kind = rapid.SampledFrom(allKinds).Draw(t, "kindAfterDelivery")
			} else {
				// Progress part-way: perhaps prepare the destination and
				// send some chunks, perhaps all of them, but never complete.
				for steps := rapid.IntRange(0, s.Request.Chunks+1).Draw(t, "progress"); steps > 0; steps-- {
					step()
				}
			}
			apply(Fail{Err: Errorf(kind, "broken")})
			if s.Status != StatusFailed {
				t.Fatalf("final failure left the transfer %s", s.Status)
			}
			apply(Replay{Actor: "ops"})
			if s.Status != StatusInProgress || s.Started || s.Ref != "" || s.ChunksSent != 0 || s.BytesSent != 0 ||
				s.Attempt != 0 || s.LastFailure != nil || !s.NextAttemptAt.IsZero() || !reflect.DeepEqual(s.Request, r) {
				t.Fatalf("after replay: %+v, want a fresh IN_PROGRESS transfer with the same plan", s)
			}
			if a := Next(s); a.Kind != ActBegin {
				t.Fatalf("Next after replay = %v, want begin", a.Kind)
			}
			if _, err := Decide(s, RecordChunk{Index: 1, Bytes: max(s.Request.Chunk(1).Length, 0)}, t0); KindOf(err) != KindConflict {
				t.Fatalf("chunk before Start after a replay: %v, want conflict", err)
			}
		}
		s, chunks, n := drive(t, s, t0, nil)
		checkDelivered(t, s, n, 0, r)
		if len(chunks) != r.Chunks || s.ChunksSent != r.Chunks || (!r.SourceChunked() && s.BytesSent != r.Size) {
			t.Fatalf("after replay %d chunks asked for, %d sent, %d bytes; want %d chunks, %d bytes",
				len(chunks), s.ChunksSent, s.BytesSent, r.Chunks, r.Size)
		}
		checkPlanCover(t, chunks, r)
	})
}

// TestPropertyChunksCoverSmall walks every chunk of small payloads.
func TestPropertyChunksCoverSmall(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.Int64Range(0, 5000).Draw(t, "size")
		chunkSize := rapid.Int64Range(1, 600).Draw(t, "chunkSize")
		n := ChunkCount(size, chunkSize)
		chunks := make([]Chunk, n)
		for i := range chunks {
			chunks[i] = ChunkAt(size, chunkSize, i+1)
		}
		checkCover(t, chunks, size, chunkSize)
	})
}

// TestPropertyChunksCoverLarge checks the plan's arithmetic over the whole
// int64 range without walking every chunk: the count is ⌈size/chunkSize⌉
// (at least 1), chunk i starts at (i-1)×chunkSize, every chunk but the last is
// full, and the last one ends exactly at size.
func TestPropertyChunksCoverLarge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.OneOf(rapid.Int64Range(0, math.MaxInt64), rapid.Int64Range(math.MaxInt64-1<<20, math.MaxInt64)).Draw(t, "size")
		chunkSize := rapid.OneOf(rapid.Int64Range(1, 1<<30), rapid.Int64Range(1, math.MaxInt64)).Draw(t, "chunkSize")
		n := ChunkCount(size, chunkSize)
		want := new(big.Int).Div(new(big.Int).Add(big.NewInt(size), big.NewInt(chunkSize-1)), big.NewInt(chunkSize))
		if size == 0 {
			want.SetInt64(1)
		}
		if !want.IsInt64() || int64(n) != want.Int64() {
			t.Fatalf("ChunkCount(%d, %d) = %d, want %s", size, chunkSize, n, want)
		}
		i := rapid.IntRange(1, n).Draw(t, "i")
		for _, i := range []int{1, i, n} {
			c := ChunkAt(size, chunkSize, i)
			if c.Index != i || c.Offset != int64(i-1)*chunkSize {
				t.Fatalf("ChunkAt(%d, %d, %d) = %+v", size, chunkSize, i, c)
			}
			if i < n && c.Length != chunkSize {
				t.Fatalf("ChunkAt(%d, %d, %d) = %+v, want a full chunk", size, chunkSize, i, c)
			}
			if i == n && (c.Length > chunkSize || c.Length < 0 || c.Offset+c.Length != size || (size > 0 && c.Length == 0)) {
				t.Fatalf("last ChunkAt(%d, %d, %d) = %+v, want it to end at %d", size, chunkSize, i, c, size)
			}
		}
	})
}

// TestPropertyChunkPlanKeepsToS3sParts: for any size up to 5 TB and any
// chunk size a route asks, the plan makes at most MaxChunks chunks; it
// keeps the route's size when that does, else takes the least whole MiB
// that does (one MiB less would make too many), and the Requested event
// records the route's size it raised.
func TestPropertyChunkPlanKeepsToS3sParts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.OneOf(rapid.Int64Range(0, 5<<40), rapid.Int64Range(5<<40-1<<30, 5<<40)).Draw(t, "size")
		want := rapid.OneOf(rapid.Int64Range(1, 64*MiB), rapid.Int64Range(5*MiB, 5<<30)).Draw(t, "want")
		got := PlanChunkSize(size, want)
		if n := ChunkCount(size, got); n > MaxChunks {
			t.Fatalf("PlanChunkSize(%d, %d) = %d: %d chunks", size, want, got, n)
		}
		switch {
		case ChunkCount(size, want) <= MaxChunks:
			if got != want {
				t.Fatalf("PlanChunkSize(%d, %d) = %d, want the route's size, which fits", size, want, got)
			}
		case got%MiB != 0 || got <= want || (got > MiB && ChunkCount(size, got-MiB) <= MaxChunks):
			t.Fatalf("PlanChunkSize(%d, %d) = %d, want the least whole MiB above it that fits", size, want, got)
		}
		r, err := plan(Requested{Size: size, ChunkSize: want, Destination: Destination{Type: "null"}})
		if err != nil {
			t.Fatal(err)
		}
		raised := int64(0)
		if got != want {
			raised = want
		}
		if r.ChunkSize != got || r.Chunks != ChunkCount(size, got) || r.ChunkSizeRaisedFrom != raised {
			t.Fatalf("plan: chunk size %d (raised from %d), %d chunks; want %d (from %d), %d", r.ChunkSize, r.ChunkSizeRaisedFrom, r.Chunks, got, raised, ChunkCount(size, got))
		}
	})
}

// TestPropertyBackoff: non-decreasing in the attempt, never above MaxDelay,
// positive, and exactly BaseDelay×2^(attempt-1) until it reaches MaxDelay.
func TestPropertyBackoff(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ns := rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(1, int64(time.Hour)), rapid.Int64Range(1, math.MaxInt64), rapid.Int64Range(math.MaxInt64-1<<40, math.MaxInt64))
		p := RetryPolicy{MaxAttempts: rapid.IntRange(0, 10).Draw(t, "maxAttempts"), BaseDelay: Duration(ns.Draw(t, "base")), MaxDelay: Duration(ns.Draw(t, "max"))}
		if p.MaxDelay != 0 && p.BaseDelay > p.MaxDelay {
			p.BaseDelay, p.MaxDelay = p.MaxDelay, p.BaseDelay
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("generated an invalid policy: %v", err)
		}
		base, limit := time.Duration(p.BaseDelay), time.Duration(p.MaxDelay)
		if base == 0 {
			base = time.Duration(DefaultRetryPolicy.BaseDelay)
		}
		if limit == 0 {
			limit = time.Duration(DefaultRetryPolicy.MaxDelay)
		}
		prev := time.Duration(0)
		for attempt := 1; attempt <= 100; attempt++ {
			d := p.Backoff(attempt)
			if d < prev || d > limit || d <= 0 {
				t.Fatalf("Backoff(%d) = %v after %v, max %v", attempt, d, prev, limit)
			}
			want := new(big.Int).Lsh(big.NewInt(int64(base)), uint(attempt-1))
			if want.Cmp(big.NewInt(int64(limit))) > 0 {
				want.SetInt64(int64(limit))
			}
			if int64(d) != want.Int64() {
				t.Fatalf("Backoff(%d) = %v, want %v (base %v, max %v)", attempt, d, time.Duration(want.Int64()), base, limit)
			}
			prev = d
		}
	})
}
