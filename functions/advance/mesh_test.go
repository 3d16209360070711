package advance

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
)

const meshMsg = "20250301085900123456_A1B2C3"

// inbound returns the request meshpoll makes for a MESH message of n
// chunks: source-chunked, acknowledged at the source once delivered.
func inbound(n int) domain.Requested {
	return domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: "X26ABC1", MessageID: meshMsg},
		Route:       "mesh-inbound",
		Destination: domain.Destination{Type: "null"},
		Sender:      "X26ABC2",
		Recipient:   "X26ABC1",
		Filename:    meshMsg + ".dat",
		ChunkSize:   0,
		Chunks:      n,
		AckSource:   true,
	}
}

// delivered is the history of r delivered in one chunk of 5 bytes.
func delivered(r domain.Requested) []domain.Payload {
	return []domain.Payload{r, domain.Started{}, domain.ChunkSent{Index: 1, Bytes: 5, Ref: "etag-1"}, domain.Delivered{Location: "null://x"}}
}

// withAcknowledger gives f an Acknowledger for MESH sources.
func (f *fixture) withAcknowledger() *fakeAcknowledger {
	a := &fakeAcknowledger{log: f.log}
	f.h.Acknowledgers = map[string]Acknowledger{"mesh": a}
	return a
}

func TestAcknowledgeSource(t *testing.T) {
	f := newFixture(Budget{})
	a := f.withAcknowledger()
	rec := f.seed(t, idA, "101", delivered(inbound(1))...)
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if got, want := f.ops(idA), []string{"ack", "append Acknowledged"}; !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q", got, want)
	}
	if calls := a.acknowledged(); len(calls) != 1 || calls[0].Version != 4 || calls[0].Request.Source.MessageID != meshMsg {
		t.Errorf("Acknowledge(%+v), want the delivered transfer at v4", calls)
	}
	if got, want := f.appended(idA, 4), []domain.EventType{domain.TypeAcknowledged}; !slices.Equal(got, want) {
		t.Errorf("appended %v, want %v", got, want)
	}
	hist := f.store.History(idA)
	last := hist[len(hist)-1]
	if want := (domain.Acknowledged{By: "ferry", Ref: meshMsg}); last.Payload != want || last.Seq != 5 || !last.At.Equal(now) {
		t.Errorf("last event v%d %+v at %v, want v5 %+v at %v", last.Seq, last.Payload, last.At, want, now)
	}
	if st := domain.Fold(domain.State{}, hist...); st.Status != domain.StatusAcknowledged {
		t.Errorf("status = %s, want %s", st.Status, domain.StatusAcknowledged)
	}
	if tracks := f.sched.Tracks(); len(tracks) != 0 {
		t.Errorf("tracking scheduled %v, want none", tracks)
	}
}

func TestAcknowledgeSourceFails(t *testing.T) {
	t.Run("retryable: nothing recorded, a tracking check scheduled", func(t *testing.T) {
		for _, tt := range []struct {
			interval time.Duration
			want     time.Duration
		}{{0, time.Minute}, {30 * time.Second, 30 * time.Second}} {
			f := newFixture(Budget{})
			f.h.TrackInterval = tt.interval
			a := f.withAcknowledger()
			a.err = fmt.Errorf("acknowledge: %w", domain.Errorf(domain.KindUnavailable, "mesh acknowledge: HTTP 503"))
			rec := f.seed(t, idA, "101", delivered(inbound(1))...)
			if got := f.handle(t, rec); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			if got, want := f.ops(idA), []string{"ack"}; !slices.Equal(got, want) {
				t.Errorf("ops = %q, want %q", got, want)
			}
			if got, want := f.sched.Tracks(), []memstore.Scheduled{{ID: idA, Version: 4, At: now.Add(tt.want)}}; !reflect.DeepEqual(got, want) {
				t.Errorf("interval %v: tracking scheduled %v, want %v", tt.interval, got, want)
			}
			if calls := f.sched.Retries(); len(calls) != 0 {
				t.Errorf("retry scheduled %v, want none", calls)
			}
		}
	})

	t.Run("retryable, and the schedule fails: batch item failure", func(t *testing.T) {
		f := newFixture(Budget{})
		f.withAcknowledger().err = domain.Errorf(domain.KindUnavailable, "down")
		f.sched.Err = domain.Errorf(domain.KindUnavailable, "sqs down")
		rec := f.seed(t, idA, "101", delivered(inbound(1))...)
		if got := f.handle(t, rec); !slices.Equal(got, []string{"101"}) {
			t.Errorf("failures = %v, want [101]", got)
		}
	})

	for _, tt := range []struct {
		name     string
		ack      bool
		err      error
		wantKind domain.Kind
		wantCode string
	}{
		{"not retryable: failed for good", true, &domain.Error{Kind: domain.KindUnauthorized, Code: "403", Message: "mesh acknowledge: HTTP 403"}, domain.KindUnauthorized, "403"},
		{"no acknowledger for the source: failed for good", false, nil, domain.KindInvalid, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Budget{})
			if tt.ack {
				f.withAcknowledger().err = tt.err
			}
			rec := f.seed(t, idA, "101", delivered(inbound(1))...)
			if got := f.handle(t, rec); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			hist := f.store.History(idA)
			if len(hist) != 5 {
				t.Fatalf("%d events, want a Failed after the 4", len(hist))
			}
			fl, ok := hist[4].Payload.(domain.Failed)
			if !ok {
				t.Fatalf("last event is %T, want Failed", hist[4].Payload)
			}
			if fl.Kind != tt.wantKind || fl.Code != tt.wantCode || fl.Retryable || !fl.NextAttemptAt.IsZero() {
				t.Errorf("Failed = %+v, want final %s/%q", fl, tt.wantKind, tt.wantCode)
			}
			if st := domain.Fold(domain.State{}, hist...); st.Status != domain.StatusFailed {
				t.Errorf("status = %s, want %s", st.Status, domain.StatusFailed)
			}
			if tracks := f.sched.Tracks(); len(tracks) != 0 {
				t.Errorf("tracking scheduled %v, want none", tracks)
			}
		})
	}
}

func TestDeliveredAwaitingAckSchedulesTracking(t *testing.T) {
	r := request(1, "null")
	r.ExpectAck = true
	f := newFixture(Budget{})
	f.h.TrackInterval = 2 * time.Second
	rec := f.seed(t, idA, "101", r, domain.Started{}, sent(r, 1), domain.Delivered{Location: "null://x"})
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if got, want := f.sched.Tracks(), []memstore.Scheduled{{ID: idA, Version: 4, At: now.Add(2 * time.Second)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("tracking scheduled %v, want %v", got, want)
	}
	if ops := f.log.All(); len(ops) != 0 {
		t.Errorf("ops = %q, want none", ops)
	}

	t.Run("scheduler error is a batch item failure", func(t *testing.T) {
		f := newFixture(Budget{})
		f.sched.Err = domain.Errorf(domain.KindUnavailable, "sqs down")
		rec := f.seed(t, idA, "101", r, domain.Started{}, sent(r, 1), domain.Delivered{Location: "null://x"})
		if got := f.handle(t, rec); !slices.Equal(got, []string{"101"}) {
			t.Errorf("failures = %v, want [101]", got)
		}
	})
}

func TestSourceChunkedTransfer(t *testing.T) {
	f := newFixture(Budget{})
	f.withAcknowledger()
	lengths := map[int]int64{1: 7, 2: 11, 3: 0}
	f.tr.bytes = func(i int) int64 { return lengths[i] }
	r := inbound(3)
	rec := f.seed(t, idA, "101", r)
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if got, want := f.ops(idA), []string{
		"begin", "append Started",
		"send 1", "append ChunkSent", "send 2", "append ChunkSent", "send 3", "append ChunkSent",
		"complete", "append Delivered",
		"ack", "append Acknowledged",
	}; !slices.Equal(got, want) {
		t.Errorf("ops = %q\nwant %q", got, want)
	}
	hist := f.store.History(idA)
	for i := 1; i <= 3; i++ {
		e := hist[1+i]
		if want := (domain.ChunkSent{Index: i, Bytes: lengths[i], Ref: fmt.Sprintf("etag-%d", i)}); e.Payload != want {
			t.Errorf("event v%d = %+v, want %+v", e.Seq, e.Payload, want)
		}
	}
	st := domain.Fold(domain.State{}, hist...)
	if st.BytesSent != 18 || st.ChunksSent != 3 || st.Status != domain.StatusAcknowledged {
		t.Errorf("%d bytes in %d chunks, status %s; want 18 in 3, %s", st.BytesSent, st.ChunksSent, st.Status, domain.StatusAcknowledged)
	}
}

// TestHeldChunks: a chunk the destination holds (an S3 upload gathering
// small MESH chunks into one part) is recorded as held, and the next chunk
// is sent with the state that says which chunks are held.
func TestHeldChunks(t *testing.T) {
	f := newFixture(Budget{})
	f.withAcknowledger()
	lengths := map[int]int64{1: 7, 2: 11, 3: 0, 4: 5}
	f.tr.bytes = func(i int) int64 { return lengths[i] }
	type seen struct {
		from  int
		bytes int64
	}
	var given []seen
	f.tr.held = func(st domain.State, i int) bool {
		given = append(given, seen{st.HeldFrom, st.HeldBytes})
		return i <= 2
	}
	rec := f.seed(t, idA, "101", inbound(4))
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if want := []seen{{0, 0}, {1, 7}, {1, 18}, {0, 0}}; !slices.Equal(given, want) {
		t.Errorf("held runs the transport was given for chunks 1..4 = %v, want %v", given, want)
	}
	hist := f.store.History(idA)
	for i, want := range []domain.ChunkSent{
		{Index: 1, Bytes: 7, Held: true},
		{Index: 2, Bytes: 11, Held: true},
		{Index: 3, Bytes: 0, Ref: "etag-3"},
		{Index: 4, Bytes: 5, Ref: "etag-4"},
	} {
		if e := hist[2+i]; e.Payload != want {
			t.Errorf("event v%d = %+v, want %+v", e.Seq, e.Payload, want)
		}
	}
	st := domain.Fold(domain.State{}, hist...)
	if st.Status != domain.StatusAcknowledged || st.BytesSent != 23 || st.HeldFrom != 0 {
		t.Errorf("status %s, %d bytes, held from %d; want %s, 23, none held", st.Status, st.BytesSent, st.HeldFrom, domain.StatusAcknowledged)
	}
}

func TestOneTrackingChainPerDelivery(t *testing.T) {
	// The wake that delivers and the wake of the Delivered record must not
	// both schedule a tracking check: each check reschedules itself, so two
	// would poll the far end twice as often until the acknowledgement.
	awaiting := request(1, "null")
	awaiting.ExpectAck = true
	ackSource := inbound(1)
	for _, tt := range []struct {
		name    string
		r       domain.Requested
		ackErr  error
		wantOps []string
	}{
		{"awaiting the far end's acknowledgement", awaiting, nil, []string{"send 1", "append ChunkSent", "complete", "append Delivered"}},
		{"acknowledging the source fails for now", ackSource, domain.Errorf(domain.KindUnavailable, "down"), []string{"send 1", "append ChunkSent", "complete", "append Delivered", "ack", "ack"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Budget{})
			f.withAcknowledger().err = tt.ackErr
			f.tr.bytes = func(int) int64 { return 5 }
			rec := f.seed(t, idA, "101", tt.r, domain.Started{})
			if got := f.handle(t, rec); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			if tracks := f.sched.Tracks(); len(tracks) != 0 {
				t.Errorf("the delivering wake scheduled %v; the Delivered record's wake does that", tracks)
			}
			// The Delivered record wakes the next step.
			hist := f.store.History(idA)
			f.clock.Advance(time.Second)
			if got := f.handle(t, memstore.EventRecord(t, "104", hist[len(hist)-1], domain.Fold(domain.State{}, hist...))); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			if got, want := f.sched.Tracks(), []memstore.Scheduled{{ID: idA, Version: 4, At: now.Add(time.Second + time.Minute)}}; !reflect.DeepEqual(got, want) {
				t.Errorf("tracking scheduled %v, want %v", got, want)
			}
			if got := f.ops(idA); !slices.Equal(got, tt.wantOps) {
				t.Errorf("ops = %q, want %q", got, tt.wantOps)
			}
		})
	}
}
