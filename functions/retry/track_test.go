package retry

import (
	"context"
	"encoding/json"
	"fmt"
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

const (
	outMsg = "20250301090001000000_OUTMSG" // the MESH message ferry sent
	inMsg  = "20250301085900123456_A1B2C3" // a MESH message ferry received
)

// deliveredAt is when the tracked fixtures were delivered (their fourth
// event, one a second from t0); trackAt is when their first check is due.
var (
	deliveredAt = t0.Add(3 * time.Second)
	trackAt     = deliveredAt.Add(time.Minute)
)

// sentToMESH is the history of a transfer delivered to MESH, waiting for
// the recipient's acknowledgement.
func sentToMESH() []domain.Payload {
	r := domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "b", Key: "outbound/mesh/X26ABC1/a.csv"},
		Destination: domain.Destination{Type: "mesh"},
		Sender:      "X26ABC1", Recipient: "X26ABC2", Workflow: "W",
		Size: 5, ChunkSize: 10, Chunks: 1,
		ExpectAck: true,
	}
	return []domain.Payload{r, domain.Started{}, domain.ChunkSent{Index: 1, Bytes: 5, Ref: outMsg}, domain.Delivered{Ref: outMsg, Location: "mesh://X26ABC2/" + outMsg}}
}

// receivedFromMESH is the history of a MESH message landed in S3, whose
// inbox message is still to be acknowledged.
func receivedFromMESH() []domain.Payload {
	r := domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: "X26ABC1", MessageID: inMsg},
		Destination: domain.Destination{Type: "s3", Bucket: "in", Prefix: "inbound/X26ABC1/"},
		Chunks:      1,
		AckSource:   true,
	}
	return []domain.Payload{r, domain.Started{}, domain.ChunkSent{Index: 1, Bytes: 5}, domain.Delivered{Location: "s3://in/inbound/X26ABC1/" + inMsg + ".dat"}}
}

type trackFixture struct {
	*fixture
	tracker *fakeTracker
	acker   *fakeAcknowledger
}

func newTrackFixture(now time.Time, history []domain.Payload) trackFixture {
	f := trackFixture{fixture: newFixture(now), tracker: &fakeTracker{}, acker: &fakeAcknowledger{}}
	f.h.Trackers = map[string]Tracker{"mesh": f.tracker}
	f.h.Acknowledgers = map[string]Acknowledger{"mesh": f.acker}
	f.store.Seed(id, t0, history...)
	return f
}

func track(t *testing.T, version int, at time.Time) events.SQSMessage {
	t.Helper()
	return msg("m1", body(t, Message{Kind: KindTrack, TransferID: id, Version: version, At: at}))
}

// appendedOne returns the one event appended, failing the test otherwise.
func (f trackFixture) appendedOne(t *testing.T) domain.Event {
	t.Helper()
	if len(f.store.Appended()) != 1 {
		t.Fatalf("appended %+v, want one event", f.store.Appended())
	}
	e := f.store.Appended()[0]
	if e.TransferID != id || e.Seq != 5 {
		t.Errorf("appended %s v%d, want %s v5", e.TransferID, e.Seq, id)
	}
	return e
}

func (f trackFixture) nothingDone(t *testing.T) {
	t.Helper()
	if len(f.store.Appended()) != 0 || len(f.sched.Tracks()) != 0 || len(f.sched.Retries()) != 0 {
		t.Errorf("appended %+v, tracking %v, retries %v; want nothing", f.store.Appended(), f.sched.Tracks(), f.sched.Retries())
	}
}

func TestScheduleTrack(t *testing.T) {
	sq := &fakeSQS{}
	q := &Queue{SQS: sq, URL: "q", Now: func() time.Time { return deliveredAt }}
	if err := q.ScheduleTrack(context.Background(), id, 4, trackAt); err != nil {
		t.Fatal(err)
	}
	if len(sq.sent) != 1 {
		t.Fatalf("sent %d messages, want 1", len(sq.sent))
	}
	in := sq.sent[0]
	if in.DelaySeconds != 60 || aws.ToString(in.QueueUrl) != "q" {
		t.Errorf("delay %d to %q, want 60 to q", in.DelaySeconds, aws.ToString(in.QueueUrl))
	}
	raw := aws.ToString(in.MessageBody)
	if !strings.Contains(raw, `"kind":"track"`) {
		t.Errorf("body %s does not say kind track", raw)
	}
	var got Message
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindTrack || got.TransferID != id || got.Version != 4 || !got.At.Equal(trackAt) {
		t.Errorf("body = %+v, want a track of %s v4 at %v", got, id, trackAt)
	}

	t.Run("a retry says kind retry", func(t *testing.T) {
		sq := &fakeSQS{}
		q := &Queue{SQS: sq, URL: "q", Now: func() time.Time { return t0 }}
		if err := q.ScheduleRetry(context.Background(), id, 4, dueAt); err != nil {
			t.Fatal(err)
		}
		if raw := aws.ToString(sq.sent[0].MessageBody); !strings.Contains(raw, `"kind":"retry"`) {
			t.Errorf("body %s does not say kind retry", raw)
		}
	})

	t.Run("the queue's message wakes a tracking check", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.tracker.got = Tracking{Acknowledged: true, By: "X26ABC2"}
		if got := f.handle(t, msg("m1", raw)); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		if len(f.tracker.calls) != 1 || f.appendedOne(t).Type() != domain.TypeAcknowledged {
			t.Errorf("%d Track calls, appended %+v; want Acknowledged", len(f.tracker.calls), f.store.Appended())
		}
	})
}

func TestGoldenTrackMessage(t *testing.T) {
	ev, m := golden(t, "sqs-track-message.json")
	if want := (Message{Kind: KindTrack, TransferID: id, Version: 4, At: trackAt}); !reflect.DeepEqual(m, want) {
		t.Errorf("message = %+v, want %+v", m, want)
	}
	f := newTrackFixture(trackAt, sentToMESH())
	resp, err := f.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	if len(f.tracker.calls) != 1 {
		t.Errorf("Track called %d times, want 1", len(f.tracker.calls))
	}
}

func TestTrackNotYetDue(t *testing.T) {
	f := newTrackFixture(trackAt.Add(-time.Second), sentToMESH())
	if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if want := []memstore.Scheduled{{ID: id, Version: 4, At: trackAt}}; !reflect.DeepEqual(f.sched.Tracks(), want) {
		t.Errorf("tracking scheduled %v, want %v", f.sched.Tracks(), want)
	}
	if len(f.tracker.calls) != 0 || len(f.store.Appended()) != 0 {
		t.Errorf("%d Track calls, appended %+v before the check was due", len(f.tracker.calls), f.store.Appended())
	}
}

func TestTrackFarEnd(t *testing.T) {
	t.Run("acknowledged", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.tracker.got = Tracking{Acknowledged: true, By: "X26ABC2"}
		if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		if len(f.tracker.calls) != 1 || f.tracker.calls[0].Ref != outMsg || f.tracker.calls[0].Version != 4 {
			t.Errorf("Track(%+v), want the delivered transfer", f.tracker.calls)
		}
		e := f.appendedOne(t)
		if want := (domain.Acknowledged{By: "X26ABC2", Ref: outMsg}); e.Payload != want || !e.At.Equal(trackAt) {
			t.Errorf("appended %+v at %v, want %+v at %v", e.Payload, e.At, want, trackAt)
		}
		if len(f.sched.Tracks()) != 0 {
			t.Errorf("tracking scheduled %v after the acknowledgement", f.sched.Tracks())
		}
	})

	t.Run("refused", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.tracker.got = Tracking{Failure: &domain.Error{Kind: domain.KindInvalid, Code: "14", Message: "undeliverable: not collected"}}
		if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		fl, ok := f.appendedOne(t).Payload.(domain.Failed)
		if !ok {
			t.Fatalf("appended %T, want Failed", f.store.Appended()[0].Payload)
		}
		if fl.Kind != domain.KindInvalid || fl.Code != "14" || fl.Retryable || !fl.NextAttemptAt.IsZero() || fl.Message != "undeliverable: not collected" {
			t.Errorf("Failed = %+v, want final invalid/14", fl)
		}
		if len(f.sched.Tracks()) != 0 {
			t.Errorf("tracking scheduled %v after the failure", f.sched.Tracks())
		}
	})

	for _, tt := range []struct {
		name     string
		interval time.Duration
		err      error
		want     time.Duration
	}{
		{"not yet", 0, nil, time.Minute},
		{"not yet, configured interval", 2 * time.Second, nil, 2 * time.Second},
		{"retryable error", 0, fmt.Errorf("track: %w", domain.Errorf(domain.KindUnavailable, "HTTP 503")), time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := trackAt.Add(5 * time.Second)
			f := newTrackFixture(now, sentToMESH())
			f.h.TrackInterval = tt.interval
			f.tracker.err = tt.err
			if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			if want := []memstore.Scheduled{{ID: id, Version: 4, At: now.Add(tt.want)}}; !reflect.DeepEqual(f.sched.Tracks(), want) {
				t.Errorf("tracking scheduled %v, want %v", f.sched.Tracks(), want)
			}
			if len(f.store.Appended()) != 0 {
				t.Errorf("appended %+v, want nothing", f.store.Appended())
			}
		})
	}

	t.Run("reschedule error is a batch item failure", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.sched.Err = domain.Errorf(domain.KindUnavailable, "sqs down")
		if got := f.handle(t, track(t, 4, trackAt)); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
	})

	t.Run("error not worth repeating", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.tracker.err = fmt.Errorf("track: %w", &domain.Error{Kind: domain.KindUnauthorized, Code: "403", Message: "mesh track: HTTP 403"})
		if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		fl, ok := f.appendedOne(t).Payload.(domain.Failed)
		if !ok || fl.Kind != domain.KindUnauthorized || fl.Code != "403" || fl.Retryable {
			t.Errorf("appended %+v, want a final unauthorized/403 Failed", f.store.Appended()[0].Payload)
		}
		if len(f.sched.Tracks()) != 0 {
			t.Errorf("tracking scheduled %v", f.sched.Tracks())
		}
	})

	t.Run("append conflict is success", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.tracker.got = Tracking{Acknowledged: true}
		f.store.AppendErr = func(domain.State, []domain.Event) error {
			return fmt.Errorf("append %s v5: %w", id, store.ErrConflict)
		}
		if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
			t.Errorf("failures = %v, want none", got)
		}
	})

	t.Run("append error is a batch item failure", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.tracker.got = Tracking{Acknowledged: true}
		f.store.AppendErr = func(domain.State, []domain.Event) error { return domain.Errorf(domain.KindUnavailable, "throttled") }
		if got := f.handle(t, track(t, 4, trackAt)); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
	})

	t.Run("no tracker for the destination is a batch item failure", func(t *testing.T) {
		f := newTrackFixture(trackAt, sentToMESH())
		f.h.Trackers = nil
		if got := f.handle(t, track(t, 4, trackAt)); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
		f.nothingDone(t)
	})
}

func TestTrackGivesUp(t *testing.T) {
	for _, tt := range []struct {
		name     string
		trackFor time.Duration
		now      time.Time
		err      error
		giveUp   bool
	}{
		{"default: five days", 0, deliveredAt.Add(5*24*time.Hour + time.Second), nil, true},
		{"default: not yet five days", 0, deliveredAt.Add(5 * 24 * time.Hour), nil, false},
		{"configured", time.Hour, deliveredAt.Add(time.Hour + time.Second), nil, true},
		{"after a retryable error too", time.Hour, deliveredAt.Add(2 * time.Hour), domain.Errorf(domain.KindUnavailable, "down"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newTrackFixture(tt.now, sentToMESH())
			f.h.TrackFor = tt.trackFor
			f.tracker.err = tt.err
			if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
				t.Fatalf("failures: %v", got)
			}
			if len(f.store.Appended()) != 0 {
				t.Errorf("appended %+v, want nothing", f.store.Appended())
			}
			if rescheduled := len(f.sched.Tracks()) > 0; rescheduled == tt.giveUp {
				t.Errorf("rescheduled %v; want given up: %t", f.sched.Tracks(), tt.giveUp)
			}
		})
	}

	t.Run("an acknowledgement found late is still recorded", func(t *testing.T) {
		f := newTrackFixture(deliveredAt.Add(6*24*time.Hour), sentToMESH())
		f.tracker.got = Tracking{Acknowledged: true, By: "X26ABC2"}
		f.handle(t, track(t, 4, trackAt))
		if f.appendedOne(t).Type() != domain.TypeAcknowledged {
			t.Errorf("appended %+v, want Acknowledged", f.store.Appended())
		}
	})
}

func TestTrackAcknowledgesSource(t *testing.T) {
	t.Run("acknowledged", func(t *testing.T) {
		f := newTrackFixture(trackAt, receivedFromMESH())
		if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		if len(f.acker.calls) != 1 || f.acker.calls[0].Request.Source.MessageID != inMsg {
			t.Errorf("Acknowledge(%+v), want the received message", f.acker.calls)
		}
		if len(f.tracker.calls) != 0 {
			t.Errorf("Track called for a transfer that acknowledges its source")
		}
		if want := (domain.Acknowledged{By: "ferry", Ref: inMsg}); f.appendedOne(t).Payload != want {
			t.Errorf("appended %+v, want %+v", f.store.Appended()[0].Payload, want)
		}
	})

	t.Run("retryable error: looked at again", func(t *testing.T) {
		f := newTrackFixture(trackAt, receivedFromMESH())
		f.acker.err = domain.Errorf(domain.KindUnavailable, "mesh acknowledge: HTTP 503")
		if got := f.handle(t, track(t, 4, trackAt)); len(got) != 0 {
			t.Fatalf("failures: %v", got)
		}
		if want := []memstore.Scheduled{{ID: id, Version: 4, At: trackAt.Add(time.Minute)}}; !reflect.DeepEqual(f.sched.Tracks(), want) {
			t.Errorf("tracking scheduled %v, want %v", f.sched.Tracks(), want)
		}
		if len(f.store.Appended()) != 0 {
			t.Errorf("appended %+v, want nothing", f.store.Appended())
		}
	})

	t.Run("no acknowledger for the source is a batch item failure", func(t *testing.T) {
		f := newTrackFixture(trackAt, receivedFromMESH())
		f.h.Acknowledgers = nil
		if got := f.handle(t, track(t, 4, trackAt)); !slices.Equal(got, []string{"m1"}) {
			t.Errorf("failures = %v, want [m1]", got)
		}
		f.nothingDone(t)
	})

	t.Run("error not worth repeating", func(t *testing.T) {
		f := newTrackFixture(trackAt, receivedFromMESH())
		f.acker.err = &domain.Error{Kind: domain.KindNotFound, Code: "410", Message: "mesh acknowledge: gone"}
		f.handle(t, track(t, 4, trackAt))
		fl, ok := f.appendedOne(t).Payload.(domain.Failed)
		if !ok || fl.Kind != domain.KindNotFound || fl.Code != "410" || fl.Retryable {
			t.Errorf("appended %+v, want a final not_found/410 Failed", f.store.Appended()[0].Payload)
		}
	})
}

func TestTrackNoLongerNeeded(t *testing.T) {
	tests := []struct {
		name    string
		history []domain.Payload
		version int
	}{
		{"already acknowledged", append(sentToMESH(), domain.Acknowledged{By: "X26ABC2"}), 4},
		{"cancelled while waiting", append(sentToMESH(), domain.Cancelled{Actor: "ops"}), 4},
		{"stale version of an acknowledged transfer", append(sentToMESH(), domain.Acknowledged{By: "X26ABC2"}), 5},
		{"not delivered", sentToMESH()[:3], 3},
		{"message from the future", sentToMESH(), 5},
		{"delivered, nothing to wait for", func() []domain.Payload {
			h := sentToMESH()
			r := h[0].(domain.Requested)
			r.ExpectAck = false
			h[0] = r
			return h
		}(), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTrackFixture(trackAt, tt.history)
			f.tracker.got = Tracking{Acknowledged: true}
			if got := f.handle(t, track(t, tt.version, trackAt)); len(got) != 0 {
				t.Errorf("failures: %v, want the message dropped", got)
			}
			if len(f.tracker.calls) != 0 || len(f.acker.calls) != 0 {
				t.Errorf("%d Track and %d Acknowledge calls, want none", len(f.tracker.calls), len(f.acker.calls))
			}
			f.nothingDone(t)
		})
	}
}

func TestRetryMessageIsNotATrack(t *testing.T) {
	// A retry message for a delivered transfer is dropped: only a track
	// message looks for an acknowledgement.
	f := newTrackFixture(trackAt, sentToMESH())
	f.tracker.got = Tracking{Acknowledged: true}
	if got := f.handle(t, msg("m1", body(t, Message{Kind: KindRetry, TransferID: id, Version: 4, At: trackAt}))); len(got) != 0 {
		t.Fatalf("failures: %v", got)
	}
	if len(f.tracker.calls) != 0 {
		t.Errorf("Track called for a retry message")
	}
	f.nothingDone(t)
}
