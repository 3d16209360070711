package email

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
)

const bucket = "uploads"

var (
	arrived = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	routes  = domain.Routes{Routes: []domain.Route{
		{Name: "lab-mail", Match: domain.Match{EmailTo: "files@in.example"},
			Destination: domain.Destination{Type: "s3", Bucket: "delivered", Prefix: "lab/"},
			Email:       &domain.EmailPolicy{AllowedSenders: []string{"lab.example"}}},
		{Name: "notes", Match: domain.Match{EmailTo: "@notes.example"},
			Destination: domain.Destination{Type: "null"},
			Email:       &domain.EmailPolicy{Body: true, MaxSize: 4096, Verdicts: map[string]string{"spf": domain.RulePass}}},
	}}
)

type fixture struct {
	h     *Handler
	s3    *fakeS3
	store *memstore.Store
}

func newFixture() fixture {
	s3 := newFakeS3()
	st := memstore.New()
	now := func() time.Time { return arrived.Add(time.Second) }
	log := slog.New(slog.DiscardHandler)
	in := &intake.Handler{Routes: routes, Now: now, Log: log}
	h := &Handler{Store: st, Objects: s3, Intake: in, Routes: routes, Bucket: bucket, PartSize: 16, Now: now, Log: log}
	return fixture{h: h, s3: s3, store: st}
}

// receive stores raw as SES would and returns the event SES sends, with
// every verdict PASS but those given ("virus", "FAIL", …).
func (f fixture) receive(id, raw, from string, to []string, verdicts ...string) events.SimpleEmailEvent {
	if raw != "" {
		f.s3.store(domain.EmailPrefix+id, []byte(crlf(raw)), nil, "")
	}
	v := map[string]string{"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS"}
	for i := 0; i+1 < len(verdicts); i += 2 {
		v[verdicts[i]] = verdicts[i+1]
	}
	verdict := func(name string) events.SimpleEmailVerdict { return events.SimpleEmailVerdict{Status: v[name]} }
	return events.SimpleEmailEvent{Records: []events.SimpleEmailRecord{{
		EventSource: "aws:ses", EventVersion: "1.0",
		SES: events.SimpleEmailService{
			Mail: events.SimpleEmailMessage{
				MessageID: id, Timestamp: arrived, Source: "bounces@mailer.example", Destination: to,
				CommonHeaders: events.SimpleEmailCommonHeaders{From: []string{from}, To: to, Subject: "Results – May", MessageID: "<m1@lab.example>"},
			},
			Receipt: events.SimpleEmailReceipt{
				Recipients: to, Timestamp: arrived,
				SPFVerdict: verdict("spf"), DKIMVerdict: verdict("dkim"), DMARCVerdict: verdict("dmarc"),
				SpamVerdict: verdict("spam"), VirusVerdict: verdict("virus"),
				Action: events.SimpleEmailReceiptAction{Type: "Lambda", FunctionARN: "arn:aws:lambda:eu-west-2:123456789012:function:ferry-email", InvocationType: "Event"},
			},
		},
	}}}
}

func (f fixture) handle(t *testing.T, ev events.SimpleEmailEvent) {
	t.Helper()
	if err := f.h.Handle(context.Background(), ev); err != nil {
		t.Fatalf("Handle: %v", err)
	}
}

func (f fixture) requested(t *testing.T) []domain.Requested {
	t.Helper()
	var out []domain.Requested
	for _, id := range f.store.IDs() {
		evs := f.store.History(id)
		if len(evs) != 1 {
			t.Fatalf("transfer %s has %d events, want 1 (Requested): %+v", id, len(evs), evs)
		}
		out = append(out, evs[0].Payload.(domain.Requested))
	}
	slices.SortFunc(out, func(a, b domain.Requested) int { return strings.Compare(a.Filename, b.Filename) })
	return out
}

func TestTwoAttachmentsTwoTransfers(t *testing.T) {
	f := newFixture()
	ev := f.receive("ses-1", twoAttachments, `"Ann Lab" <ann@lab.example>`, []string{"Files@In.Example"})
	f.handle(t, ev)

	got := f.requested(t)
	if len(got) != 2 {
		t.Fatalf("%d transfers, want 2", len(got))
	}
	want := map[string]string{ // stored name → bytes
		"caf_s.csv":        "name,price\r\ncaf\xe9,2\xa3",
		"r_sum__final.pdf": "%PDF-1.4\n\x00\xff\x01\x02\x03",
	}
	for _, r := range got {
		body, ok := want[r.Filename]
		if !ok {
			t.Errorf("unexpected transfer of %q", r.Filename)
			continue
		}
		if r.Route != "lab-mail" || r.Sender != "ann@lab.example" || r.Recipient != "files@in.example" || r.CorrelationID != "ses-1" {
			t.Errorf("%s: route %q from %q to %q correlation %q", r.Filename, r.Route, r.Sender, r.Recipient, r.CorrelationID)
		}
		if r.Metadata["subject"] != "Results – May" || r.Metadata["email-message-id"] != "<m1@lab.example>" || r.Metadata["email-virus"] != "PASS" {
			t.Errorf("%s: metadata %v", r.Filename, r.Metadata)
		}
		obj := f.s3.objects[r.Source.Key]
		if string(obj.data) != body || r.Size != int64(len(body)) {
			t.Errorf("%s: stored %q (size %d), want %q", r.Filename, obj.data, r.Size, body)
		}
		sum := sha256.Sum256([]byte(body))
		if r.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: sha256 %s", r.Filename, r.SHA256)
		}
		if id, ok := domain.ParseEmailKey(r.Source.Key); !ok || r.Source.Bucket != bucket || r.Source.VersionID == "" || r.Source.ETag == "" {
			t.Errorf("%s: source %+v (transfer %s)", r.Filename, r.Source, id)
		}
	}
	if names := []string{got[0].Metadata["email-filename"], got[1].Metadata["email-filename"]}; !slices.Equal(names, []string{"cafés.csv", "résumé final.pdf"}) {
		t.Errorf("original names %q", names)
	}
	// PartSize 16: the 24-byte CSV goes in two parts, the 14-byte PDF in
	// one PutObject.
	if f.s3.parts != 2 {
		t.Errorf("%d parts uploaded, want 2", f.s3.parts)
	}

	// SES invokes again (a retry): the same transfers, nothing new.
	ids := f.store.IDs()
	f.handle(t, ev)
	if again := f.store.IDs(); !slices.Equal(again, ids) {
		t.Errorf("a second invocation made transfers %v, had %v", again, ids)
	}
	f.requested(t)
}

func TestMessageRejected(t *testing.T) {
	textOnly := "From: ann@lab.example\nSubject: hi\n\nJust text.\n"
	tests := []struct {
		name     string
		raw      string // "" stores nothing
		from, to string
		verdicts []string
		code     string
		route    string
	}{
		{"virus", twoAttachments, "ann@lab.example", "files@in.example", []string{"virus", "FAIL"}, "VERDICT_FAILED", "lab-mail"},
		{"dmarc", twoAttachments, "ann@lab.example", "files@in.example", []string{"dmarc", "FAIL"}, "VERDICT_FAILED", "lab-mail"},
		{"spf on a route requiring it", twoAttachments, "ann@lab.example", "x@notes.example", []string{"spf", "GRAY"}, "VERDICT_FAILED", "notes"},
		{"sender not allowed", twoAttachments, "eve@evil.example", "files@in.example", nil, "SENDER_NOT_ALLOWED", "lab-mail"},
		{"unknown recipient", twoAttachments, "ann@lab.example", "nobody@in.example", nil, "NO_ROUTE", ""},
		{"no attachment", textOnly, "ann@lab.example", "files@in.example", nil, "NO_ATTACHMENT", "lab-mail"},
		{"malformed", "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n!!!\n--x--\n", "ann@lab.example", "files@in.example", nil, "MALFORMED_MESSAGE", "lab-mail"},
		{"too large", twoAttachments + strings.Repeat("padding line\n", 400), "ann@lab.example", "x@notes.example", nil, "TOO_LARGE", "notes"},
		{"gone", "", "ann@lab.example", "files@in.example", nil, "SOURCE_GONE", "lab-mail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			f.handle(t, f.receive("ses-2", tt.raw, tt.from, []string{tt.to}, tt.verdicts...))
			ids := f.store.IDs()
			if len(ids) != 1 {
				t.Fatalf("%d transfers, want 1 rejection", len(ids))
			}
			if want := domain.EmailTransferID("ses-2", tt.to, 0, arrived); ids[0] != want {
				t.Errorf("rejection %s, want id %s", ids[0], want)
			}
			evs := f.store.History(ids[0])
			if len(evs) != 2 || evs[1].Type() != domain.TypeFailed {
				t.Fatalf("events %+v, want Requested, Failed", evs)
			}
			r, fail := evs[0].Payload.(domain.Requested), evs[1].Payload.(domain.Failed)
			if fail.Code != tt.code || fail.Retryable || r.Route != tt.route {
				t.Errorf("failed %s (%s, retryable %t) on %q; want %s on %q", fail.Code, fail.Message, fail.Retryable, r.Route, tt.code, tt.route)
			}
			if r.Source.Key != "email/ses-2" || r.Sender != tt.from || r.Recipient != tt.to || r.CorrelationID != "ses-2" {
				t.Errorf("rejection of %+v from %q to %q, correlation %q", r.Source, r.Sender, r.Recipient, r.CorrelationID)
			}
			if keys := f.s3.keys(domain.EmailAttachmentPrefix); len(keys) != 0 {
				t.Errorf("a rejected message's attachments were stored: %v", keys)
			}
		})
	}
}

func TestTextBecomesTransfer(t *testing.T) {
	f := newFixture()
	raw := "From: ann@lab.example\nSubject: note\nContent-Type: multipart/alternative; boundary=a\n\n" +
		"--a\nContent-Type: text/html\n\n<p>Call me</p>\n--a\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nCall me =E2=80=93 Ann\n--a--\n"
	f.handle(t, f.receive("ses-3", raw, "ann@lab.example", []string{"desk@notes.example"}))
	got := f.requested(t)
	if len(got) != 1 || got[0].Filename != "body.txt" || got[0].Route != "notes" {
		t.Fatalf("transfers %+v, want one of body.txt on notes", got)
	}
	if b := string(f.s3.objects[got[0].Source.Key].data); b != "Call me – Ann" {
		t.Errorf("stored %q", b)
	}
}

func TestEachRecipient(t *testing.T) {
	f := newFixture()
	f.handle(t, f.receive("ses-4", twoAttachments, "ann@lab.example", []string{"files@in.example", "desk@notes.example", "FILES@in.example"}))
	byRoute := map[string]int{}
	for _, r := range f.requested(t) {
		byRoute[r.Route]++
	}
	if byRoute["lab-mail"] != 2 || byRoute["notes"] != 2 || len(byRoute) != 2 {
		t.Errorf("transfers by route %v, want two attachments for each recipient", byRoute)
	}
}

func TestS3UnavailableIsRetried(t *testing.T) {
	f := newFixture()
	ev := f.receive("ses-5", twoAttachments, "ann@lab.example", []string{"files@in.example"})
	f.s3.down = true
	err := f.h.Handle(context.Background(), ev)
	if err == nil || !domain.KindOf(err).Retryable() {
		t.Fatalf("Handle = %v, want a retryable error", err)
	}
	if ids := f.store.IDs(); len(ids) != 0 {
		t.Errorf("recorded %v while S3 was down", ids)
	}
	f.s3.down = false
	f.handle(t, ev)
	if got := f.requested(t); len(got) != 2 {
		t.Errorf("%d transfers after the retry, want 2", len(got))
	}
}

func TestGoldenEvent(t *testing.T) {
	var ev events.SimpleEmailEvent
	memstore.ReadJSON(t, "testdata/ses-lambda-event.json", &ev)
	f := newFixture()
	f.s3.store(domain.EmailPrefix+ev.Records[0].SES.Mail.MessageID, []byte(crlf(twoAttachments)), nil, "")
	f.handle(t, ev)
	got := f.requested(t)
	if len(got) != 2 || got[0].Sender != "ann@lab.example" || got[0].Recipient != "files@in.example" {
		t.Fatalf("transfers %+v", got)
	}
}

func TestUnsafeMessageID(t *testing.T) {
	f := newFixture()
	f.handle(t, f.receive("../../etc/passwd", "", "ann@lab.example", []string{"files@in.example"}))
	ids := f.store.IDs()
	if len(ids) != 1 {
		t.Fatalf("%d transfers, want 1 rejection", len(ids))
	}
	evs := f.store.History(ids[0])
	if fail, ok := evs[len(evs)-1].Payload.(domain.Failed); !ok || fail.Code != "INVALID_MESSAGE_ID" {
		t.Fatalf("events %+v, want a failure INVALID_MESSAGE_ID", evs)
	}
	if r := evs[0].Payload.(domain.Requested); r.Filename != "passwd.eml" || r.Source.Key != domain.EmailPrefix {
		t.Errorf("rejection of %q from %+v", r.Filename, r.Source)
	}
}
