package advance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/fakeclock"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/store"
)

var (
	t0  = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	now = t0.Add(time.Hour)
)

// Transfer ids.
const (
	idA = "01JNZ0AAAAAAAAAAAAAAAAAAAA"
	idB = "01JNZ0BBBBBBBBBBBBBBBBBBBB"
	idC = "01JNZ0CCCCCCCCCCCCCCCCCCCC"
)

// request returns a planned request of n chunks of 10 bytes, the last one
// 5 bytes, for destination type dest.
func request(n int, dest string) domain.Requested {
	size := int64(n*10 - 5)
	return domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "ferry-outbound", Key: "outbound/a.csv", VersionID: "v1"},
		Route:       "r1",
		Destination: domain.Destination{Type: dest},
		Sender:      "X26ABC1",
		Recipient:   "X26ABC2",
		Size:        size,
		ChunkSize:   10,
		Chunks:      domain.ChunkCount(size, 10),
	}
}

func sent(r domain.Requested, i int) domain.ChunkSent {
	return domain.ChunkSent{Index: i, Bytes: r.Chunk(i).Length, Ref: fmt.Sprintf("etag-%d", i)}
}

type fixture struct {
	h     *Handler
	log   *memstore.Journal
	store *memstore.Store
	tr    *fakeTransport
	sched *memstore.Scheduler
	clock *fakeclock.Clock
}

func newFixture(budget Budget) *fixture {
	log := &memstore.Journal{}
	f := &fixture{
		log:   log,
		store: &memstore.Store{Log: log},
		tr:    &fakeTransport{log: log},
		sched: &memstore.Scheduler{},
		clock: fakeclock.New(now),
	}
	f.h = &Handler{
		Store:      f.store,
		Transports: map[string]Transport{"null": f.tr},
		Retries:    f.sched,
		Budget:     budget,
		Now:        f.clock.Now,
		Log:        slog.New(slog.DiscardHandler),
	}
	return f
}

// seed stores a history for id and returns the stream record of its head.
func (f *fixture) seed(t *testing.T, id, seqNo string, payloads ...domain.Payload) events.DynamoDBEventRecord {
	t.Helper()
	evs, states := f.store.Seed(id, t0, payloads...)
	last := len(evs) - 1
	return memstore.EventRecord(t, seqNo, evs[last], states[last])
}

func (f *fixture) handle(t *testing.T, records ...events.DynamoDBEventRecord) []string {
	t.Helper()
	return handleCtx(t, context.Background(), f.h, records...)
}

func handleCtx(t *testing.T, ctx context.Context, h *Handler, records ...events.DynamoDBEventRecord) []string {
	t.Helper()
	resp, err := h.Handle(ctx, events.DynamoDBEvent{Records: records})
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	return memstore.StreamFailures(resp)
}

// appended returns the types of id's events after version from.
func (f *fixture) appended(id string, from int) []domain.EventType {
	var ts []domain.EventType
	for _, e := range f.store.History(id)[from:] {
		ts = append(ts, e.Type())
	}
	return ts
}

// ops returns the journal entries that mention id.
func (f *fixture) ops(id string) []string {
	var out []string
	for _, e := range f.log.All() {
		if strings.Contains(e, " "+id) {
			out = append(out, strings.Replace(e, " "+id, "", 1))
		}
	}
	return out
}

func TestNewImageDecodes(t *testing.T) {
	r := request(3, "null")
	st := domain.State{}
	for i, p := range []domain.Payload{
		r,
		domain.Started{Ref: "upload-1"},
		sent(r, 1),
		domain.Failed{Kind: domain.KindUnavailable, Code: "503", Message: "down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(time.Minute)},
		domain.Retried{Attempt: 2},
	} {
		e := domain.Event{TransferID: idA, Seq: i + 1, At: t0.Add(time.Duration(i)*time.Second + 123456789), Payload: p}
		st = domain.Evolve(st, e)
		img := memstore.NewImage(t, e, st)
		if !store.IsEventImage(img) {
			t.Fatalf("%s: store.IsEventImage = false", e.Type())
		}
		gotE, gotS, err := store.DecodeImage(img)
		if err != nil {
			t.Fatalf("%s: %v", e.Type(), err)
		}
		if !reflect.DeepEqual(gotE, e) {
			t.Errorf("event:\n got %+v\nwant %+v", gotE, e)
		}
		if !reflect.DeepEqual(gotS, st) {
			t.Errorf("state:\n got %+v\nwant %+v", gotS, st)
		}
	}
}

// goldenID and goldenRequest are what testdata/dynamodb-stream-event.json
// holds: the stream records of a transfer's Requested (v1) and Started (v2)
// events, then an INSERT and a MODIFY of its view item.
const goldenID = "01JNZ0TESTTRANSFER00000000"

var goldenRequest = domain.Requested{
	Source:      domain.Source{Kind: "s3", Bucket: "ferry-outbound", Key: "outbound/report.csv", VersionID: "3HL4kqtJvjVBH40Nrjfkd", ETag: `"9b2cf535f27731c974343645a3985328"`},
	Route:       "to-partner",
	Destination: domain.Destination{Type: "null"},
	Sender:      "X26ABC1",
	Recipient:   "X26ABC2",
	Filename:    "report.csv",
	Size:        25,
	ChunkSize:   10,
	Chunks:      3,
	Retry:       domain.RetryPolicy{MaxAttempts: 5, BaseDelay: domain.Duration(2 * time.Second), MaxDelay: domain.Duration(15 * time.Minute)},
	Metadata:    map[string]string{"subject": "Monthly report"},
}

func TestGoldenStreamEvent(t *testing.T) {
	var ev events.DynamoDBEvent
	memstore.ReadJSON(t, "testdata/dynamodb-stream-event.json", &ev)
	if len(ev.Records) != 4 {
		t.Fatalf("got %d records, want 4", len(ev.Records))
	}
	at1 := time.Date(2025, 3, 1, 9, 0, 3, 0, time.UTC)
	want := []domain.Event{
		{TransferID: goldenID, Seq: 1, At: at1, Payload: goldenRequest},
		{TransferID: goldenID, Seq: 2, At: at1.Add(1500 * time.Millisecond), Payload: domain.Started{Ref: "upload-7"}},
	}
	wantState := domain.Fold(domain.State{}, want...)

	t.Run("decodes", func(t *testing.T) {
		for i, r := range ev.Records[:2] {
			if r.EventName != "INSERT" || r.Change.StreamViewType != "NEW_IMAGE" {
				t.Errorf("record %d: %s %s, want INSERT NEW_IMAGE", i, r.EventName, r.Change.StreamViewType)
			}
			e, st, err := store.DecodeImage(r.Change.NewImage)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if !reflect.DeepEqual(e, want[i]) {
				t.Errorf("record %d event:\n got %+v\nwant %+v", i, e, want[i])
			}
			if wantSt := domain.Fold(domain.State{}, want[:i+1]...); !reflect.DeepEqual(st, wantSt) {
				t.Errorf("record %d state:\n got %+v\nwant %+v", i, st, wantSt)
			}
		}
		for i, r := range ev.Records[2:] {
			if store.IsEventImage(r.Change.NewImage) {
				t.Errorf("view record %d is taken for an event image", i+2)
			}
		}
		if got, want := ev.Records[1].Change.SequenceNumber, "4421584500000000017450439092"; got != want {
			t.Errorf("sequence number = %s, want %s", got, want)
		}
	})

	t.Run("the helper writes the same image", func(t *testing.T) {
		img := memstore.NewImage(t, want[1], wantState)
		golden := ev.Records[1].Change.NewImage
		for k, v := range golden {
			if k == "wid" {
				continue
			}
			if !reflect.DeepEqual(img[k], v) {
				t.Errorf("attribute %s: helper %v, golden %v", k, img[k], v)
			}
		}
		if len(img) != len(golden) {
			t.Errorf("helper writes %d attributes, golden has %d", len(img), len(golden))
		}
	})

	t.Run("handled", func(t *testing.T) {
		f := newFixture(Budget{MaxChunks: 8})
		f.store.Seed(goldenID, at1, want[0].Payload, want[1].Payload)
		if got := f.handle(t, ev.Records...); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		if got, want := f.ops(goldenID), []string{
			"send 1", "append ChunkSent", "send 2", "append ChunkSent", "send 3", "append ChunkSent",
			"complete", "append Delivered",
		}; !slices.Equal(got, want) {
			t.Errorf("ops = %q, want %q", got, want)
		}
		if n := f.store.Loads(goldenID); n != 1 {
			t.Errorf("loaded %d times, want 1 (one wake for the newest record)", n)
		}
	})
}

func TestStaleRecordIgnored(t *testing.T) {
	f := newFixture(Budget{})
	r := request(3, "null")
	evs, states := f.store.Seed(idA, t0, r, domain.Started{Ref: "u"}, sent(r, 1))
	got := f.handle(t,
		memstore.EventRecord(t, "101", evs[0], states[0]),
		memstore.EventRecord(t, "102", evs[1], states[1]),
	)
	if len(got) != 0 {
		t.Errorf("failures: %v, want none", got)
	}
	if ops := f.log.All(); len(ops) != 0 {
		t.Errorf("a stale record caused %q, want nothing", ops)
	}
	if n := f.store.Loads(idA); n != 1 {
		t.Errorf("loaded %d times, want 1", n)
	}
}

func TestNothingToDo(t *testing.T) {
	r := request(1, "null")
	ackd := r
	ackd.ExpectAck = true
	for _, tt := range []struct {
		name    string
		history []domain.Payload
	}{
		{"delivered", []domain.Payload{r, domain.Started{}, sent(r, 1), domain.Delivered{Location: "null://x"}}},
		{"awaiting acknowledgement", []domain.Payload{ackd, domain.Started{}, sent(ackd, 1), domain.Delivered{Location: "null://x"}}},
		{"failed for good", []domain.Payload{r, domain.Failed{Kind: domain.KindInvalid, Message: "no", Attempt: 1}}},
		{"cancelled", []domain.Payload{r, domain.Cancelled{Actor: "op"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Budget{})
			rec := f.seed(t, idA, "101", tt.history...)
			if got := f.handle(t, rec); len(got) != 0 {
				t.Errorf("failures: %v", got)
			}
			if ops := f.log.All(); len(ops) != 0 {
				t.Errorf("ops = %q, want none", ops)
			}
			if calls := f.sched.Retries(); len(calls) != 0 {
				t.Errorf("scheduled %v, want nothing", calls)
			}
		})
	}
}

func TestBeginSendComplete(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 8})
	r := request(3, "null")
	rec := f.seed(t, idA, "101", r)
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if got, want := f.ops(idA), []string{
		"begin", "append Started",
		"send 1", "append ChunkSent", "send 2", "append ChunkSent", "send 3", "append ChunkSent",
		"complete", "append Delivered",
	}; !slices.Equal(got, want) {
		t.Errorf("ops = %q\nwant %q", got, want)
	}
	hist := f.store.History(idA)
	wantPayloads := []domain.Payload{
		domain.Started{Ref: "upload-" + idA},
		sent(r, 1), sent(r, 2), sent(r, 3),
		domain.Delivered{Ref: "final-" + idA, Location: "null://" + idA},
	}
	for i, want := range wantPayloads {
		e := hist[i+1]
		if !reflect.DeepEqual(e.Payload, want) || e.Seq != i+2 || !e.At.Equal(now) {
			t.Errorf("event %d = v%d %+v at %v, want v%d %+v at %v", i+2, e.Seq, e.Payload, e.At, i+2, want, now)
		}
	}
	st := domain.Fold(domain.State{}, hist...)
	if st.Status != domain.StatusDelivered || st.BytesSent != r.Size {
		t.Errorf("status %s, %d bytes sent; want %s, %d", st.Status, st.BytesSent, domain.StatusDelivered, r.Size)
	}
}

func TestChunkBudget(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 2})
	r := request(5, "null")
	rec := f.seed(t, idA, "101", r, domain.Started{Ref: "u"})
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	want := []string{"send 1", "append ChunkSent", "send 2", "append ChunkSent"}
	if got := f.ops(idA); !slices.Equal(got, want) {
		t.Fatalf("first wake: ops = %q, want %q", got, want)
	}

	// The record of the last ChunkSent wakes the next step.
	hist := f.store.History(idA)
	head := hist[len(hist)-1]
	rec = memstore.EventRecord(t, "104", head, domain.Fold(domain.State{}, hist...))
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	want = append(want, "send 3", "append ChunkSent", "send 4", "append ChunkSent")
	if got := f.ops(idA); !slices.Equal(got, want) {
		t.Errorf("second wake: ops = %q, want %q", got, want)
	}
}

func TestDefaultChunkBudget(t *testing.T) {
	f := newFixture(Budget{})
	r := request(20, "null")
	rec := f.seed(t, idA, "101", r, domain.Started{Ref: "u"})
	f.handle(t, rec)
	if got := f.store.History(idA); len(got) != 2+8 {
		t.Errorf("%d chunks sent in one wake, want the default budget of 8", len(got)-2)
	}
}

func TestTimeBudget(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 100, MaxTime: time.Minute})
	f.tr.hook = func(context.Context, string, string, int) { f.clock.Advance(40 * time.Second) }
	r := request(5, "null")
	rec := f.seed(t, idA, "101", r, domain.Started{Ref: "u"})
	f.handle(t, rec)
	want := []string{"send 1", "append ChunkSent", "send 2", "append ChunkSent"}
	if got := f.ops(idA); !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q (stop once a minute has passed)", got, want)
	}
}

func TestTransportFailure(t *testing.T) {
	unavailable := &domain.Error{Kind: domain.KindUnavailable, Code: "503", Message: "null upload chunk 2: HTTP 503"}
	tests := []struct {
		name          string
		err           error
		wantKind      domain.Kind
		wantCode      string
		wantRetryable bool
	}{
		{"unavailable is retried", unavailable, domain.KindUnavailable, "503", true},
		{"wrapped unavailable is retried", fmt.Errorf("send: %w", unavailable), domain.KindUnavailable, "503", true},
		{"unauthorized is final", &domain.Error{Kind: domain.KindUnauthorized, Code: "403", Message: "denied"}, domain.KindUnauthorized, "403", false},
		{"unclassified is internal and final", errors.New("boom"), domain.KindInternal, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Budget{MaxChunks: 8})
			f.tr.fail = func(op, _ string, chunk int) error {
				if op == "send" && chunk == 2 {
					return tt.err
				}
				return nil
			}
			r := request(4, "null")
			rec := f.seed(t, idA, "101", r, domain.Started{Ref: "u"})
			if got := f.handle(t, rec); len(got) != 0 {
				t.Fatalf("failures: %v; a transport failure is recorded, not a batch failure", got)
			}
			want := []string{"send 1", "append ChunkSent", "send 2", "append Failed"}
			if got := f.ops(idA); !slices.Equal(got, want) {
				t.Errorf("ops = %q, want %q (no transport call after a failure)", got, want)
			}
			hist := f.store.History(idA)
			fl, ok := hist[len(hist)-1].Payload.(domain.Failed)
			if !ok {
				t.Fatalf("last event is %T, want Failed", hist[len(hist)-1].Payload)
			}
			if fl.Kind != tt.wantKind || fl.Code != tt.wantCode || fl.Retryable != tt.wantRetryable || fl.Attempt != 1 {
				t.Errorf("Failed = %+v, want kind %s code %q retryable %t attempt 1", fl, tt.wantKind, tt.wantCode, tt.wantRetryable)
			}
			if tt.wantRetryable {
				if want := now.Add(domain.DefaultRetryPolicy.Delay(idA, 1)); !fl.NextAttemptAt.Equal(want) {
					t.Errorf("next attempt at %v, want %v", fl.NextAttemptAt, want)
				}
			} else if !fl.NextAttemptAt.IsZero() {
				t.Errorf("final failure has a next attempt at %v", fl.NextAttemptAt)
			}
			if calls := f.sched.Retries(); len(calls) != 0 {
				t.Errorf("scheduled %v in the failing wake; the Failed record's wake does that", calls)
			}
		})
	}
}

// abortingTransport is a fakeTransport that can clean up after a transfer
// that failed for good, as the SFTP transport removes its temporary file.
type abortingTransport struct{ *fakeTransport }

func (a abortingTransport) Abort(_ context.Context, t domain.State) error {
	a.log.Add("abort %s", t.ID)
	return nil
}

// TestFinalFailureAborts: a transport that can clean up is asked to once
// the transfer has failed for good, and not after a failure that will be
// retried.
func TestFinalFailureAborts(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want []string
	}{
		{"final", domain.Errorf(domain.KindUnauthorized, "denied"), []string{"send 1", "append Failed", "abort"}},
		{"retryable", domain.Errorf(domain.KindUnavailable, "down"), []string{"send 1", "append Failed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(Budget{MaxChunks: 8})
			f.h.Transports["null"] = abortingTransport{f.tr}
			f.tr.fail = func(op, _ string, _ int) error {
				if op == "send" {
					return tt.err
				}
				return nil
			}
			rec := f.seed(t, idA, "101", request(2, "null"), domain.Started{Ref: "u"})
			if got := f.handle(t, rec); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			if got := f.ops(idA); !slices.Equal(got, tt.want) {
				t.Errorf("ops = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBeginAndCompleteFailures(t *testing.T) {
	down := domain.Errorf(domain.KindUnavailable, "peer down")
	for _, tt := range []struct {
		op      string
		history func(r domain.Requested) []domain.Payload
		want    []string
	}{
		{"begin", func(r domain.Requested) []domain.Payload { return []domain.Payload{r} }, []string{"begin", "append Failed"}},
		{"complete", func(r domain.Requested) []domain.Payload {
			return []domain.Payload{r, domain.Started{}, sent(r, 1)}
		}, []string{"complete", "append Failed"}},
	} {
		t.Run(tt.op, func(t *testing.T) {
			f := newFixture(Budget{})
			f.tr.fail = func(op, _ string, _ int) error {
				if op == tt.op {
					return down
				}
				return nil
			}
			rec := f.seed(t, idA, "101", tt.history(request(1, "null"))...)
			f.handle(t, rec)
			if got := f.ops(idA); !slices.Equal(got, tt.want) {
				t.Errorf("ops = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRetryingHeadSchedulesRetry(t *testing.T) {
	f := newFixture(Budget{})
	r := request(3, "null")
	next := now.Add(40 * time.Second)
	rec := f.seed(t, idA, "101", r, domain.Started{}, sent(r, 1),
		domain.Failed{Kind: domain.KindUnavailable, Message: "down", Retryable: true, Attempt: 1, NextAttemptAt: next})
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if got, want := f.sched.Retries(), []memstore.Scheduled{{ID: idA, Version: 4, At: next}}; !reflect.DeepEqual(got, want) {
		t.Errorf("scheduled %v, want %v", got, want)
	}
	if ops := f.log.All(); len(ops) != 0 {
		t.Errorf("ops = %q, want none while retrying", ops)
	}

	t.Run("scheduler error is a batch item failure", func(t *testing.T) {
		f.sched.Err = domain.Errorf(domain.KindUnavailable, "sqs down")
		if got := f.handle(t, rec); !slices.Equal(got, []string{"101"}) {
			t.Errorf("failures = %v, want [101]", got)
		}
	})
}

func TestUnknownDestination(t *testing.T) {
	f := newFixture(Budget{})
	rec := f.seed(t, idA, "101", request(2, "carrier-pigeon"))
	if got := f.handle(t, rec); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if got, want := f.ops(idA), []string{"append Failed"}; !slices.Equal(got, want) {
		t.Fatalf("ops = %q, want %q", got, want)
	}
	hist := f.store.History(idA)
	fl := hist[len(hist)-1].Payload.(domain.Failed)
	if fl.Retryable || fl.Kind != domain.KindInvalid || !strings.Contains(fl.Message, `"carrier-pigeon"`) {
		t.Errorf("Failed = %+v, want final, invalid, naming the destination type", fl)
	}
	if st := domain.Fold(domain.State{}, hist...); st.Status != domain.StatusFailed {
		t.Errorf("status = %s, want %s", st.Status, domain.StatusFailed)
	}
}

func TestAppendConflict(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 8})
	r := request(3, "null")
	rec := f.seed(t, idA, "101", r, domain.Started{Ref: "u"})
	// Another worker records chunk 1 while this one is sending it.
	f.tr.hook = func(_ context.Context, op, id string, chunk int) {
		if op == "send" && chunk == 1 {
			f.store.Put(domain.Event{TransferID: id, Seq: 3, At: now, Payload: sent(r, 1)})
		}
	}
	if got := f.handle(t, rec); len(got) != 0 {
		t.Errorf("failures: %v, want none: the other worker's record wakes the next step", got)
	}
	if got, want := f.ops(idA), []string{"send 1"}; !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q (stop after losing the race)", got, want)
	}

	t.Run("Step returns no error", func(t *testing.T) {
		f := newFixture(Budget{})
		f.store.AppendErr = func(prev domain.State, _ []domain.Event) error {
			return fmt.Errorf("append %s v%d: %w", prev.ID, prev.Version+1, store.ErrConflict)
		}
		f.store.Seed(idA, t0, r)
		st, _ := f.store.Load(context.Background(), idA)
		if err := f.h.Step(context.Background(), st); err != nil {
			t.Errorf("Step = %v, want nil", err)
		}
	})
}

func TestAppendErrorIsBatchItemFailure(t *testing.T) {
	f := newFixture(Budget{})
	f.store.AppendErr = func(domain.State, []domain.Event) error { return domain.Errorf(domain.KindUnavailable, "throttled") }
	rec := f.seed(t, idA, "101", request(1, "null"))
	if got := f.handle(t, rec); !slices.Equal(got, []string{"101"}) {
		t.Errorf("failures = %v, want [101]", got)
	}
}

func TestLoadErrorFailsOnlyThatRecord(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 1})
	r := request(2, "null")
	recA := f.seed(t, idA, "101", r, domain.Started{})
	recB := f.seed(t, idB, "201", r, domain.Started{})
	recC := f.seed(t, idC, "301", r, domain.Started{})
	f.store.LoadErr = func(id string) error {
		if id == idB {
			return domain.Errorf(domain.KindUnavailable, "throttled")
		}
		return nil
	}
	if got := f.handle(t, recA, recB, recC); !slices.Equal(got, []string{"201"}) {
		t.Errorf("failures = %v, want [201]", got)
	}
	for _, id := range []string{idA, idC} {
		if got, want := f.ops(id), []string{"send 1", "append ChunkSent"}; !slices.Equal(got, want) {
			t.Errorf("%s: ops = %q, want %q", id, got, want)
		}
	}
	if got := f.ops(idB); len(got) != 0 {
		t.Errorf("%s: ops = %q, want none", idB, got)
	}
}

func TestUndecodableRecord(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 1})
	r := request(2, "null")
	recA := f.seed(t, idA, "101", r, domain.Started{})
	evsB, statesB := f.store.Seed(idB, t0, r, domain.Started{})

	badType := memstore.NewImage(t, evsB[1], statesB[1])
	badType["type"] = events.NewStringAttribute("Teleported")
	badState := memstore.NewImage(t, evsB[1], statesB[1])
	badState["state"] = events.NewStringAttribute("{not json")
	badSeq := memstore.NewImage(t, evsB[1], statesB[1])
	badSeq["seq"] = events.NewNumberAttribute("two")

	got := f.handle(t, memstore.Insert("201", badType), recA, memstore.Insert("202", badState), memstore.Insert("203", badSeq))
	if want := []string{"201", "202", "203"}; !slices.Equal(got, want) {
		t.Errorf("failures = %v, want %v", got, want)
	}
	if got, want := f.ops(idA), []string{"send 1", "append ChunkSent"}; !slices.Equal(got, want) {
		t.Errorf("%s: ops = %q, want %q", idA, got, want)
	}
	if n := f.store.Loads(idB); n != 0 {
		t.Errorf("loaded %s %d times from undecodable records", idB, n)
	}
}

func TestOtherRecordsIgnored(t *testing.T) {
	f := newFixture(Budget{})
	r := request(1, "null")
	evs, states := f.store.Seed(idA, t0, r)
	img := memstore.NewImage(t, evs[0], states[0])

	modify := memstore.Insert("102", img)
	modify.EventName = string(events.DynamoDBOperationTypeModify)
	remove := memstore.Insert("103", nil)
	remove.EventName = string(events.DynamoDBOperationTypeRemove)
	remove.Change.Keys = map[string]events.DynamoDBAttributeValue{"pk": img["pk"], "sk": img["sk"]}
	view := memstore.Insert("104", map[string]events.DynamoDBAttributeValue{
		"pk":     events.NewStringAttribute("T#" + idA),
		"sk":     events.NewStringAttribute("VIEW"),
		"seq":    events.NewNumberAttribute("1"),
		"status": events.NewStringAttribute("IN_PROGRESS"),
	})
	if got := f.handle(t, modify, remove, view); len(got) != 0 {
		t.Errorf("failures: %v, want none", got)
	}
	if n := f.store.Loads(idA); n != 0 {
		t.Errorf("loaded %d times, want 0", n)
	}
}

func TestSeveralRecordsOfOneTransferWakeOnce(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 1})
	r := request(3, "null")
	evs, states := f.store.Seed(idA, t0, r, domain.Started{}, sent(r, 1))
	rec := func(i int) events.DynamoDBEventRecord {
		return memstore.EventRecord(t, fmt.Sprintf("10%d", i+1), evs[i], states[i])
	}
	// Out of order, as a parallelization factor above 1 allows.
	if got := f.handle(t, rec(0), rec(2), rec(1)); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if n := f.store.Loads(idA); n != 1 {
		t.Errorf("loaded %d times, want 1", n)
	}
	if got, want := f.ops(idA), []string{"send 2", "append ChunkSent"}; !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q (one wake, on the newest record)", got, want)
	}

	t.Run("a failed wake reports the newest record", func(t *testing.T) {
		f := newFixture(Budget{})
		evs, states := f.store.Seed(idA, t0, r, domain.Started{})
		f.store.LoadErr = func(id string) error {
			if id == idA {
				return domain.Errorf(domain.KindUnavailable, "throttled")
			}
			return nil
		}
		got := f.handle(t, memstore.EventRecord(t, "102", evs[1], states[1]), memstore.EventRecord(t, "101", evs[0], states[0]))
		if !slices.Equal(got, []string{"102"}) {
			t.Errorf("failures = %v, want [102]", got)
		}
	})
}

func TestCancelledDuringTransportCall(t *testing.T) {
	// The transport sees the context end mid-call and fails as an AWS
	// client does: an unavailable error wrapping context.Canceled.
	setup := func(t *testing.T) (*fixture, context.Context, domain.State, events.DynamoDBEventRecord) {
		f := newFixture(Budget{MaxChunks: 8})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		f.tr.hook = func(_ context.Context, op string, _ string, chunk int) {
			if op == "send" && chunk == 2 {
				cancel()
			}
		}
		f.tr.fail = func(op, _ string, chunk int) error {
			if op == "send" && chunk == 2 {
				return &domain.Error{Kind: domain.KindUnavailable, Message: "upload part 2: canceled", Err: context.Canceled}
			}
			return nil
		}
		r := request(3, "null")
		rec := f.seed(t, idA, "101", r, domain.Started{})
		st, err := f.store.Load(context.Background(), idA)
		if err != nil {
			t.Fatal(err)
		}
		return f, ctx, st, rec
	}

	t.Run("Step", func(t *testing.T) {
		f, ctx, st, _ := setup(t)
		err := f.h.Step(ctx, st)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Step = %v, want context.Canceled", err)
		}
		if got, want := f.ops(idA), []string{"send 1", "append ChunkSent", "send 2"}; !slices.Equal(got, want) {
			t.Errorf("ops = %q, want %q (nothing recorded for the cut call)", got, want)
		}
	})

	t.Run("Handle", func(t *testing.T) {
		f, ctx, _, rec := setup(t)
		if got := handleCtx(t, ctx, f.h, rec); !slices.Equal(got, []string{"101"}) {
			t.Errorf("failures = %v, want [101]", got)
		}
		hist := f.store.History(idA)
		for _, e := range hist {
			if e.Type() == domain.TypeFailed {
				t.Errorf("a cancelled call was recorded as %+v", e.Payload)
			}
		}
	})
}

func TestTransfersOfABatchAdvanceConcurrently(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 1})
	f.h.Concurrency = 3
	var arrived sync.WaitGroup
	arrived.Add(3)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	f.tr.hook = func(context.Context, string, string, int) {
		arrived.Done()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
	}
	r := request(2, "null")
	recs := []events.DynamoDBEventRecord{
		f.seed(t, idA, "101", r, domain.Started{}),
		f.seed(t, idB, "201", r, domain.Started{}),
		f.seed(t, idC, "301", r, domain.Started{}),
	}
	start := time.Now()
	if got := f.handle(t, recs...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	select {
	case <-all:
	default:
		t.Fatal("the three transfers were never in their transport calls at once")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v: transfers were advanced one after another", d)
	}
}

func TestPanicFailsOnlyItsRecord(t *testing.T) {
	f := newFixture(Budget{MaxChunks: 1})
	f.tr.hook = func(_ context.Context, _ string, id string, _ int) {
		if id == idA {
			panic("transport bug")
		}
	}
	r := request(2, "null")
	recA := f.seed(t, idA, "101", r, domain.Started{})
	recB := f.seed(t, idB, "201", r, domain.Started{})
	if got := f.handle(t, recA, recB); !slices.Equal(got, []string{"101"}) {
		t.Errorf("failures = %v, want [101]", got)
	}
	if got, want := f.ops(idB), []string{"send 1", "append ChunkSent"}; !slices.Equal(got, want) {
		t.Errorf("%s: ops = %q, want %q", idB, got, want)
	}
}
