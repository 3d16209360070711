package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/store"
)

// lastModified is when the test objects were uploaded (HTTP dates have whole
// seconds); now is the handler's clock.
var (
	lastModified = time.Date(2025, 3, 1, 9, 0, 1, 0, time.UTC)
	now          = lastModified.Add(2 * time.Second)
)

const (
	bucket  = "ferry-outbound"
	key     = "outbound/monthly report (2).csv"
	keyURL  = "outbound/monthly+report+%282%29.csv" // as S3 notifications encode it
	version = "3HL4kqtJvjVBH40Nrjfkd"
	etag    = `"9b2cf535f27731c974343645a3985328-3"`
	size    = 20*domain.MiB + 1
)

var testRoutes = domain.Routes{Routes: []domain.Route{
	{
		Name:        "to-partner",
		Match:       domain.Match{Bucket: bucket, Prefix: "outbound/"},
		Destination: domain.Destination{Type: "s3", Bucket: "partner-inbox", Prefix: "in/"},
		Require:     []string{"sender", "recipient"},
		ChunkSize:   8 * domain.MiB,
		Retry:       domain.RetryPolicy{MaxAttempts: 5, BaseDelay: domain.Duration(2 * time.Second)},
	},
	{
		Name:        "discard",
		Match:       domain.Match{Bucket: bucket, Prefix: "discard/"},
		Destination: domain.Destination{Type: "null"},
	},
}}

// goodMetadata is complete upload metadata, URL-encoded (quote_plus) as
// NHS England's MESH client writes it, with a key S3 did not lowercase.
func goodMetadata() map[string]string {
	return map[string]string{
		"Sender":    "X26ABC1",
		"recipient": "X26ABC2",
		"filename":  "report+%282%29.csv",
		"subject":   "Monthly+report+%E2%80%93+March",
		"localid":   "abc%2F123",
	}
}

type fixture struct {
	h       *Handler
	store   *memstore.Store
	objects *fakeObjects
}

// newFixture returns a handler whose bucket holds key (version, etag) with
// metadata md.
func newFixture(md map[string]string) fixture {
	st := memstore.New()
	objs := &fakeObjects{objects: map[string]object{
		bucket + "/" + key: {versionID: version, etag: etag, lastModified: lastModified, size: size, metadata: md},
	}}
	h := &Handler{Store: st, Objects: objs, Routes: testRoutes, Now: func() time.Time { return now }, Log: discardLog()}
	return fixture{h: h, store: st, objects: objs}
}

// put adds an object to the fixture's bucket.
func (f fixture) put(k string, o object) {
	f.objects.mu.Lock()
	defer f.objects.mu.Unlock()
	f.objects.objects[bucket+"/"+k] = o
}

// notification returns the body S3 sends to SQS for an ObjectCreated:Put of
// the (URL-encoded) key.
func notification(t *testing.T, encodedKey, versionID string) string {
	t.Helper()
	n := events.S3Event{Records: []events.S3EventRecord{{
		EventVersion: "2.1",
		EventSource:  "aws:s3",
		AWSRegion:    "eu-west-2",
		EventTime:    lastModified.Add(234 * time.Millisecond),
		EventName:    "ObjectCreated:Put",
		S3: events.S3Entity{
			SchemaVersion: "1.0",
			Bucket:        events.S3Bucket{Name: bucket, Arn: "arn:aws:s3:::" + bucket},
			Object:        events.S3Object{Key: encodedKey, Size: size, VersionID: versionID, ETag: strings.Trim(etag, `"`)},
		},
	}}}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func message(id, body string) events.SQSMessage {
	return events.SQSMessage{MessageId: id, Body: body, EventSource: "aws:sqs"}
}

func handle(t *testing.T, h *Handler, msgs ...events.SQSMessage) events.SQSEventResponse {
	t.Helper()
	resp, err := h.Handle(context.Background(), events.SQSEvent{Records: msgs})
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	return resp
}

func eventTypes(evs []domain.Event) []domain.EventType {
	var ts []domain.EventType
	for _, e := range evs {
		ts = append(ts, e.Type())
	}
	return ts
}

func TestGoldenNotification(t *testing.T) {
	var ev events.SQSEvent
	memstore.ReadJSON(t, "testdata/sqs-s3-notification.json", &ev)
	if got := len(ev.Records); got != 2 {
		t.Fatalf("got %d SQS records, want 2", got)
	}

	t.Run("S3 notification decodes", func(t *testing.T) {
		var n events.S3Event
		if err := json.Unmarshal([]byte(ev.Records[0].Body), &n); err != nil {
			t.Fatalf("decode body: %v", err)
		}
		if len(n.Records) != 1 {
			t.Fatalf("got %d S3 records, want 1", len(n.Records))
		}
		r := n.Records[0]
		got := []string{r.EventName, r.S3.Bucket.Name, r.S3.Object.Key, r.S3.Object.VersionID, r.S3.Object.ETag}
		want := []string{"ObjectCreated:Put", bucket, keyURL, version, strings.Trim(etag, `"`)}
		if !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if want := time.Date(2025, 3, 1, 9, 0, 1, 234e6, time.UTC); !r.EventTime.Equal(want) {
			t.Errorf("eventTime = %v, want %v", r.EventTime, want)
		}
		if r.S3.Object.Size != size {
			t.Errorf("size = %d, want %d", r.S3.Object.Size, size)
		}
	})

	t.Run("handled", func(t *testing.T) {
		f := newFixture(goodMetadata())
		resp := handle(t, f.h, ev.Records...)
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures: %v", failures(resp))
		}
		id, evs := only(t, f.store)
		if want := domain.ObjectTransferID(bucket, key, version, etag, lastModified); id != want {
			t.Errorf("transfer id = %s, want %s", id, want)
		}
		if got := eventTypes(evs); !slices.Equal(got, []domain.EventType{domain.TypeRequested}) {
			t.Errorf("events = %v, want [Requested]", got)
		}
		heads := f.objects.heads()
		if len(heads) != 1 {
			t.Fatalf("HeadObject called %d times, want 1 (the test event needs none)", len(heads))
		}
		if got := []string{aws.ToString(heads[0].Bucket), aws.ToString(heads[0].Key), aws.ToString(heads[0].VersionId)}; !slices.Equal(got, []string{bucket, key, version}) {
			t.Errorf("HeadObject(%q), want the decoded key and the notified version", got)
		}
	})
}

func TestObjectCreatedRequestsTransfer(t *testing.T) {
	f := newFixture(goodMetadata())
	resp := handle(t, f.h, message("m1", notification(t, keyURL, version)))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", failures(resp))
	}
	id, evs := only(t, f.store)
	if len(evs) != 1 {
		t.Fatalf("events = %v, want [Requested]", eventTypes(evs))
	}
	e := evs[0]
	if e.TransferID != id || e.Seq != 1 || !e.At.Equal(now) {
		t.Errorf("event stamped %s v%d at %v, want %s v1 at %v", e.TransferID, e.Seq, e.At, id, now)
	}
	got, ok := e.Payload.(domain.Requested)
	if !ok {
		t.Fatalf("payload is %T, want Requested", e.Payload)
	}
	want := domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: bucket, Key: key, VersionID: version, ETag: etag},
		Route:       "to-partner",
		Destination: domain.Destination{Type: "s3", Bucket: "partner-inbox", Prefix: "in/"},
		Sender:      "X26ABC1",
		Recipient:   "X26ABC2",
		Filename:    "report (2).csv",
		Size:        size,
		ChunkSize:   8 * domain.MiB,
		Chunks:      3, // 8 MiB + 8 MiB + 4 MiB and a byte
		Retry:       domain.RetryPolicy{MaxAttempts: 5, BaseDelay: domain.Duration(2 * time.Second), MaxDelay: domain.DefaultRetryPolicy.MaxDelay},
		Metadata:    map[string]string{"subject": "Monthly report – March", "localid": "abc/123"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Requested:\n got %+v\nwant %+v", got, want)
	}
}

func TestRouteDefaults(t *testing.T) {
	f := newFixture(nil)
	f.put("discard/a b.bin", object{versionID: "null", etag: etag, lastModified: lastModified, size: 5})
	resp := handle(t, f.h, message("m1", notification(t, "discard/a+b.bin", "")))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", failures(resp))
	}
	id, evs := only(t, f.store)
	r := evs[0].Payload.(domain.Requested)
	if r.Route != "discard" || r.ChunkSize != domain.DefaultChunkSize || r.Chunks != 1 {
		t.Errorf("route %q, chunk size %d, chunks %d; want discard, %d, 1", r.Route, r.ChunkSize, r.Chunks, domain.DefaultChunkSize)
	}
	if r.Filename != "a b.bin" {
		t.Errorf("filename = %q, want the key's base name", r.Filename)
	}
	// An unversioned bucket reports version "null": that is no version.
	if r.Source.VersionID != "" {
		t.Errorf("source version = %q, want empty", r.Source.VersionID)
	}
	if want := domain.ObjectTransferID(bucket, "discard/a b.bin", "", etag, lastModified); id != want {
		t.Errorf("id = %s, want %s", id, want)
	}
}

func TestTestEventIgnored(t *testing.T) {
	f := newFixture(goodMetadata())
	body := `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2025-03-01T08:59:00.000Z","Bucket":"ferry-outbound","RequestId":"5582815E1AEA5ADF","HostId":"8cLe"}`
	resp := handle(t, f.h, message("m1", body))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures: %v, want none", failures(resp))
	}
	if n := len(f.objects.heads()); n != 0 {
		t.Errorf("HeadObject called %d times, want 0", n)
	}
	if f.store.Appends() != 0 {
		t.Errorf("Append called %d times, want 0", f.store.Appends())
	}
}

func TestOtherS3EventsIgnored(t *testing.T) {
	f := newFixture(goodMetadata())
	body := strings.Replace(notification(t, keyURL, version), "ObjectCreated:Put", "ObjectRemoved:Delete", 1)
	resp := handle(t, f.h, message("m1", body))
	if len(resp.BatchItemFailures) != 0 || len(f.objects.heads()) != 0 || len(f.store.IDs()) != 0 {
		t.Errorf("failures %v, %d heads, %d transfers; want an ObjectRemoved notification ignored", failures(resp), len(f.objects.heads()), len(f.store.IDs()))
	}
}

func TestRejectedUploads(t *testing.T) {
	without := func(drop ...string) map[string]string {
		md := goodMetadata()
		for _, k := range drop {
			delete(md, k)
		}
		return md
	}
	withMD := func(k, v string) map[string]string {
		md := goodMetadata()
		md[k] = v
		return md
	}
	tests := []struct {
		name       string
		metadata   map[string]string
		encodedKey string // default keyURL
		deleted    bool   // the object is gone before HeadObject
		wantRoute  string
		wantCode   string
		wantInMsg  []string
	}{
		{
			name:      "missing required metadata",
			metadata:  without("recipient"),
			wantRoute: "to-partner",
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: recipient", "to-partner"},
		},
		{
			name:      "all required metadata missing",
			metadata:  nil,
			wantRoute: "to-partner",
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: sender, recipient"},
		},
		{
			name:      "invalid sender",
			metadata:  withMD("sender", "bad+sender%21"),
			wantCode:  "INVALID_METADATA",
			wantInMsg: []string{"invalid upload", `metadata sender "bad sender!"`},
		},
		{
			name:      "metadata not URL-encoded",
			metadata:  withMD("subject", "100%"),
			wantCode:  "INVALID_METADATA",
			wantInMsg: []string{"metadata subject is not valid URL encoding"},
		},
		{
			name:       "no route",
			metadata:   goodMetadata(),
			encodedKey: "elsewhere/x.csv",
			wantCode:   "NO_ROUTE",
			wantInMsg:  []string{"no route matches s3://ferry-outbound/elsewhere/x.csv", `sender "X26ABC1"`},
		},
		{
			name:      "source deleted before intake",
			metadata:  goodMetadata(),
			deleted:   true,
			wantCode:  "SOURCE_GONE",
			wantInMsg: []string{"s3://ferry-outbound/" + key + " no longer exists"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.metadata)
			encoded := keyURL
			if tt.encodedKey != "" {
				encoded = tt.encodedKey
				k := strings.ReplaceAll(encoded, "+", " ")
				f.put(k, object{versionID: version, etag: etag, lastModified: lastModified, size: size, metadata: tt.metadata})
			}
			if tt.deleted {
				f.objects.objects = map[string]object{}
			}
			resp := handle(t, f.h, message("m1", notification(t, encoded, version)))
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v; a rejected upload is a recorded outcome, not a failure", failures(resp))
			}
			id, evs := only(t, f.store)
			if got, want := eventTypes(evs), []domain.EventType{domain.TypeRequested, domain.TypeFailed}; !slices.Equal(got, want) {
				t.Fatalf("events = %v, want %v", got, want)
			}
			for i, e := range evs {
				if e.TransferID != id || e.Seq != i+1 {
					t.Errorf("event %d is %s v%d, want %s v%d", i, e.TransferID, e.Seq, id, i+1)
				}
			}
			req := evs[0].Payload.(domain.Requested)
			if req.Route != tt.wantRoute {
				t.Errorf("route = %q, want %q", req.Route, tt.wantRoute)
			}
			if req.Source.Bucket != bucket || req.Source.Key == "" || req.Source.VersionID != version {
				t.Errorf("source = %+v, want the notified object", req.Source)
			}
			fl := evs[1].Payload.(domain.Failed)
			if fl.Retryable || !fl.NextAttemptAt.IsZero() {
				t.Errorf("failure is retryable (next %v), want final", fl.NextAttemptAt)
			}
			if fl.Kind != domain.KindInvalid || fl.Code != tt.wantCode || fl.Attempt != 1 {
				t.Errorf("failure %s/%q attempt %d, want %s/%q attempt 1", fl.Kind, fl.Code, fl.Attempt, domain.KindInvalid, tt.wantCode)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(fl.Message, s) {
					t.Errorf("message %q does not mention %q", fl.Message, s)
				}
			}
			if st := domain.Fold(domain.State{}, evs...); st.Status != domain.StatusFailed || !st.Terminal() {
				t.Errorf("status = %s, want terminal %s", st.Status, domain.StatusFailed)
			}
		})
	}
}

func TestHeadObjectErrorsAreBatchItemFailures(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"503", httpError(503, "ServiceUnavailable", "Service Unavailable")},
		{"403", httpError(403, "Forbidden", "Forbidden")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(goodMetadata())
			f.objects.err = tt.err
			resp := handle(t, f.h, message("m1", notification(t, keyURL, version)))
			if got := failures(resp); !slices.Equal(got, []string{"m1"}) {
				t.Errorf("failures = %v, want [m1]", got)
			}
			if f.store.Appends() != 0 {
				t.Errorf("Append called %d times; a transient error must record nothing", f.store.Appends())
			}
		})
	}
}

func TestMalformedMessageFailsOnlyItself(t *testing.T) {
	f := newFixture(goodMetadata())
	f.put("outbound/b.csv", object{versionID: "v2", etag: `"e2"`, lastModified: lastModified, size: 10, metadata: goodMetadata()})
	resp := handle(t, f.h,
		message("good-1", notification(t, keyURL, version)),
		message("not-json", "this is not JSON"),
		message("not-s3", `{"hello":"world"}`),
		message("bad-key", notification(t, "outbound/%zz", "v9")),
		message("good-2", notification(t, "outbound/b.csv", "v2")),
	)
	got := failures(resp)
	slices.Sort(got)
	if want := []string{"bad-key", "not-json", "not-s3"}; !slices.Equal(got, want) {
		t.Errorf("failures = %v, want %v", got, want)
	}
	if n := len(f.store.IDs()); n != 2 {
		t.Errorf("%d transfers created, want 2 (the good messages around the bad ones)", n)
	}
}

func TestDuplicateNotification(t *testing.T) {
	t.Run("delivered twice", func(t *testing.T) {
		f := newFixture(goodMetadata())
		body := notification(t, keyURL, version)
		resp := handle(t, f.h, message("m1", body), message("m2", body))
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("failures: %v, want none", failures(resp))
		}
		resp = handle(t, f.h, message("m3", body))
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("failures: %v, want none", failures(resp))
		}
		if _, evs := only(t, f.store); len(evs) != 1 {
			t.Errorf("%d events, want 1", len(evs))
		}
		if f.store.Appends() != 3 {
			t.Errorf("Append called %d times, want 3", f.store.Appends())
		}
	})
	t.Run("store reports a conflict", func(t *testing.T) {
		f := newFixture(goodMetadata())
		f.store.AppendErr = func(prev domain.State, _ []domain.Event) error {
			return fmt.Errorf("append %s v1: %w", prev.ID, store.ErrConflict)
		}
		resp := handle(t, f.h, message("m1", notification(t, keyURL, version)))
		if len(resp.BatchItemFailures) != 0 {
			t.Errorf("failures: %v, want none", failures(resp))
		}
	})
	t.Run("store unavailable is a failure", func(t *testing.T) {
		f := newFixture(goodMetadata())
		f.store.AppendErr = func(domain.State, []domain.Event) error { return domain.Errorf(domain.KindUnavailable, "throttled") }
		resp := handle(t, f.h, message("m1", notification(t, keyURL, version)))
		if got := failures(resp); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
	})
}

func TestNotificationWithSeveralRecords(t *testing.T) {
	f := newFixture(goodMetadata())
	var bad, good events.S3Event
	if err := json.Unmarshal([]byte(notification(t, "outbound/other.csv", "v9")), &bad); err != nil {
		t.Fatal(err)
	}
	bad.Records[0].S3.Bucket.Name = "" // names no object
	if err := json.Unmarshal([]byte(notification(t, keyURL, version)), &good); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(events.S3Event{Records: append(bad.Records, good.Records...)})
	if err != nil {
		t.Fatal(err)
	}
	resp := handle(t, f.h, message("m1", string(b)))
	if got := failures(resp); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("failures = %v, want [m1]", got)
	}
	if n := len(f.store.IDs()); n != 1 {
		t.Errorf("%d transfers, want 1: a bad record does not stop the good one beside it", n)
	}
}

// notificationOf returns the body S3 sends for an upload of key that
// carries no version id (an unversioned bucket, or the local emulator), with
// the ETag and event time given.
func notificationOf(t *testing.T, k, etag string, at time.Time) string {
	t.Helper()
	n := events.S3Event{Records: []events.S3EventRecord{{
		EventVersion: "2.1", EventSource: "aws:s3", EventTime: at, EventName: "ObjectCreated:Put",
		S3: events.S3Entity{
			Bucket: events.S3Bucket{Name: bucket},
			Object: events.S3Object{Key: k, Size: 10, ETag: strings.Trim(etag, `"`)},
		},
	}}}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNotificationWithoutVersionID(t *testing.T) {
	const k = "outbound/daily.csv"
	t0 := lastModified
	first := object{versionID: "v1", etag: `"e1"`, lastModified: t0, size: 10, metadata: goodMetadata()}
	second := object{versionID: "v2", etag: `"e2"`, lastModified: t0.Add(300 * time.Millisecond), size: 12, metadata: goodMetadata()}
	sourceOf := func(t *testing.T, s *memstore.Store, id string) domain.Source {
		t.Helper()
		evs := s.History(id)
		if len(evs) == 0 {
			t.Fatalf("no transfer %s", id)
		}
		return evs[0].Payload.(domain.Requested).Source
	}

	t.Run("two uploads of one key a moment apart are two transfers", func(t *testing.T) {
		f := newFixture(nil)
		f.put(k, second)
		f.objects.older = map[string][]object{bucket + "/" + k: {first}}
		resp := handle(t, f.h,
			message("m1", notificationOf(t, k, `"e1"`, t0.Add(100*time.Millisecond))),
			message("m2", notificationOf(t, k, `"e2"`, t0.Add(400*time.Millisecond))),
		)
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures: %v", failures(resp))
		}
		id1 := domain.ObjectTransferID(bucket, k, "v1", `"e1"`, first.lastModified)
		id2 := domain.ObjectTransferID(bucket, k, "v2", `"e2"`, second.lastModified)
		if got := f.store.IDs(); len(got) != 2 {
			t.Fatalf("transfers %v, want %s and %s", got, id1, id2)
		}
		for id, want := range map[string]domain.Source{
			id1: {Kind: "s3", Bucket: bucket, Key: k, VersionID: "v1", ETag: `"e1"`},
			id2: {Kind: "s3", Bucket: bucket, Key: k, VersionID: "v2", ETag: `"e2"`},
		} {
			if got := sourceOf(t, f.store, id); got != want {
				t.Errorf("transfer %s source = %+v, want %+v", id, got, want)
			}
		}
		if f.objects.lists != 1 {
			t.Errorf("%d listings, want 1: only the overwritten upload needs one", f.objects.lists)
		}
	})

	t.Run("the same notification twice is one transfer", func(t *testing.T) {
		f := newFixture(nil)
		f.put(k, second)
		f.objects.older = map[string][]object{bucket + "/" + k: {first}}
		body := notificationOf(t, k, `"e1"`, t0.Add(100*time.Millisecond))
		resp := handle(t, f.h, message("m1", body), message("m2", body))
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures: %v", failures(resp))
		}
		id, _ := only(t, f.store)
		if got := sourceOf(t, f.store, id).VersionID; got != "v1" {
			t.Errorf("version %q, want v1", got)
		}
	})

	t.Run("the same bytes uploaded again: the version not newer than the event", func(t *testing.T) {
		f := newFixture(nil)
		again := second
		again.etag, again.lastModified = first.etag, t0.Add(2*time.Second)
		f.put(k, again)
		f.objects.older = map[string][]object{bucket + "/" + k: {first}}
		resp := handle(t, f.h, message("m1", notificationOf(t, k, `"e1"`, t0.Add(100*time.Millisecond))))
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures: %v", failures(resp))
		}
		id, _ := only(t, f.store)
		if got := sourceOf(t, f.store, id).VersionID; got != "v1" {
			t.Errorf("version %q, want v1 (v2 was uploaded after the event)", got)
		}
	})

	for _, tc := range []struct {
		name   string
		older  []object
		etag   string
		inMsg  string
		lookup bool // the current object is unversioned ("null")
	}{
		{name: "overwritten in an unversioned bucket", etag: `"e1"`, lookup: true, inMsg: "was overwritten before it could be read"},
		{name: "no version has the ETag any more", etag: `"e3"`, older: []object{first}, inMsg: "no version has ETag e3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(nil)
			cur := second
			if tc.lookup {
				cur.versionID = "null"
			}
			f.put(k, cur)
			f.objects.older = map[string][]object{bucket + "/" + k: tc.older}
			at := t0.Add(100 * time.Millisecond)
			resp := handle(t, f.h, message("m1", notificationOf(t, k, tc.etag, at)))
			if len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures: %v; an overwritten upload is a recorded outcome", failures(resp))
			}
			id, evs := only(t, f.store)
			if want := domain.ObjectTransferID(bucket, k, "", tc.etag, at); id != want {
				t.Errorf("id %s, want %s (from the notification)", id, want)
			}
			if got, want := eventTypes(evs), []domain.EventType{domain.TypeRequested, domain.TypeFailed}; !slices.Equal(got, want) {
				t.Fatalf("events = %v, want %v", got, want)
			}
			fl := evs[1].Payload.(domain.Failed)
			if fl.Retryable || fl.Code != "SOURCE_GONE" || !strings.Contains(fl.Message, tc.inMsg) {
				t.Errorf("failure %+v, want final SOURCE_GONE mentioning %q", fl, tc.inMsg)
			}
		})
	}

	t.Run("the newest upload is read with one HeadObject and no listing", func(t *testing.T) {
		f := newFixture(nil)
		f.put(k, second)
		f.objects.older = map[string][]object{bucket + "/" + k: {first}}
		resp := handle(t, f.h, message("m1", notificationOf(t, k, `"e2"`, t0.Add(400*time.Millisecond))))
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures: %v", failures(resp))
		}
		id, _ := only(t, f.store)
		if got := sourceOf(t, f.store, id).VersionID; got != "v2" {
			t.Errorf("version %q, want v2", got)
		}
		if h, l := len(f.objects.heads()), f.objects.lists; h != 1 || l != 0 {
			t.Errorf("%d HeadObject and %d ListObjectVersions calls, want 1 and 0", h, l)
		}
	})

	t.Run("listing unavailable records nothing and is retried", func(t *testing.T) {
		f := newFixture(nil)
		f.put(k, second)
		f.objects.err = httpError(503, "ServiceUnavailable", "Service Unavailable")
		resp := handle(t, f.h, message("m1", notificationOf(t, k, `"e2"`, t0.Add(400*time.Millisecond))))
		if got := failures(resp); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
		if f.store.Appends() != 0 {
			t.Errorf("%d appends, want none", f.store.Appends())
		}
	})
}

// TestPostboxKeyNamesTransferAndSender: an upload under a postbox key (a
// presigned upload the HTTP API promised) becomes the transfer the key
// names, sent by the key's party whatever its metadata claims.
func TestPostboxKeyNamesTransferAndSender(t *testing.T) {
	const promised = "01JNZ0PPPPPPPPPPPPPPPPPPPP"
	f := newFixture(goodMetadata()) // its metadata says sender X26ABC1
	key := domain.PostboxKey("org-a", promised, "report.csv")
	f.put(key, object{versionID: version, etag: etag, lastModified: lastModified, size: 5})
	resp := handle(t, f.h, message("m1", notification(t, key, version)))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", failures(resp))
	}
	id, evs := only(t, f.store)
	r := evs[0].Payload.(domain.Requested)
	if id != promised || r.Sender != "org-a" || r.Route != "to-partner" {
		t.Errorf("transfer %s from %q on %q, want %s from org-a on to-partner", id, r.Sender, r.Route, promised)
	}
}

// TestRouteExpectAck: a route that waits for its recipient's
// acknowledgement marks the request so.
func TestRouteExpectAck(t *testing.T) {
	f := newFixture(nil)
	f.h.Routes = domain.Routes{Routes: []domain.Route{{Name: "acked", Match: domain.Match{Prefix: "discard/"}, Destination: domain.Destination{Type: "null"}, ExpectAck: true}}}
	f.put("discard/a.bin", object{versionID: version, etag: etag, lastModified: lastModified, size: 5})
	if resp := handle(t, f.h, message("m1", notification(t, "discard/a.bin", version))); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", failures(resp))
	}
	_, evs := only(t, f.store)
	if r := evs[0].Payload.(domain.Requested); !r.ExpectAck || !r.AckByRecipient {
		t.Errorf("expectAck %t, ackByRecipient %t; want both", r.ExpectAck, r.AckByRecipient)
	}
}

// TestEmailAttachmentCommand: an attachment of received email is sent by
// its email-from address to its email-to one, routed by the latter, held
// to the route's email policy, and carries its message's correlation id;
// its notification names the transfer the email function made.
func TestEmailAttachmentCommand(t *testing.T) {
	const id = "01JNZ0EEEEEEEEEEEEEEEEEEEE"
	routes := domain.Routes{Routes: []domain.Route{
		{Name: "lab-mail", Match: domain.Match{EmailTo: "files@in.example"}, Destination: domain.Destination{Type: "null"},
			Require: []string{"sender", "recipient"},
			Email:   &domain.EmailPolicy{AllowedSenders: []string{"lab.example"}}},
		{Name: "uploads", Match: domain.Match{Prefix: "outbound/"}, Destination: domain.Destination{Type: "null"}},
	}}
	meta := func(from, to, virus, dmarc string) map[string]string {
		return map[string]string{
			"email-from": url.QueryEscape(from), "email-to": to, "email-virus": virus, "email-dmarc": dmarc,
			"subject": "Results+%E2%80%93+May", "correlation-id": "msg-1",
		}
	}
	from := func(md map[string]string) string { v, _ := url.QueryUnescape(md["email-from"]); return v }
	tests := []struct {
		name      string
		md        map[string]string
		route     string
		code      string // the rejection's code, "" for a request
		recipient string
	}{
		{"accepted", meta("ann+lab@lab.example", "Files@In.Example", "PASS", "PASS"), "lab-mail", "", "files@in.example"},
		{"sender not allowed", meta("eve@evil.example", "files@in.example", "PASS", "PASS"), "lab-mail", "SENDER_NOT_ALLOWED", "files@in.example"},
		{"virus", meta("ann@lab.example", "files@in.example", "FAIL", "PASS"), "lab-mail", "VERDICT_FAILED", "files@in.example"},
		{"dmarc", meta("ann@lab.example", "files@in.example", "PASS", "FAIL"), "lab-mail", "VERDICT_FAILED", "files@in.example"},
		{"other address, default policy", meta("eve@evil.example", "other@in.example", "PASS", "GRAY"), "uploads", "", "other@in.example"},
		{"other address, virus", meta("eve@evil.example", "other@in.example", "GRAY", "PASS"), "uploads", "VERDICT_FAILED", "other@in.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{Routes: routes}
			cmd := h.Command(Object{Bucket: bucket, Key: domain.EmailKey(id, "results.csv"), Size: 10, Metadata: tt.md})
			var req domain.Requested
			switch c := cmd.(type) {
			case domain.Request:
				if tt.code != "" {
					t.Fatalf("Command = Request, want a rejection %s", tt.code)
				}
				req = c.Requested
			case domain.Reject:
				if got := domain.CodeOf(c.Reason); got != tt.code {
					t.Fatalf("Command rejected it with %s (%s), want %q", got, c.Reason.Message, tt.code)
				}
				req = c.Requested
			}
			if req.Route != tt.route || req.Recipient != tt.recipient || req.Sender != from(tt.md) {
				t.Errorf("route %q, from %q to %q; want %q, %q, %q", req.Route, req.Sender, req.Recipient, tt.route, from(tt.md), tt.recipient)
			}
			if req.CorrelationID != "msg-1" || req.Filename != "results.csv" || req.Metadata["subject"] != "Results – May" {
				t.Errorf("correlation %q, filename %q, metadata %v", req.CorrelationID, req.Filename, req.Metadata)
			}
			if _, ok := req.Metadata["correlation-id"]; ok {
				t.Error("the correlation id is kept in the metadata too")
			}
		})
	}

	t.Run("notification", func(t *testing.T) {
		f := newFixture(nil)
		f.h.Routes = routes
		key := domain.EmailKey(id, "results.csv")
		f.put(key, object{versionID: version, etag: etag, lastModified: lastModified, size: 5, metadata: meta("ann@lab.example", "files@in.example", "PASS", "PASS")})
		if resp := handle(t, f.h, message("m1", notification(t, key, version))); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("failures: %v", failures(resp))
		}
		got, evs := only(t, f.store)
		if r := evs[0].Payload.(domain.Requested); got != id || r.Route != "lab-mail" || len(evs) != 1 {
			t.Errorf("transfer %s on %q (%d events), want %s requested on lab-mail", got, r.Route, len(evs), id)
		}
	})
}
