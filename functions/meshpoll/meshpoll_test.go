package meshpoll

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/fakeclock"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport/mesh"
)

// now is the handler's clock at the start of every test.
var now = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

const (
	mailbox = "X26ABC1"
	other   = "X26ABC2"
	bucket  = "ferry-inbound"

	// MESH message ids begin with their time, yyyyMMddHHmmss.
	msg1 = "20250301085900123456_A1B2C3"
	msg2 = "20250301085930654321_D4E5F6"
	// report is a non-delivery report in mailbox's inbox about outMsg, a
	// message ferry sent from mailbox.
	report = "20250301085959000001_REPORT"
	outMsg = "20250301080000000000_OUTMSG"
	outID  = "01JNZ0OUTBOUND000000000000"
)

type fixture struct {
	h       *Handler
	log     *memstore.Journal
	store   *memstore.Store
	inboxes map[string]*fakeInbox
	clock   *fakeclock.Clock
}

// newFixture builds a handler whose messages land as in says (in the
// inbound bucket when in names none), changed by edits.
func newFixture(in mesh.InboundConfig, edits ...func(*Handler)) *fixture {
	log := &memstore.Journal{}
	f := &fixture{log: log, store: &memstore.Store{Log: log}, clock: fakeclock.New(now), inboxes: map[string]*fakeInbox{}}
	boxes := map[string]Inbox{}
	for _, id := range []string{mailbox, other} {
		f.inboxes[id] = newInbox(id, log)
		boxes[id] = f.inboxes[id]
	}
	if in.Bucket == "" {
		in.Bucket = bucket
	}
	f.h = &Handler{Store: f.store, Mailboxes: boxes, Landing: in, Now: f.clock.Now, Log: slog.New(slog.DiscardHandler)}
	for _, edit := range edits {
		edit(f.h)
	}
	return f
}

func (f *fixture) poll(t *testing.T, mb string) Result {
	t.Helper()
	res, err := f.h.Poll(context.Background(), mb)
	if err != nil {
		t.Fatalf("Poll(%s) = %v", mb, err)
	}
	return res
}

// requested returns the Requested payload of inbound transfer msgID in mb,
// failing the test unless it is the transfer's only event.
func (f *fixture) requested(t *testing.T, mb, msgID string) domain.Requested {
	t.Helper()
	id := mesh.TransferID(mb, msgID)
	evs := f.store.History(id)
	if len(evs) != 1 {
		t.Fatalf("transfer of %s/%s has %d events, want [Requested]", mb, msgID, len(evs))
	}
	e := evs[0]
	if e.TransferID != id || e.Seq != 1 || !e.At.Equal(f.clock.Now()) {
		t.Errorf("event stamped %s v%d at %v, want %s v1 at %v", e.TransferID, e.Seq, e.At, id, f.clock.Now())
	}
	r, ok := e.Payload.(domain.Requested)
	if !ok {
		t.Fatalf("payload is %T, want Requested", e.Payload)
	}
	return r
}

// dataHead is what HEAD says of a DATA message from other to mailbox in
// total chunks.
func dataHead(msgID string, total int) mesh.Head {
	return mesh.Head{Total: total, Headers: mesh.MessageHeaders{
		MessageID:   msgID,
		From:        other,
		To:          mailbox,
		WorkflowID:  "TEST_WORKFLOW",
		FileName:    "monthly report (2).csv",
		MessageType: mesh.MessageTypeData,
		StatusCode:  "00",
		All: map[string]string{
			"mex-messageid":   msgID,
			"mex-from":        other,
			"mex-to":          mailbox,
			"mex-workflowid":  "TEST_WORKFLOW",
			"mex-filename":    "monthly report (2).csv",
			"mex-messagetype": "DATA",
			"mex-statuscode":  "00",
			"mex-subject":     "March",
		},
	}}
}

// reportHead is what HEAD says of a non-delivery report about linked,
// raised at raised, with the given status code.
func reportHead(msgID, linked, code string, raised time.Time) mesh.Head {
	ts := raised.UTC().Format("20060102150405")
	return mesh.Head{Total: 1, Headers: mesh.MessageHeaders{
		MessageID:         msgID,
		To:                mailbox,
		WorkflowID:        "TEST_WORKFLOW",
		FileName:          msgID + ".dat",
		MessageType:       mesh.MessageTypeReport,
		LinkedMsgID:       linked,
		StatusCode:        code,
		StatusEvent:       "TRANSFER",
		StatusDescription: "Message not collected by recipient after 5 days",
		StatusSuccess:     "ERROR",
		StatusTimestamp:   ts,
		All: map[string]string{
			"mex-messageid":         msgID,
			"mex-to":                mailbox,
			"mex-workflowid":        "TEST_WORKFLOW",
			"mex-messagetype":       "REPORT",
			"mex-linkedmsgid":       linked,
			"mex-statuscode":        code,
			"mex-statusevent":       "TRANSFER",
			"mex-statusdescription": "Message not collected by recipient after 5 days",
			"mex-statussuccess":     "ERROR",
			"mex-statustimestamp":   ts,
		},
	}}
}

func TestPollRegistersOneTransferPerMessage(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	f.inboxes[mailbox].put(dataHead(msg1, 3), dataHead(msg2, 1))
	res := f.poll(t, mailbox)
	if want := (Result{Listed: 2, Created: 2}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if n := len(f.store.IDs()); n != 2 {
		t.Fatalf("%d transfers, want 2", n)
	}
	got := f.requested(t, mailbox, msg1)
	want := domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: mailbox, MessageID: msg1},
		Route:       "mesh-inbound",
		Destination: domain.Destination{Type: "s3", Bucket: bucket, Prefix: "inbound/" + mailbox + "/"},
		Sender:      other,
		Recipient:   mailbox,
		Workflow:    "TEST_WORKFLOW",
		Filename:    msg1 + ".dat",
		ChunkSize:   0,
		Chunks:      3,
		AckSource:   true,
		Metadata:    dataHead(msg1, 3).Headers.All,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Requested:\n got %+v\nwant %+v", got, want)
	}
	if !got.SourceChunked() {
		t.Errorf("transfer is not source-chunked: MESH chose the chunks")
	}
	if r := f.requested(t, mailbox, msg2); r.Chunks != 1 || r.Source.MessageID != msg2 || r.Filename != msg2+".dat" {
		t.Errorf("second message: chunks %d, message %s, filename %s", r.Chunks, r.Source.MessageID, r.Filename)
	}
	if st := domain.Fold(domain.State{}, f.store.History(mesh.TransferID(mailbox, msg1))...); st.Status != domain.StatusInProgress || domain.Next(st).Kind != domain.ActBegin {
		t.Errorf("status %s, next %s; want a transfer ready to begin", st.Status, domain.Next(st).Kind)
	}
}

func TestLandingPlace(t *testing.T) {
	withoutName := dataHead(msg2, 1)
	withoutName.Headers.FileName = ""
	tests := []struct {
		name       string
		in         mesh.InboundConfig
		head       mesh.Head
		wantPrefix string
		wantFile   string
	}{
		{"default", mesh.InboundConfig{}, dataHead(msg1, 1), "inbound/X26ABC1/", msg1 + ".dat"},
		{"configured prefix", mesh.InboundConfig{Prefix: "mesh/in/"}, dataHead(msg1, 1), "mesh/in/X26ABC1/", msg1 + ".dat"},
		{"sender's filename", mesh.InboundConfig{UseSenderFilename: true}, dataHead(msg1, 1), "inbound/X26ABC1/", "monthly report (2).csv"},
		{"sender gave no filename", mesh.InboundConfig{UseSenderFilename: true}, withoutName, "inbound/X26ABC1/", msg2 + ".dat"},
		{"report", mesh.InboundConfig{}, reportHead(report, "", "14", now), "inbound/X26ABC1/", report + ".ctl"},
		{"report ignores the sender's filename", mesh.InboundConfig{UseSenderFilename: true}, reportHead(report, "", "14", now), "inbound/X26ABC1/", report + ".ctl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(tt.in)
			f.inboxes[mailbox].put(tt.head)
			if res := f.poll(t, mailbox); res.Created != 1 {
				t.Fatalf("result = %+v, want one created", res)
			}
			r := f.requested(t, mailbox, tt.head.Headers.MessageID)
			if want := (domain.Destination{Type: "s3", Bucket: bucket, Prefix: tt.wantPrefix}); r.Destination != want {
				t.Errorf("destination = %+v, want %+v", r.Destination, want)
			}
			if r.Filename != tt.wantFile {
				t.Errorf("filename = %q, want %q", r.Filename, tt.wantFile)
			}
			if !reflect.DeepEqual(r.Metadata, tt.head.Headers.All) {
				t.Errorf("metadata = %v, want every mex-* header %v", r.Metadata, tt.head.Headers.All)
			}
		})
	}
}

func TestKnownMessages(t *testing.T) {
	t.Run("a known message costs no Head", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.store.Seed(mesh.TransferID(mailbox, msg1), now.Add(-time.Minute), domain.Requested{
			Source: domain.Source{Kind: "mesh", Mailbox: mailbox, MessageID: msg1}, Destination: domain.Destination{Type: "s3", Bucket: bucket}, Chunks: 1, AckSource: true,
		})
		f.inboxes[mailbox].put(dataHead(msg1, 1), dataHead(msg2, 1))
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 2, Created: 1, Known: 1}); res != want {
			t.Errorf("result = %+v, want %+v", res, want)
		}
		if got := f.inboxes[mailbox].headsAsked(); !slices.Equal(got, []string{msg2}) {
			t.Errorf("Head(%v), want only the new message's", got)
		}
		if n := len(f.store.History(mesh.TransferID(mailbox, msg1))); n != 1 {
			t.Errorf("known transfer has %d events, want its 1", n)
		}
	})

	t.Run("listed again", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.inboxes[mailbox].put(dataHead(msg1, 2))
		f.poll(t, mailbox)
		f.inboxes[mailbox].put(dataHead(msg1, 2))
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 1, Known: 1}); res != want {
			t.Errorf("second poll = %+v, want %+v", res, want)
		}
		if n := len(f.inboxes[mailbox].headsAsked()); n != 1 {
			t.Errorf("Head called %d times, want 1", n)
		}
		if n := len(f.store.IDs()); n != 1 {
			t.Errorf("%d transfers, want 1", n)
		}
	})

	t.Run("an append conflict counts as known", func(t *testing.T) {
		// Another poller registered the message between Load and Append.
		f := newFixture(mesh.InboundConfig{})
		f.store.AppendErr = func(prev domain.State, _ []domain.Event) error {
			return fmt.Errorf("append %s v1: %w", prev.ID, store.ErrConflict)
		}
		f.inboxes[mailbox].put(dataHead(msg1, 1))
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 1, Known: 1}); res != want {
			t.Errorf("result = %+v, want %+v", res, want)
		}
	})

	t.Run("the same message id in another mailbox is another transfer", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.inboxes[mailbox].put(dataHead(msg1, 1))
		f.inboxes[other].put(dataHead(msg1, 1))
		f.poll(t, mailbox)
		if res := f.poll(t, other); res.Created != 1 {
			t.Errorf("result in %s = %+v, want one created", other, res)
		}
		if r := f.requested(t, other, msg1); r.Source.Mailbox != other || r.Destination.Prefix != "inbound/"+other+"/" {
			t.Errorf("source %+v, destination %+v; want mailbox %s's", r.Source, r.Destination, other)
		}
	})
}

func TestStoreErrorsLeaveTheMessage(t *testing.T) {
	unavailable := domain.Errorf(domain.KindUnavailable, "throttled")
	t.Run("load", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.store.LoadErr = func(string) error { return unavailable }
		f.inboxes[mailbox].put(dataHead(msg1, 1))
		if res := f.poll(t, mailbox); res != (Result{Listed: 1, Failed: 1}) {
			t.Errorf("result = %+v, want the message failed", res)
		}
		if n := len(f.inboxes[mailbox].headsAsked()); n != 0 {
			t.Errorf("Head called %d times after a failed Load", n)
		}
	})
	t.Run("append", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.store.AppendErr = func(domain.State, []domain.Event) error { return unavailable }
		f.inboxes[mailbox].put(dataHead(msg1, 1))
		if res := f.poll(t, mailbox); res != (Result{Listed: 1, Failed: 1}) {
			t.Errorf("result = %+v, want the message failed", res)
		}
	})
}

func TestUnsafeMessageIDsAreRefusedAndRecorded(t *testing.T) {
	for _, bad := range []string{"../../etc/passwd", "a/b", "x?y=1", ".hidden", "spaced id", strings.Repeat("9", 101), "caf\u00e9"} {
		t.Run(bad[:min(len(bad), 20)], func(t *testing.T) {
			f := newFixture(mesh.InboundConfig{})
			in := f.inboxes[mailbox]
			in.pages = []mesh.InboxPage{{MessageIDs: []string{bad, msg1}}}
			in.heads[msg1] = dataHead(msg1, 1)
			res := f.poll(t, mailbox)
			if want := (Result{Listed: 2, Created: 1, Refused: 1}); res != want {
				t.Errorf("poll = %+v, want %+v", res, want)
			}
			for _, id := range in.headsAsked() {
				if id == bad {
					t.Errorf("Head was called for %q: the id reached a URL", bad)
				}
			}
			evs := f.store.History(mesh.TransferID(mailbox, bad))
			if got := eventTypes(evs); !slices.Equal(got, []domain.EventType{domain.TypeRequested, domain.TypeFailed}) {
				t.Fatalf("events %v, want Requested and Failed", got)
			}
			fl := evs[1].Payload.(domain.Failed)
			if fl.Retryable || fl.Code != "INVALID_MESSAGE_ID" || !strings.Contains(fl.Message, "invalid MESH message id") {
				t.Errorf("failure %+v, want final INVALID_MESSAGE_ID", fl)
			}
			if r := evs[0].Payload.(domain.Requested); r.Source.Mailbox != mailbox || len(r.Source.MessageID) > maxRecordedID+len("…") {
				t.Errorf("source %+v: want the mailbox and at most %d bytes of the id", r.Source, maxRecordedID)
			}
			// Listed again: the record is found, nothing more is written.
			in.pages = []mesh.InboxPage{{MessageIDs: []string{bad}}}
			if res := f.poll(t, mailbox); res != (Result{Listed: 1, Known: 1}) {
				t.Errorf("second poll = %+v, want the refused message known", res)
			}
		})
	}
}

func TestHeadErrorLeavesMessageForNextPoll(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	in := f.inboxes[mailbox]
	in.headErr[msg1] = domain.Errorf(domain.KindUnavailable, "mesh head %s: HTTP 503", msg1)
	in.put(dataHead(msg1, 1), dataHead(msg2, 1))
	res := f.poll(t, mailbox)
	if want := (Result{Listed: 2, Created: 1, Failed: 1}); res != want {
		t.Errorf("first poll = %+v, want %+v", res, want)
	}
	if got := f.store.History(mesh.TransferID(mailbox, msg1)); len(got) != 0 {
		t.Errorf("failed message has events %v", got)
	}

	in.mu.Lock()
	delete(in.headErr, msg1)
	in.mu.Unlock()
	in.put(dataHead(msg1, 1), dataHead(msg2, 1))
	res = f.poll(t, mailbox)
	if want := (Result{Listed: 2, Created: 1, Known: 1}); res != want {
		t.Errorf("next poll = %+v, want %+v", res, want)
	}
	f.requested(t, mailbox, msg1)
}

func TestListingErrorFailsThePoll(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	f.inboxes[mailbox].listErr = domain.Errorf(domain.KindUnauthorized, "mesh list inbox: HTTP 403")
	_, err := f.h.Poll(context.Background(), mailbox)
	if domain.KindOf(err) != domain.KindUnauthorized {
		t.Errorf("Poll = %v, want the listing's unauthorized error", err)
	}
	if len(f.store.IDs()) != 0 {
		t.Errorf("transfers created after a failed listing")
	}
}

func TestPaging(t *testing.T) {
	ids := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("202503010859%02d000000_M%05d", i%60, i))
		}
		return out
	}

	t.Run("full pages are listed again", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{}, func(h *Handler) { h.PageLimit = 2 })
		in := f.inboxes[mailbox]
		all := ids(5)
		for _, id := range all {
			in.heads[id] = dataHead(id, 1)
		}
		in.pages = []mesh.InboxPage{
			{MessageIDs: all[0:2], ContinueFrom: "c1"},
			{MessageIDs: all[2:4]}, // full, but no next link: list again
			{MessageIDs: all[4:5]},
			{MessageIDs: []string{"never listed"}},
		}
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 5, Created: 5}); res != want {
			t.Errorf("result = %+v, want %+v", res, want)
		}
		want := []listing{{2, ""}, {2, "c1"}, {2, ""}}
		if got := in.listed(); !reflect.DeepEqual(got, want) {
			t.Errorf("listings = %+v, want %+v", got, want)
		}
	})

	t.Run("stops after MaxPages", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{}, func(h *Handler) { h.PageLimit, h.MaxPages = 1, 3 })
		in := f.inboxes[mailbox]
		for i, id := range ids(5) {
			in.heads[id] = dataHead(id, 1)
			in.pages = append(in.pages, mesh.InboxPage{MessageIDs: []string{id}, ContinueFrom: fmt.Sprint("c", i+1)})
		}
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 3, Created: 3}); res != want {
			t.Errorf("result = %+v, want %+v", res, want)
		}
		if got := len(in.listed()); got != 3 {
			t.Errorf("listed %d times, want MaxPages = 3", got)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		in := f.inboxes[mailbox]
		for range 12 {
			in.pages = append(in.pages, mesh.InboxPage{MessageIDs: make([]string, 500)})
		}
		for i := range in.pages {
			for j := range in.pages[i].MessageIDs {
				in.pages[i].MessageIDs[j] = fmt.Sprintf("20250301085900%06d_P%02d", j, i)
			}
		}
		// Every listed message is already known: Head is never needed.
		for _, p := range in.pages {
			for _, id := range p.MessageIDs {
				f.store.Put(domain.Event{TransferID: mesh.TransferID(mailbox, id), Seq: 1, At: now, Payload: domain.Requested{}})
			}
		}
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 5000, Known: 5000}); res != want {
			t.Errorf("result = %+v, want %+v (10 pages of 500)", res, want)
		}
		got := in.listed()
		if len(got) != 10 || got[0].MaxResults != 500 {
			t.Errorf("listings = %d, first %+v; want 10 of max_results 500", len(got), got[0])
		}
	})
}

func TestHandshake(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	a, b := f.inboxes[mailbox], f.inboxes[other]
	f.poll(t, mailbox)
	if a.handshakeCount() != 1 {
		t.Fatalf("%d handshakes on the first poll, want 1", a.handshakeCount())
	}
	if got := f.log.All(); len(got) < 2 || got[0] != "handshake "+mailbox || !strings.HasPrefix(got[1], "list ") {
		t.Errorf("journal = %q, want the handshake before the listing", got)
	}
	// Every poll ensures the handshake; the client keeps the once-a-day
	// rule (mesh.Client.EnsureHandshake), shared with the outbound side.
	f.poll(t, mailbox)
	if a.handshakeCount() != 2 {
		t.Errorf("%d handshakes ensured after two polls, want 2", a.handshakeCount())
	}
	f.poll(t, other)
	if b.handshakeCount() != 1 {
		t.Errorf("other mailbox: %d handshakes, want its own 1", b.handshakeCount())
	}

	t.Run("a failed handshake fails the poll and is tried again", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		in := f.inboxes[mailbox]
		in.handshakeErr = domain.Errorf(domain.KindUnauthorized, "mesh handshake: HTTP 403")
		in.put(dataHead(msg1, 1))
		if _, err := f.h.Poll(context.Background(), mailbox); domain.KindOf(err) != domain.KindUnauthorized {
			t.Errorf("Poll = %v, want the handshake's error", err)
		}
		if n := len(in.listed()); n != 0 {
			t.Errorf("listed %d times after a failed handshake", n)
		}
		in.handshakeErr = nil
		f.clock.Advance(time.Minute)
		if res := f.poll(t, mailbox); res.Created != 1 {
			t.Errorf("result = %+v, want one created", res)
		}
		if in.handshakeCount() != 2 {
			t.Errorf("%d handshakes, want the failed one repeated", in.handshakeCount())
		}
	})
}

func TestUnknownMailbox(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	_, err := f.h.Poll(context.Background(), "X26ZZZ9")
	if domain.KindOf(err) != domain.KindInvalid || !strings.Contains(fmt.Sprint(err), "X26ZZZ9") {
		t.Errorf("Poll = %v, want an invalid error naming the mailbox", err)
	}
	for _, in := range f.inboxes {
		if in.handshakeCount() != 0 || len(in.listed()) != 0 {
			t.Errorf("mailbox %s was called", in.mailbox)
		}
	}
}

func TestHandleInput(t *testing.T) {
	var in Input
	if err := json.Unmarshal([]byte(`{"mailbox":"X26ABC1"}`), &in); err != nil {
		t.Fatal(err)
	}
	f := newFixture(mesh.InboundConfig{})
	f.inboxes[mailbox].put(dataHead(msg1, 1))
	res, err := f.h.Handle(context.Background(), in)
	if err != nil || res.Created != 1 {
		t.Errorf("Handle = %+v, %v; want one created", res, err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"listed":1,"created":1,"known":0,"failed":0,"reportsFor":0,"refused":0}`; string(b) != want {
		t.Errorf("result JSON = %s, want %s", b, want)
	}
}

// outbound is the history of a transfer ferry sent from mailbox as outMsg;
// delivered and, when expectAck, waiting for the recipient's
// acknowledgement.
func outbound(expectAck bool) []domain.Payload {
	r := domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "ferry-outbound", Key: "outbound/mesh/X26ABC1/a.csv"},
		Route:       "mesh-out",
		Destination: domain.Destination{Type: "mesh"},
		Sender:      mailbox,
		Recipient:   "X26ABC3",
		Workflow:    "TEST_WORKFLOW",
		Size:        5,
		ChunkSize:   10,
		Chunks:      1,
		ExpectAck:   expectAck,
	}
	return []domain.Payload{r, domain.Started{}, domain.ChunkSent{Index: 1, Bytes: 5, Ref: outMsg}, domain.Delivered{Ref: outMsg, Location: "mesh://X26ABC3/" + outMsg}}
}

// seedOutbound stores history as the outbound transfer outID and projects
// its view, as publish does from the stream: the store finds a transfer by
// its MESH message id in the read model.
func seedOutbound(t *testing.T, f *fixture, history []domain.Payload) {
	t.Helper()
	_, states := f.store.Seed(outID, now.Add(-time.Hour), history...)
	if _, err := f.store.Project(context.Background(), states[len(states)-1]); err != nil {
		t.Fatal(err)
	}
}

func TestReportFailsTheOutboundTransfer(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	seedOutbound(t, f, outbound(true))
	f.inboxes[mailbox].put(reportHead(report, outMsg, "14", now.Add(-time.Minute)))
	res := f.poll(t, mailbox)
	if want := (Result{Listed: 1, Created: 1, ReportsFor: 1}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if got := f.store.FindCalls(); !slices.Equal(got, []string{outMsg}) {
		t.Errorf("FindByRef(%q), want the linked message id", got)
	}

	hist := f.store.History(outID)
	if len(hist) != 5 {
		t.Fatalf("outbound transfer has %d events, want a Failed after its 4", len(hist))
	}
	last := hist[4]
	fl, ok := last.Payload.(domain.Failed)
	if !ok {
		t.Fatalf("last event is %T, want Failed", last.Payload)
	}
	if fl.Kind != domain.KindInvalid || fl.Code != "14" || fl.Retryable || !fl.NextAttemptAt.IsZero() || fl.Attempt != 1 {
		t.Errorf("Failed = %+v, want final, invalid, code 14, attempt 1", fl)
	}
	for _, s := range []string{report, "Message not collected by recipient after 5 days", "TRANSFER"} {
		if !strings.Contains(fl.Message, s) {
			t.Errorf("message %q does not mention %q", fl.Message, s)
		}
	}
	if last.Seq != 5 || !last.At.Equal(now) {
		t.Errorf("Failed is v%d at %v, want v5 at %v", last.Seq, last.At, now)
	}
	if st := domain.Fold(domain.State{}, hist...); st.Status != domain.StatusFailed {
		t.Errorf("outbound status = %s, want %s", st.Status, domain.StatusFailed)
	}

	r := f.requested(t, mailbox, report)
	if r.Filename != report+".ctl" || r.Source.MessageID != report || !r.AckSource {
		t.Errorf("report registered as %+v, want %s.ctl acknowledged at the source", r, report)
	}
	// The outbound transfer fails first: if registering the report fails,
	// the next poll finds the report again.
	var appends []string
	for _, e := range f.log.All() {
		if strings.HasPrefix(e, "append ") {
			appends = append(appends, e)
		}
	}
	if want := []string{"append " + outID + " Failed", "append " + mesh.TransferID(mailbox, report) + " Requested"}; !slices.Equal(appends, want) {
		t.Errorf("appends = %q, want %q", appends, want)
	}
}

func TestReportLeftWhenTheFailureIsNotRecorded(t *testing.T) {
	f := newFixture(mesh.InboundConfig{})
	seedOutbound(t, f, outbound(true))
	f.store.AppendErr = func(prev domain.State, _ []domain.Event) error {
		if prev.ID == outID {
			return domain.Errorf(domain.KindUnavailable, "throttled")
		}
		return nil
	}
	f.inboxes[mailbox].put(reportHead(report, outMsg, "14", now))
	if res := f.poll(t, mailbox); res != (Result{Listed: 1, Failed: 1}) {
		t.Errorf("result = %+v, want the report left for the next poll", res)
	}
	if got := f.store.History(mesh.TransferID(mailbox, report)); len(got) != 0 {
		t.Errorf("report registered (%d events) though the outbound failure was not recorded", len(got))
	}
}

func TestReportsThatFailNothing(t *testing.T) {
	acknowledged := append(outbound(true), domain.Acknowledged{By: "X26ABC3"})
	tests := []struct {
		name     string
		history  []domain.Payload
		head     mesh.Head
		wantFind bool
	}{
		{"status 00", outbound(true), reportHead(report, outMsg, "00", now), false},
		{"no linked message", outbound(true), reportHead(report, "", "14", now), false},
		{"already acknowledged", acknowledged, reportHead(report, outMsg, "14", now), true},
		{"delivered without waiting for an acknowledgement", outbound(false), reportHead(report, outMsg, "14", now), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(mesh.InboundConfig{})
			seedOutbound(t, f, tt.history)
			f.inboxes[mailbox].put(tt.head)
			res := f.poll(t, mailbox)
			if want := (Result{Listed: 1, Created: 1}); res != want {
				t.Errorf("result = %+v, want %+v", res, want)
			}
			if got := len(f.store.History(outID)); got != len(tt.history) {
				t.Errorf("outbound transfer has %d events, want its %d unchanged", got, len(tt.history))
			}
			if found := len(f.store.FindCalls()) > 0; found != tt.wantFind {
				t.Errorf("FindByRef called: %t, want %t", found, tt.wantFind)
			}
			if r := f.requested(t, mailbox, report); r.Filename != report+".ctl" {
				t.Errorf("filename = %q, want %s.ctl", r.Filename, report)
			}
		})
	}
}

func TestReportAboutUnknownMessage(t *testing.T) {
	t.Run("young: held back, then landed once the grace has passed", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		in := f.inboxes[mailbox]
		in.put(reportHead(report, outMsg, "14", now.Add(-time.Minute)))
		res := f.poll(t, mailbox)
		if want := (Result{Listed: 1, Failed: 1}); res != want {
			t.Errorf("result = %+v, want %+v", res, want)
		}
		if n := len(f.store.IDs()); n != 0 {
			t.Errorf("%d transfers, want the report held back", n)
		}

		f.clock.Advance(5 * time.Minute)
		in.put(reportHead(report, outMsg, "14", now.Add(-time.Minute)))
		if res := f.poll(t, mailbox); res.Failed != 1 || res.Created != 0 {
			t.Errorf("6 minutes old: result = %+v, want held back", res)
		}

		f.clock.Advance(5*time.Minute + time.Second)
		in.put(reportHead(report, outMsg, "14", now.Add(-time.Minute)))
		if res := f.poll(t, mailbox); res != (Result{Listed: 1, Created: 1}) {
			t.Errorf("past the grace: result = %+v, want the report landed", res)
		}
		f.requested(t, mailbox, report)
	})

	t.Run("old: landed at once", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.inboxes[mailbox].put(reportHead(report, outMsg, "14", now.Add(-11*time.Minute)))
		if res := f.poll(t, mailbox); res != (Result{Listed: 1, Created: 1}) {
			t.Errorf("result = %+v, want the report landed", res)
		}
	})

	t.Run("configured grace", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{}, func(h *Handler) { h.ReportGrace = time.Hour })
		f.inboxes[mailbox].put(reportHead(report, outMsg, "14", now.Add(-30*time.Minute)))
		if res := f.poll(t, mailbox); res != (Result{Listed: 1, Failed: 1}) {
			t.Errorf("result = %+v, want the report held back within an hour", res)
		}
	})

	t.Run("lookup error holds it back", func(t *testing.T) {
		f := newFixture(mesh.InboundConfig{})
		f.store.FindErr = func(string) error { return domain.Errorf(domain.KindUnavailable, "throttled") }
		f.inboxes[mailbox].put(reportHead(report, outMsg, "14", now.Add(-time.Hour)))
		if res := f.poll(t, mailbox); res != (Result{Listed: 1, Failed: 1}) {
			t.Errorf("result = %+v, want the report left for the next poll", res)
		}
		if n := len(f.store.IDs()); n != 0 {
			t.Errorf("%d transfers, want none", n)
		}
	})
}

func TestConcurrency(t *testing.T) {
	const limit = 3
	f := newFixture(mesh.InboundConfig{}, func(h *Handler) { h.Concurrency = limit })
	in := f.inboxes[mailbox]
	var heads []mesh.Head
	for i := range 40 {
		heads = append(heads, dataHead(fmt.Sprintf("20250301085900%06d_C", i), 1+i%3))
	}
	in.put(heads...)
	var inFlight, peak atomic.Int32
	in.headHook = func(string) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
	}
	res := f.poll(t, mailbox)
	if want := (Result{Listed: 40, Created: 40}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if p := peak.Load(); p > limit {
		t.Errorf("%d messages registered at once, want at most %d", p, limit)
	}
}

func TestScheduledPollsTheMailboxesDue(t *testing.T) {
	f := newFixture(mesh.InboundConfig{}, func(h *Handler) { h.Interval, h.Tick = 5*time.Minute, time.Minute })
	f.inboxes[mailbox].put(dataHead(msg1, 1))
	f.inboxes[other].put(dataHead(msg2, 1))
	at := func(s string) Input {
		var in Input
		// The scheduled event as EventBridge sends it, trimmed.
		if err := json.Unmarshal([]byte(`{"source": "aws.events", "detail-type": "Scheduled Event", "time": "`+s+`"}`), &in); err != nil {
			t.Fatal(err)
		}
		return in
	}
	res, err := f.h.Handle(context.Background(), at("2026-12-02T03:06:00Z"))
	if err != nil || res != (Result{}) {
		t.Errorf("Handle at 03:06 = %+v, %v; want no poll (the 5-minute interval began at 03:05)", res, err)
	}
	res, err = f.h.Handle(context.Background(), at("2026-12-02T03:10:00Z"))
	if err != nil || res.Listed != 2 || res.Created != 2 {
		t.Errorf("Handle at 03:10 = %+v, %v; want both mailboxes polled, two transfers", res, err)
	}

	f.inboxes[other].listErr = domain.Errorf(domain.KindUnavailable, "mesh list inbox: HTTP 503")
	_, err = f.h.Handle(context.Background(), at("2026-12-02T03:15:00Z"))
	if err == nil || !strings.Contains(err.Error(), other) || strings.Contains(err.Error(), mailbox) {
		t.Errorf("Handle with one inbox down = %v, want an error naming %s only", err, other)
	}
}

func TestDue(t *testing.T) {
	boxes := map[string]Inbox{"B": nil, "A": nil}
	at := time.Date(2026, 12, 2, 3, 7, 0, 0, time.UTC)
	for _, c := range []struct {
		interval, tick time.Duration
		t              time.Time
		want           []string
	}{
		{5 * time.Minute, time.Minute, at, nil},
		{5 * time.Minute, time.Minute, at.Add(3 * time.Minute), []string{"A", "B"}},
		{5 * time.Minute, 3 * time.Minute, at, []string{"A", "B"}}, // 03:05 is within the tick before 03:07
		{time.Minute, 5 * time.Minute, at, []string{"A", "B"}},     // shorter than the tick: every time
		{5 * time.Minute, 0, at, []string{"A", "B"}},
		{5 * time.Minute, time.Minute, time.Time{}, []string{"A", "B"}}, // not a scheduled event
	} {
		h := &Handler{Mailboxes: boxes, Interval: c.interval, Tick: c.tick}
		if got := h.Due(c.t); !slices.Equal(got, c.want) {
			t.Errorf("Due(%s) with interval %s, tick %s = %v, want %v", c.t.Format(time.TimeOnly), c.interval, c.tick, got, c.want)
		}
	}
}
