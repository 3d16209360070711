package retry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/store"
)

const id = "01JNZ0TESTTRANSFER00000000"

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	// dueAt is when the retrying fixture's next attempt is due.
	dueAt = time.Date(2025, 3, 1, 9, 1, 0, 0, time.UTC)
)

func TestScheduleRetryDelay(t *testing.T) {
	now := t0
	tests := []struct {
		name string
		at   time.Time
		want int32
	}{
		{"whole seconds", now.Add(10 * time.Second), 10},
		{"rounds up", now.Add(10*time.Second + 200*time.Millisecond), 11},
		{"a nanosecond is a second", now.Add(time.Nanosecond), 1},
		{"due now", now, 0},
		{"overdue", now.Add(-time.Hour), 0},
		{"just under the cap", now.Add(899*time.Second + 500*time.Millisecond), 900},
		{"at the cap", now.Add(15 * time.Minute), 900},
		{"beyond the cap", now.Add(6 * time.Hour), 900},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sq := &fakeSQS{}
			q := &Queue{SQS: sq, URL: "https://sqs.eu-west-2.amazonaws.com/123456789012/ferry-retry", Now: func() time.Time { return now }}
			if err := q.ScheduleRetry(context.Background(), id, 4, tt.at); err != nil {
				t.Fatal(err)
			}
			if len(sq.sent) != 1 {
				t.Fatalf("sent %d messages, want 1", len(sq.sent))
			}
			in := sq.sent[0]
			if in.DelaySeconds != tt.want {
				t.Errorf("DelaySeconds = %d, want %d", in.DelaySeconds, tt.want)
			}
			if aws.ToString(in.QueueUrl) != q.URL {
				t.Errorf("queue %q, want %q", aws.ToString(in.QueueUrl), q.URL)
			}
			var got Message
			if err := json.Unmarshal([]byte(aws.ToString(in.MessageBody)), &got); err != nil {
				t.Fatalf("body: %v", err)
			}
			if want := (Message{TransferID: id, Version: 4, At: tt.at}); got.TransferID != want.TransferID || got.Version != want.Version || !got.At.Equal(want.At) {
				t.Errorf("body = %+v, want %+v", got, want)
			}
		})
	}
}

func TestScheduleRetryError(t *testing.T) {
	sq := &fakeSQS{err: &smithy.OperationError{ServiceID: "SQS", OperationName: "SendMessage", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}},
			Err:      &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: "try later"},
		},
	}}}
	q := &Queue{SQS: sq, URL: "q", Now: func() time.Time { return t0 }}
	err := q.ScheduleRetry(context.Background(), id, 4, t0.Add(time.Minute))
	if domain.KindOf(err) != domain.KindUnavailable {
		t.Errorf("err = %v, want kind unavailable", err)
	}
}

// retrying is the history of a transfer waiting for its second attempt,
// due at dueAt.
func retrying() []domain.Payload {
	r := domain.Requested{
		Source: domain.Source{Kind: "s3", Bucket: "b", Key: "k"}, Destination: domain.Destination{Type: "null"},
		Size: 25, ChunkSize: 10, Chunks: 3,
	}
	return []domain.Payload{
		r,
		domain.Started{},
		domain.ChunkSent{Index: 1, Bytes: 10},
		domain.Failed{Kind: domain.KindUnavailable, Message: "down", Retryable: true, Attempt: 1, NextAttemptAt: dueAt},
	}
}

type fixture struct {
	h     *Handler
	store *memstore.Store
	sched *memstore.Scheduler
}

func newFixture(now time.Time) *fixture {
	f := &fixture{store: memstore.New(), sched: &memstore.Scheduler{}}
	f.h = &Handler{Store: f.store, Scheduler: f.sched, Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)}
	return f
}

func body(t *testing.T, m Message) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) handle(t *testing.T, msgs ...events.SQSMessage) []string {
	t.Helper()
	resp, err := f.h.Handle(context.Background(), events.SQSEvent{Records: msgs})
	if err != nil {
		t.Fatalf("Handle returned an error: %v", err)
	}
	return memstore.QueueFailures(resp)
}

func msg(id, body string) events.SQSMessage {
	return events.SQSMessage{MessageId: id, Body: body, EventSource: "aws:sqs"}
}

// golden reads the SQS event in testdata/name and the Message its first
// record carries.
func golden(t *testing.T, name string) (events.SQSEvent, Message) {
	t.Helper()
	var ev events.SQSEvent
	memstore.ReadJSON(t, "testdata/"+name, &ev)
	var m Message
	if err := json.Unmarshal([]byte(ev.Records[0].Body), &m); err != nil {
		t.Fatal(err)
	}
	return ev, m
}

func TestGoldenRetryMessage(t *testing.T) {
	ev, m := golden(t, "sqs-retry-message.json")
	if want := (Message{TransferID: id, Version: 4, At: dueAt}); !reflect.DeepEqual(m, want) {
		t.Errorf("message = %+v, want %+v", m, want)
	}
	f := newFixture(dueAt.Add(time.Second))
	f.store.Seed(id, t0, retrying()...)
	resp, err := f.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	if len(f.store.Appended()) != 1 || f.store.Appended()[0].Type() != domain.TypeRetried {
		t.Errorf("appended %+v, want Retried", f.store.Appended())
	}
}

func TestDueRetryAppendsRetried(t *testing.T) {
	for _, now := range []time.Time{dueAt, dueAt.Add(3 * time.Second)} {
		f := newFixture(now)
		f.store.Seed(id, t0, retrying()...)
		if got := f.handle(t, msg("m1", body(t, Message{TransferID: id, Version: 4, At: dueAt}))); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		want := []domain.Event{{TransferID: id, Seq: 5, At: now, Payload: domain.Retried{Attempt: 2}}}
		if !reflect.DeepEqual(f.store.Appended(), want) {
			t.Errorf("now %v: appended %+v, want %+v", now, f.store.Appended(), want)
		}
		if len(f.sched.Retries()) != 0 {
			t.Errorf("rescheduled %v, want nothing", f.sched.Retries())
		}
	}
}

func TestEarlyRetryIsRescheduled(t *testing.T) {
	// A wait longer than SQS's 15 minutes takes several hops.
	f := newFixture(dueAt.Add(-20 * time.Minute))
	f.store.Seed(id, t0, retrying()...)
	if got := f.handle(t, msg("m1", body(t, Message{TransferID: id, Version: 4, At: dueAt}))); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if want := []memstore.Scheduled{{ID: id, Version: 4, At: dueAt}}; !reflect.DeepEqual(f.sched.Retries(), want) {
		t.Errorf("scheduled %v, want %v", f.sched.Retries(), want)
	}
	if len(f.store.Appended()) != 0 {
		t.Errorf("appended %+v before the retry was due", f.store.Appended())
	}

	t.Run("scheduler error is a batch item failure", func(t *testing.T) {
		f.sched.Err = domain.Errorf(domain.KindUnavailable, "sqs down")
		if got := f.handle(t, msg("m1", body(t, Message{TransferID: id, Version: 4}))); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
	})
}

func TestMovedOnIsDropped(t *testing.T) {
	base := retrying()
	tests := []struct {
		name    string
		history []domain.Payload
		version int // of the message; 4 (the retrying version) if 0
	}{
		{"already retried", append(slices.Clone(base), domain.Retried{Attempt: 2}), 0},
		{"retried and failed again", append(slices.Clone(base), domain.Retried{Attempt: 2},
			domain.Failed{Kind: domain.KindUnavailable, Retryable: true, Attempt: 2, NextAttemptAt: dueAt.Add(time.Hour)}), 0},
		{"cancelled", append(slices.Clone(base), domain.Cancelled{Actor: "ops"}), 0},
		// A message naming the current version of a transfer that is not
		// waiting for a retry (sent by mistake, or by hand).
		{"not retrying", base[:3:3], 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(dueAt.Add(time.Hour + time.Minute))
			f.store.Seed(id, t0, tt.history...)
			version := 4
			if tt.version != 0 {
				version = tt.version
			}
			if got := f.handle(t, msg("m1", body(t, Message{TransferID: id, Version: version, At: dueAt}))); len(got) != 0 {
				t.Errorf("failures: %v, want the message dropped", got)
			}
			if len(f.store.Appended()) != 0 || len(f.sched.Retries()) != 0 {
				t.Errorf("appended %+v, scheduled %v; want nothing", f.store.Appended(), f.sched.Retries())
			}
		})
	}
}

func TestBadMessagesFailOnlyThemselves(t *testing.T) {
	f := newFixture(dueAt)
	f.store.Seed(id, t0, retrying()...)
	got := f.handle(t,
		msg("not-json", "retry 01JNZ0TESTTRANSFER00000000 please"),
		msg("no-id", `{"version":4}`),
		msg("wrong-type", `{"transferId":42,"version":4}`),
		msg("good", body(t, Message{TransferID: id, Version: 4, At: dueAt})),
	)
	if want := []string{"no-id", "not-json", "wrong-type"}; !slices.Equal(got, want) {
		t.Errorf("failures = %v, want %v", got, want)
	}
	if len(f.store.Appended()) != 1 {
		t.Errorf("appended %d events, want the good message's Retried", len(f.store.Appended()))
	}
}

func TestStoreErrors(t *testing.T) {
	m := Message{TransferID: id, Version: 4, At: dueAt}
	t.Run("load error fails the message", func(t *testing.T) {
		f := newFixture(dueAt)
		f.store.LoadErr = func(string) error { return domain.Errorf(domain.KindUnavailable, "throttled") }
		if got := f.handle(t, msg("m1", body(t, m))); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
	})
	t.Run("append conflict is success", func(t *testing.T) {
		f := newFixture(dueAt)
		f.store.Seed(id, t0, retrying()...)
		f.store.AppendErr = func(domain.State, []domain.Event) error {
			return fmt.Errorf("append %s v5: %w", id, store.ErrConflict)
		}
		if got := f.handle(t, msg("m1", body(t, m))); len(got) != 0 {
			t.Errorf("failures = %v, want none", got)
		}
	})
	t.Run("append error fails the message", func(t *testing.T) {
		f := newFixture(dueAt)
		f.store.Seed(id, t0, retrying()...)
		f.store.AppendErr = func(domain.State, []domain.Event) error { return domain.Errorf(domain.KindUnavailable, "throttled") }
		if got := f.handle(t, msg("m1", body(t, m))); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
	})
}

func TestQueueMessagesWakeTheHandler(t *testing.T) {
	sq := &fakeSQS{}
	q := &Queue{SQS: sq, URL: "q", Now: func() time.Time { return t0 }}
	if err := q.ScheduleRetry(context.Background(), id, 4, dueAt); err != nil {
		t.Fatal(err)
	}
	f := newFixture(dueAt)
	f.store.Seed(id, t0, retrying()...)
	if got := f.handle(t, msg("m1", aws.ToString(sq.sent[0].MessageBody))); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if len(f.store.Appended()) != 1 {
		t.Errorf("the queue's own message did not lead to Retried")
	}
}
