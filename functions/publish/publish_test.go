package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// Transfer ids (ULIDs, as the schema requires).
const (
	idA = "01JNZ0AAAAAAAAAAAAAAAAAAAA"
	idB = "01JNZ0BBBBBBBBBBBBBBBBBBBB"
	idC = "01JNZ0CCCCCCCCCCCCCCCCCCCC"
)

// request is a routed request of 25 bytes in chunks of 10 (3 chunks).
func request(expectAck bool) domain.Requested {
	return domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "ferry-outbound", Key: "outbound/a.csv", VersionID: "v1"},
		Route:       "to-partner",
		Destination: domain.Destination{Type: "null"},
		Sender:      "X26ABC1",
		Recipient:   "X26ABC2",
		Workflow:    "MONTHLY_RETURN",
		Filename:    "a.csv",
		Size:        25,
		ChunkSize:   10,
		ExpectAck:   expectAck,
		// as the attachments of one email share
		CorrelationID: "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g01",
	}
}

// recorded is an event as the stream delivers it: the record, and the
// event and state it carries.
type recorded struct {
	rec   events.DynamoDBEventRecord
	event domain.Event
	state domain.State
}

// decide runs commands on a new transfer id through domain.Decide, an hour
// apart, and returns the stream records of the resulting events, their
// sequence numbers starting at seqBase.
func decide(t *testing.T, id string, seqBase int, cmds ...domain.Command) []recorded {
	t.Helper()
	st := domain.State{ID: id}
	var out []recorded
	for i, c := range cmds {
		evs, err := domain.Decide(st, c, t0.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatalf("%s: %T: %v", id, c, err)
		}
		for _, e := range evs {
			st = domain.Evolve(st, e)
			seqNo := fmt.Sprint(seqBase + len(out))
			out = append(out, recorded{rec: memstore.EventRecord(t, seqNo, e, st), event: e, state: st})
		}
	}
	return out
}

// everyType returns histories that between them hold every event type: a
// delivered and acknowledged transfer that was retried once, a rejected
// upload, and a transfer that failed, was replayed and then cancelled.
func everyType(t *testing.T) []recorded {
	t.Helper()
	req := request(true)
	var all []recorded
	all = append(all, decide(t, idA, 100,
		domain.Request{Requested: req},
		domain.Start{Ref: "upload-1"},
		domain.RecordChunk{Index: 1, Bytes: 10, Ref: "e1"},
		domain.RecordChunk{Index: 2, Bytes: 10, Ref: "e2"},
		domain.Fail{Err: &domain.Error{Kind: domain.KindUnavailable, Code: "503", Message: "peer down"}},
		domain.Retry{},
		domain.RecordChunk{Index: 3, Bytes: 5, Ref: "e3"},
		domain.Complete{Ref: "final", Location: "null://a.csv"},
		domain.Acknowledge{By: "X26ABC2", Ref: "ack-1"},
	)...)
	unrouted := req
	unrouted.Route, unrouted.Destination = "", domain.Destination{}
	all = append(all, decide(t, idB, 200,
		domain.Reject{Requested: unrouted, Reason: domain.Errorf(domain.KindInvalid, "missing metadata: recipient").WithCode("MISSING_METADATA")},
	)...)
	all = append(all, decide(t, idC, 300,
		domain.Request{Requested: request(false)},
		domain.Start{},
		domain.Fail{Err: &domain.Error{Kind: domain.KindUnauthorized, Code: "AccessDenied", Message: "denied"}},
		domain.Replay{Actor: "ops@example.org", Reason: "key rotated"},
		domain.Cancel{Actor: "ops@example.org", Reason: "sent another way"},
	)...)
	return all
}

func records(rs []recorded) []events.DynamoDBEventRecord {
	out := make([]events.DynamoDBEventRecord, len(rs))
	for i, r := range rs {
		out[i] = r.rec
	}
	return out
}

type fixture struct {
	h    *Handler
	bus  *fakeBus
	proj *memstore.Store
}

func newFixture() *fixture {
	f := &fixture{bus: &fakeBus{}, proj: memstore.New()}
	f.h = &Handler{Bus: f.bus, BusName: "ferry-events", Projector: f.proj, Log: slog.New(slog.DiscardHandler)}
	return f
}

func (f *fixture) handle(t *testing.T, recs ...events.DynamoDBEventRecord) []string {
	t.Helper()
	resp, err := f.h.Handle(context.Background(), events.DynamoDBEvent{Records: recs})
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	return memstore.StreamFailures(resp)
}

// eventIDs lists the eventIds of details.
func eventIDs(ds []schema.Detail) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.EventID)
	}
	return out
}

func flatten(calls [][]schema.Detail) []schema.Detail {
	var out []schema.Detail
	for _, c := range calls {
		out = append(out, c...)
	}
	return out
}

func TestGoldenStreamEvent(t *testing.T) {
	var ev events.DynamoDBEvent
	memstore.ReadJSON(t, "testdata/dynamodb-stream-event.json", &ev)
	f := newFixture()
	if got := f.handle(t, ev.Records...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	entries := f.bus.entries()
	if len(entries) != 2 {
		t.Fatalf("published %d entries, want 2 (the view records are not events)", len(entries))
	}
	const id = "01JNZ0TESTTRANSFER00000000"
	at1 := time.Date(2025, 3, 1, 9, 0, 3, 0, time.UTC)
	for i, want := range []struct {
		detailType string
		at         time.Time
	}{{"Transfer Requested", at1}, {"Transfer Started", at1.Add(1500 * time.Millisecond)}} {
		e := entries[i]
		if got := aws.ToString(e.DetailType); got != want.detailType {
			t.Errorf("entry %d: detail type %q, want %q", i, got, want.detailType)
		}
		if aws.ToString(e.Source) != "ferry" || aws.ToString(e.EventBusName) != "ferry-events" {
			t.Errorf("entry %d: source %q bus %q, want ferry on ferry-events", i, aws.ToString(e.Source), aws.ToString(e.EventBusName))
		}
		if !slices.Equal(e.Resources, []string{"transfer/" + id}) {
			t.Errorf("entry %d: resources %q", i, e.Resources)
		}
		if e.Time == nil || !e.Time.Equal(want.at) {
			t.Errorf("entry %d: time %v, want %v", i, e.Time, want.at)
		}
	}
	var got schema.Detail
	if err := json.Unmarshal([]byte(aws.ToString(entries[0].Detail)), &got); err != nil {
		t.Fatal(err)
	}
	want := schema.Detail{
		TransferID: id, Seq: 1, EventID: id + "/1", Type: "Requested", Status: "IN_PROGRESS",
		Route: "to-partner", Sender: "X26ABC1", Recipient: "X26ABC2", Filename: "report.csv",
		Bytes: 25, Chunks: 3, OccurredAt: at1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("detail:\n got %+v\nwant %+v", got, want)
	}
	if p := f.proj.Projected(); len(p) != 1 || p[0].Version != 1 || p[0].ID != id {
		t.Errorf("projected %+v, want the state at v1 only", p)
	}
}

func TestOneEntryPerEventAtMostTenPerCall(t *testing.T) {
	// 23 events: Requested, Started and 21 one-byte chunks.
	cmds := []domain.Command{
		domain.Request{Requested: domain.Requested{Source: domain.Source{Kind: "s3"}, Destination: domain.Destination{Type: "null"}, Size: 21, ChunkSize: 1}},
		domain.Start{},
	}
	for i := 1; i <= 21; i++ {
		cmds = append(cmds, domain.RecordChunk{Index: i, Bytes: 1})
	}
	rs := decide(t, idA, 1000, cmds...)
	if len(rs) != 23 {
		t.Fatalf("built %d records, want 23", len(rs))
	}
	f := newFixture()
	if got := f.handle(t, records(rs)...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	calls := f.bus.details(t)
	var sizes []int
	for _, c := range calls {
		sizes = append(sizes, len(c))
	}
	if !slices.Equal(sizes, []int{10, 10, 3}) {
		t.Errorf("PutEvents entry counts = %v, want [10 10 3]", sizes)
	}
	var want []string
	for _, r := range rs {
		want = append(want, fmt.Sprintf("%s/%d", idA, r.event.Seq))
	}
	if got := eventIDs(flatten(calls)); !slices.Equal(got, want) {
		t.Errorf("published %v\nwant %v", got, want)
	}
}

func TestOnlyFailedEntriesResent(t *testing.T) {
	rs := everyType(t) // 16 events: a call of 10, then one of 6
	f := newFixture()
	retried := map[string]bool{rs[2].state.ID + "/3": true, rs[7].state.ID + "/8": true}
	f.bus.reject = func(call int, d schema.Detail) string {
		if call == 1 && retried[d.EventID] {
			return "ThrottlingException"
		}
		return ""
	}
	if got := f.handle(t, records(rs)...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	calls := f.bus.details(t)
	if len(calls) != 3 {
		t.Fatalf("%d PutEvents calls, want 3", len(calls))
	}
	if got, want := eventIDs(calls[1]), []string{idA + "/3", idA + "/8"}; !slices.Equal(got, want) {
		t.Errorf("resent %v, want only the refused %v", got, want)
	}
	if n := len(calls[2]); n != len(rs)-10 {
		t.Errorf("second batch has %d entries, want %d", n, len(rs)-10)
	}
}

func TestEntriesStillFailingAreBatchItemFailures(t *testing.T) {
	rs := everyType(t)
	t.Run("refused entries", func(t *testing.T) {
		f := newFixture()
		f.h.Attempts = 2
		doomed := rs[4].event // idA v5
		f.bus.reject = func(_ int, d schema.Detail) string {
			if d.EventID == fmt.Sprintf("%s/%d", doomed.TransferID, doomed.Seq) {
				return "InternalFailure"
			}
			return ""
		}
		if got := f.handle(t, records(rs)...); !slices.Equal(got, []string{rs[4].rec.Change.SequenceNumber}) {
			t.Errorf("failures = %v, want [%s]", got, rs[4].rec.Change.SequenceNumber)
		}
		if n := len(f.bus.details(t)); n != 3 {
			t.Errorf("%d PutEvents calls, want 3 (first batch twice, as Attempts says, then the second)", n)
		}
	})
	t.Run("failed calls", func(t *testing.T) {
		f := newFixture()
		f.h.Attempts = 2
		f.bus.callErr = func(_ int, ds []schema.Detail) error {
			if ds[0].EventID == idA+"/1" {
				return fmt.Errorf("connection reset")
			}
			return nil
		}
		var want []string
		for _, r := range rs[:10] {
			want = append(want, r.rec.Change.SequenceNumber)
		}
		slices.Sort(want)
		if got := f.handle(t, records(rs)...); !slices.Equal(got, want) {
			t.Errorf("failures = %v, want the first batch %v", got, want)
		}
		calls := f.bus.details(t)
		if len(calls) != 3 || len(calls[2]) != len(rs)-10 {
			t.Errorf("calls = %d, want the first batch twice and the second once", len(calls))
		}
	})
}

func TestDetailType(t *testing.T) {
	for typ, want := range map[domain.EventType]string{
		domain.TypeRequested:    "Transfer Requested",
		domain.TypeStarted:      "Transfer Started",
		domain.TypeChunkSent:    "Transfer Chunk Sent",
		domain.TypeDelivered:    "Transfer Delivered",
		domain.TypeFailed:       "Transfer Failed",
		domain.TypeRetried:      "Transfer Retried",
		domain.TypeAcknowledged: "Transfer Acknowledged",
		domain.TypeReplayed:     "Transfer Replayed",
		domain.TypeCancelled:    "Transfer Cancelled",
	} {
		if got := schema.DetailType(typ); got != want {
			t.Errorf("DetailType(%s) = %q, want %q", typ, got, want)
		}
	}

	f := newFixture()
	rs := everyType(t)
	f.handle(t, records(rs)...)
	for i, e := range f.bus.entries() {
		if got, want := aws.ToString(e.DetailType), schema.DetailType(rs[i].event.Type()); got != want {
			t.Errorf("entry %d: detail type %q, want %q", i, got, want)
		}
	}
}

func TestDetail(t *testing.T) {
	rs := everyType(t)
	f := newFixture()
	f.handle(t, records(rs)...)
	got := flatten(f.bus.details(t))
	if len(got) != len(rs) {
		t.Fatalf("published %d details, want %d", len(got), len(rs))
	}
	for i, d := range got {
		r := rs[i]
		if d.EventID != fmt.Sprintf("%s/%d", r.event.TransferID, r.event.Seq) || d.TransferID != r.event.TransferID || d.Seq != r.event.Seq {
			t.Errorf("detail %d: %s v%d eventId %q", i, d.TransferID, d.Seq, d.EventID)
		}
		if d.Type != string(r.event.Type()) || d.Status != string(r.state.Status) {
			t.Errorf("detail %d: type %s status %s, want %s %s", i, d.Type, d.Status, r.event.Type(), r.state.Status)
		}
		if !d.OccurredAt.Equal(r.event.At) {
			t.Errorf("detail %d: occurredAt %v, want %v", i, d.OccurredAt, r.event.At)
		}
	}
	byID := map[string]schema.Detail{}
	for _, d := range got {
		byID[d.EventID] = d
	}
	if d := byID[idA+"/3"]; d.Chunk != 1 || d.ChunksSent != 1 {
		t.Errorf("ChunkSent: chunk %d, chunksSent %d; want 1, 1", d.Chunk, d.ChunksSent)
	}
	retryAt := t0.Add(4 * time.Hour).Add(domain.DefaultRetryPolicy.Delay(idA, 1))
	if d := byID[idA+"/5"]; d.Error == nil || *d.Error != (schema.DetailError{Kind: "unavailable", Code: "503", Message: "peer down", Retryable: true}) ||
		d.Attempt != 1 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(retryAt) || d.Status != "RETRYING" {
		t.Errorf("retryable Failed: %+v (error %+v), want unavailable/503 retryable, attempt 1, next %v", d, d.Error, retryAt)
	}
	if d := byID[idA+"/6"]; d.Type != "Retried" || d.Attempt != 2 || d.Status != "IN_PROGRESS" {
		t.Errorf("Retried: type %s attempt %d status %s; want Retried, the second attempt, IN_PROGRESS", d.Type, d.Attempt, d.Status)
	}
	if d := byID[idB+"/2"]; d.Error == nil || d.Error.Code != "MISSING_METADATA" || d.Error.Retryable || d.NextAttemptAt != nil || d.Status != "FAILED" {
		t.Errorf("final Failed: %+v (error %+v)", d, d.Error)
	}
	if d := byID[idA+"/8"]; d.Location != "null://a.csv" || d.Status != "DELIVERED" || d.ChunksSent != 3 {
		t.Errorf("Delivered: %+v", d)
	}
	if d := byID[idC+"/4"]; d.Actor != "ops@example.org" {
		t.Errorf("Replayed: actor %q", d.Actor)
	}
	if d := byID[idC+"/5"]; d.Actor != "ops@example.org" || d.Status != "CANCELLED" {
		t.Errorf("Cancelled: %+v", d)
	}
	if d := byID[idA+"/1"]; d.Route != "to-partner" || d.Sender != "X26ABC1" || d.Recipient != "X26ABC2" ||
		d.Workflow != "MONTHLY_RETURN" || d.Filename != "a.csv" || d.Bytes != 25 || d.Chunks != 3 || d.CorrelationID == "" {
		t.Errorf("Requested: %+v", d)
	}
}

func TestDetailsMatchSchema(t *testing.T) {
	f := newFixture()
	f.handle(t, records(everyType(t))...)
	seen := map[string]bool{}
	var failed string
	for _, e := range f.bus.entries() {
		d := aws.ToString(e.Detail)
		if err := schema.ValidateTransferEvent([]byte(d)); err != nil {
			t.Errorf("%s detail does not match the schema: %v\n%s", aws.ToString(e.DetailType), err, d)
		}
		var typ struct{ Type string }
		_ = json.Unmarshal([]byte(d), &typ)
		seen[typ.Type] = true
		if typ.Type == "Failed" {
			failed = d
		}
	}
	for _, typ := range []domain.EventType{
		domain.TypeRequested, domain.TypeStarted, domain.TypeChunkSent, domain.TypeDelivered, domain.TypeFailed,
		domain.TypeRetried, domain.TypeAcknowledged, domain.TypeReplayed, domain.TypeCancelled,
	} {
		if !seen[string(typ)] {
			t.Errorf("no %s detail was checked", typ)
		}
	}

	// The schema has teeth: broken details do not pass.
	t.Run("rejects", func(t *testing.T) {
		var m map[string]any
		for name, edit := range map[string]func(m map[string]any){
			"Failed without error":   func(m map[string]any) { delete(m, "error") },
			"occurredAt not a date":  func(m map[string]any) { m["occurredAt"] = "yesterday" },
			"eventId not id/seq":     func(m map[string]any) { m["eventId"] = m["transferId"] },
			"unknown property":       func(m map[string]any) { m["payload"] = "bytes" },
			"status of a new record": func(m map[string]any) { m["status"] = "" },
		} {
			if err := json.Unmarshal([]byte(failed), &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, _ := json.Marshal(m)
			if err := schema.ValidateTransferEvent(b); err == nil {
				t.Errorf("%s: valid, want invalid", name)
			}
		}
	})
}

func TestProjection(t *testing.T) {
	rs := everyType(t)
	f := newFixture()
	if got := f.handle(t, records(rs)...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	var want []domain.State
	for _, r := range rs {
		if typ := r.event.Type(); typ != domain.TypeStarted && typ != domain.TypeChunkSent {
			want = append(want, r.state)
		}
	}
	got := f.proj.Projected()
	if len(got) != len(want) {
		t.Fatalf("projected %d states, want %d (every event but Started and ChunkSent)", len(got), len(want))
	}
	// Transfers are projected side by side: each one's states in order.
	gotBy, wantBy := byTransfer(got), byTransfer(want)
	for id, w := range wantBy {
		g := gotBy[id]
		if len(g) != len(w) {
			t.Errorf("%s: projected %d states, want %d", id, len(g), len(w))
			continue
		}
		for i := range w {
			if !reflect.DeepEqual(g[i], w[i]) {
				t.Errorf("%s projection %d:\n got %+v\nwant %+v", id, i, g[i], w[i])
			}
		}
	}

	t.Run("error fails that record", func(t *testing.T) {
		f := newFixture()
		doomed := rs[4] // idA v5, Failed
		f.proj.ProjectErr = func(st domain.State) error {
			if st.ID == doomed.state.ID && st.Version == doomed.state.Version {
				return domain.Errorf(domain.KindUnavailable, "throttled")
			}
			return nil
		}
		if got := f.handle(t, records(rs)...); !slices.Equal(got, []string{doomed.rec.Change.SequenceNumber}) {
			t.Errorf("failures = %v, want [%s]", got, doomed.rec.Change.SequenceNumber)
		}
		ids := eventIDs(flatten(f.bus.details(t)))
		if slices.Contains(ids, idA+"/5") {
			t.Error("published an event whose projection failed; subscribers may query history for it")
		}
		if len(ids) != len(rs)-1 {
			t.Errorf("published %d events, want %d", len(ids), len(rs)-1)
		}
	})
}

func TestUndecodableRecord(t *testing.T) {
	rs := everyType(t)
	bad := memstore.EventRecord(t, "999", rs[0].event, rs[0].state)
	bad.Change.NewImage["data"] = events.NewStringAttribute(`{"v":99}`)
	f := newFixture()
	if got := f.handle(t, rs[0].rec, bad, rs[1].rec); !slices.Equal(got, []string{"999"}) {
		t.Errorf("failures = %v, want [999]", got)
	}
	if n := len(f.bus.entries()); n != 2 {
		t.Errorf("published %d entries, want 2", n)
	}
}

func TestCustomSource(t *testing.T) {
	f := newFixture()
	f.h.Source = "ferry.test"
	f.handle(t, records(everyType(t)[:1])...)
	if e := f.bus.entries(); len(e) != 1 || aws.ToString(e[0].Source) != "ferry.test" {
		t.Errorf("entries %+v, want source ferry.test", e)
	}
}

func TestNewImageDecodes(t *testing.T) {
	for _, r := range everyType(t) {
		e, st, err := store.DecodeImage(r.rec.Change.NewImage)
		if err != nil {
			t.Fatalf("%s v%d: %v", r.event.TransferID, r.event.Seq, err)
		}
		if !reflect.DeepEqual(e, r.event) || !reflect.DeepEqual(st, r.state) {
			t.Errorf("%s v%d: decoded %+v / %+v\nwant %+v / %+v", r.event.TransferID, r.event.Seq, e, st, r.event, r.state)
		}
	}
}

// TestFailedForGoodCounted checks the TransfersFailed data points: one per
// event that fails a transfer for good (the rejected upload, the refused
// credentials), none for a retryable failure, and none for an event the
// bus did not take, which is delivered again and counted then.
func TestFailedForGoodCounted(t *testing.T) {
	rs := everyType(t)
	counted := func(f *fixture, buf *bytes.Buffer) []string {
		var ids []string
		for line := range strings.Lines(buf.String()) {
			var rec struct {
				Failed   int    `json:"TransfersFailed"`
				Transfer string `json:"transfer"`
				AWS      any    `json:"_aws"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON: %v", err)
			}
			if rec.Failed == 1 && rec.AWS != nil {
				ids = append(ids, rec.Transfer)
			}
		}
		return ids
	}
	newCounting := func() (*fixture, *bytes.Buffer) {
		f := newFixture()
		var buf bytes.Buffer
		f.h.Log, f.h.MetricsNamespace = slog.New(slog.NewJSONHandler(&buf, nil)), "ferry/test"
		return f, &buf
	}

	f, buf := newCounting()
	f.handle(t, records(rs)...)
	if got := counted(f, buf); !slices.Equal(got, []string{idB, idC}) {
		t.Errorf("TransfersFailed counted for %v, want [%s %s]", got, idB, idC)
	}

	f, buf = newCounting()
	f.h.Attempts = 1
	f.bus.reject = func(_ int, d schema.Detail) string {
		if d.EventID == idC+"/3" { // idC's Failed
			return "InternalFailure"
		}
		return ""
	}
	f.handle(t, records(rs)...)
	if got := counted(f, buf); !slices.Equal(got, []string{idB}) {
		t.Errorf("with idC's Failed not put, counted %v, want [%s]", got, idB)
	}
}

// byTransfer groups states by transfer, keeping their order.
func byTransfer(sts []domain.State) map[string][]domain.State {
	out := map[string][]domain.State{}
	for _, st := range sts {
		out[st.ID] = append(out[st.ID], st)
	}
	return out
}

// manyTransfers returns the stream records of n transfers that are each
// requested, started, sent in three chunks and delivered: three events
// each that change the view (Requested, Delivered) among six.
func manyTransfers(t *testing.T, n int) []recorded {
	t.Helper()
	var all []recorded
	for i := range n {
		id := fmt.Sprintf("01JNZ0D%019d", i)
		all = append(all, decide(t, id, 1000*(i+1),
			domain.Request{Requested: request(false)},
			domain.Start{},
			domain.RecordChunk{Index: 1, Bytes: 10, Ref: "e1"},
			domain.RecordChunk{Index: 2, Bytes: 10, Ref: "e2"},
			domain.RecordChunk{Index: 3, Bytes: 5, Ref: "e3"},
			domain.Complete{Ref: "final", Location: "null://a.csv"},
		)...)
	}
	return all
}

// gatedProjector projects into a memstore, first calling before (outside
// the memstore's lock, which would otherwise put the projections in a row)
// and counting the projections in flight.
type gatedProjector struct {
	*memstore.Store
	before   func(st domain.State)
	mu       sync.Mutex
	inFlight map[string]int
	most     int // the most transfers with a projection in flight at once
}

func (g *gatedProjector) Project(ctx context.Context, st domain.State) (bool, error) {
	g.mu.Lock()
	g.inFlight[st.ID]++
	g.most = max(g.most, len(g.inFlight))
	g.mu.Unlock()
	g.before(st)
	g.mu.Lock()
	if g.inFlight[st.ID]--; g.inFlight[st.ID] == 0 {
		delete(g.inFlight, st.ID)
	}
	g.mu.Unlock()
	return g.Store.Project(ctx, st)
}

func (g *gatedProjector) inFlightNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.inFlight)
}

func TestTransfersProjectedSideBySide(t *testing.T) {
	rs := manyTransfers(t, 5)
	f := newFixture()
	// Every projection waits until all five transfers have one in flight:
	// one transfer after another would wait for ever, so a timer lets them
	// go and the test fails rather than hangs.
	all, release := make(chan struct{}), make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() { close(release) })
	defer timer.Stop()
	var once sync.Once
	g := &gatedProjector{Store: f.proj, inFlight: map[string]int{}}
	g.before = func(domain.State) {
		if g.inFlightNow() == 5 {
			once.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-release:
		}
	}
	f.h.Projector, f.h.Projections = g, 5
	if got := f.handle(t, records(rs)...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if g.most != 5 {
		t.Errorf("%d transfers projected at once, want 5", g.most)
	}
	for id, sts := range byTransfer(f.proj.Projected()) {
		var versions []int
		for _, st := range sts {
			versions = append(versions, st.Version)
		}
		if !slices.Equal(versions, []int{1, 6}) {
			t.Errorf("%s projected versions %v, want [1 6] (Requested, then Delivered)", id, versions)
		}
	}
	if n := len(flatten(f.bus.details(t))); n != len(rs) {
		t.Errorf("published %d events, want %d", n, len(rs))
	}
}

func TestProjectionsBounded(t *testing.T) {
	rs := manyTransfers(t, 40)
	f := newFixture()
	g := &gatedProjector{Store: f.proj, inFlight: map[string]int{}, before: func(domain.State) { time.Sleep(time.Millisecond) }}
	f.h.Projector, f.h.Projections = g, 3
	if got := f.handle(t, records(rs)...); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if g.most > 3 || g.most < 2 {
		t.Errorf("%d transfers projected at once, want 2 or 3 (Projections is 3)", g.most)
	}
	if got := len(f.proj.Projected()); got != 80 {
		t.Errorf("projected %d states, want 80", got)
	}
}

func TestProjectionFailureAmongManyFailsOnlyItsRecord(t *testing.T) {
	rs := manyTransfers(t, 20)
	doomed := rs[6*7+5] // the eighth transfer's Delivered
	f := newFixture()
	f.proj.ProjectErr = func(st domain.State) error {
		if st.ID == doomed.state.ID && st.Version == doomed.state.Version {
			return domain.Errorf(domain.KindUnavailable, "throttled")
		}
		return nil
	}
	if got := f.handle(t, records(rs)...); !slices.Equal(got, []string{doomed.rec.Change.SequenceNumber}) {
		t.Errorf("failures = %v, want [%s]", got, doomed.rec.Change.SequenceNumber)
	}
	ids := eventIDs(flatten(f.bus.details(t)))
	if slices.Contains(ids, doomed.state.ID+"/6") || len(ids) != len(rs)-1 {
		t.Errorf("published %d events (want %d), the doomed one among them: %t", len(ids), len(rs)-1, slices.Contains(ids, doomed.state.ID+"/6"))
	}
	// The entries go out in the stream's order.
	var want []string
	for _, r := range rs {
		if r.rec.Change.SequenceNumber != doomed.rec.Change.SequenceNumber {
			want = append(want, fmt.Sprintf("%s/%d", r.event.TransferID, r.event.Seq))
		}
	}
	if !slices.Equal(ids, want) {
		t.Errorf("published in the order %v, want the stream's %v", ids, want)
	}
}
