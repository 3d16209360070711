package email

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/local/smtpgw"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// relay is a real SMTP server (go-smtp) on loopback with STARTTLS and
// AUTH PLAIN, keeping what it receives.
type relay struct {
	addr   string
	caPEM  []byte
	mu     sync.Mutex
	got    []received
	refuse int // an RCPT reply code to answer with, 0 for none
}

type received struct {
	from string
	to   []string
	data []byte
}

func startRelay(t *testing.T) *relay {
	t.Helper()
	certPath := filepath.Join(t.TempDir(), "cert.pem")
	cfg, err := smtpgw.SelfSigned(certPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{}
	if r.caPEM, err = os.ReadFile(certPath); err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &relaySession{r: r}, nil }))
	s.TLSConfig = cfg
	s.Domain = "relay.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return r
}

type relaySession struct {
	r    *relay
	auth bool
	msg  received
}

func (s *relaySession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *relaySession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "ferry" || pass != "s3cret" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.auth = true
		return nil
	}), nil
}
func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.msg.from = from
	return nil
}
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.r.refuse != 0 {
		return &smtp.SMTPError{Code: s.r.refuse, Message: "not now"}
	}
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.r.mu.Lock()
	s.r.got = append(s.r.got, s.msg)
	s.r.mu.Unlock()
	return nil
}
func (s *relaySession) Reset()        { s.msg = received{} }
func (s *relaySession) Logout() error { return nil }

// section is a routing file's email section of one endpoint.
func section(name, settings string) map[string]json.RawMessage {
	return map[string]json.RawMessage{name: json.RawMessage(settings)}
}

type secrets map[string]string

func (s secrets) Resolve(_ context.Context, ref string) ([]byte, error) {
	v, ok := s[ref]
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "no secret %s", ref)
	}
	return []byte(v), nil
}

// source reads chunks from one payload.
type source struct{ data []byte }

func (s source) OpenChunk(_ context.Context, _ domain.State, c domain.Chunk) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(s.data[c.Offset : c.Offset+c.Length])), nil
}

func newTransport(t *testing.T, r *relay, payload []byte, change func(*Endpoint)) *Transport {
	t.Helper()
	host, port, _ := net.SplitHostPort(r.addr)
	raw := `{"host": "` + host + `", "port": ` + port + `, "username": "ferry", "password": "secret:relay/password",
	  "caBundle": "secret:relay/ca", "from": "Ferry <ferry@ours.example>", "to": ["inbox@partner.example", "Bob <bob@partner.example>"],
	  "subject": "{filename} from {sender}", "maxSize": "1KiB"}`
	eps, err := ParseEndpoints(section("relay", raw))
	if err != nil {
		t.Fatal(err)
	}
	e := eps["relay"]
	if change != nil {
		change(&e)
		eps["relay"] = e
	}
	return New(eps, secrets{"secret:relay/password": "s3cret", "secret:relay/ca": string(r.caPEM), "secret:relay/wrong": "nope"}, source{payload})
}

func state(t *testing.T, size int64) domain.State {
	return transporttest.NewState(t, "01JNZ0MAILMAILMAILMAILMAIL", domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "up", Key: "outbound/mail/report.csv"},
		Destination: domain.Destination{Type: "email", Endpoint: "relay", Filename: "{transferId}-{filename}"},
		Sender:      "org-a", Filename: "report.csv", Size: size, ChunkSize: 10,
	})
}

func TestSendsOneMessageWithTheFile(t *testing.T) {
	r := startRelay(t)
	payload := []byte("name,price\r\ncafé,2 £\r\n\x00\xff") // 25 bytes: 3 chunks of 10
	tr := newTransport(t, r, payload, nil)
	st := state(t, int64(len(payload)))
	ctx := context.Background()
	if _, err := tr.Begin(ctx, st); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= st.Request.Chunks; i++ {
		sent, err := tr.SendChunk(ctx, st, st.Request.Chunk(i))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if n := len(r.got); (i < 3 && n != 0) || (i == 3 && (n != 1 || sent.Ref != "<"+st.ID+"@ferry>")) {
			t.Fatalf("after chunk %d: %d messages, ref %q", i, n, sent.Ref)
		}
	}
	d, err := tr.Complete(ctx, st)
	if err != nil || d.Location != "mailto:inbox@partner.example,bob@partner.example" {
		t.Fatalf("Complete = %+v, %v", d, err)
	}
	got := r.got[0]
	if got.from != "ferry@ours.example" || strings.Join(got.to, ",") != "inbox@partner.example,bob@partner.example" {
		t.Errorf("envelope from %s to %v", got.from, got.to)
	}
	mr, err := mail.CreateReader(bytes.NewReader(got.data))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := mr.Header.Subject(); s != "report.csv from org-a" {
		t.Errorf("subject %q", s)
	}
	if id, _ := mr.Header.MessageID(); id != st.ID+"@ferry" {
		t.Errorf("message id %q", id)
	}
	var names []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		if h, ok := p.Header.(*mail.AttachmentHeader); ok {
			name, _ := h.Filename()
			names = append(names, name)
			if !bytes.Equal(b, payload) {
				t.Errorf("attachment %q holds %q, want %q", name, b, payload)
			}
		} else if !strings.Contains(string(b), "transfer "+st.ID) {
			t.Errorf("text %q", b)
		}
	}
	if len(names) != 1 || names[0] != st.ID+"-report.csv" {
		t.Errorf("attachments %q", names)
	}
}

func TestErrors(t *testing.T) {
	r := startRelay(t)
	ctx := context.Background()
	small := []byte("hello")
	tests := []struct {
		name   string
		change func(*Endpoint)
		size   int64
		refuse int
		kind   domain.Kind
		code   string
	}{
		{"over maxSize", nil, 2048, 0, domain.KindInvalid, "TOO_LARGE"},
		{"refused credentials", func(e *Endpoint) { e.Password = "secret:relay/wrong" }, 5, 0, domain.KindUnauthorized, "535"},
		{"untrusted certificate", func(e *Endpoint) { e.CABundle = "" }, 5, 0, domain.KindInvalid, "CERTIFICATE"},
		{"relay busy", nil, 5, 451, domain.KindUnavailable, "451"},
		{"recipient refused", nil, 5, 550, domain.KindInvalid, "550"},
		{"relay down", func(e *Endpoint) { e.Port = 1 }, 5, 0, domain.KindUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.refuse = tt.refuse
			tr := newTransport(t, r, append(small, make([]byte, max(tt.size-5, 0))...), tt.change)
			tr.Timeout = 5 * time.Second
			st := state(t, tt.size)
			_, err := tr.SendChunk(ctx, st, st.Request.Chunk(st.Request.Chunks))
			var de *domain.Error
			if !errors.As(err, &de) || de.Kind != tt.kind || (tt.code != "" && de.Code != tt.code) {
				t.Fatalf("SendChunk = %v, want %s %s", err, tt.kind, tt.code)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	r.refuse = 0
}

func TestEndpointSettings(t *testing.T) {
	_, err := ParseEndpoints(section("bad", `{"host": "", "tls": "sometimes", "password": "plain",
	  "from": "not an address", "to": [], "subject": "{nope}", "body": "{filename"}`))
	for _, want := range []string{"host is missing", `tls "sometimes"`, "password must be a secret reference", "username and password",
		"from", "to names no recipient", "unknown field {nope}", "brace open"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEndpoints of bad settings: %v; want it to say %s", err, want)
		}
	}
	eps, err := ParseEndpoints(section("ok", `{"host": "smtp.example", "tls": "implicit", "from": "a@x.example", "to": ["b@y.example"]}`))
	if e := eps["ok"]; err != nil || e.Port != 465 || e.MaxSize != DefaultMaxSize || e.Subject != DefaultSubject {
		t.Errorf("defaults: %+v, %v", e, err)
	}
	if got := Expand("{name}{ext} from {sender}\r\nBcc: x@evil", state(t, 1)); got != "report.csv from org-a  Bcc: x@evil" {
		t.Errorf("Expand = %q", got)
	}
}

type linker struct{ expiry time.Duration }

func (l *linker) Link(_ context.Context, t domain.State, expiry time.Duration) (string, error) {
	l.expiry = expiry
	return "https://bucket.example/" + t.ID + "?X-Amz-Signature=abc", nil
}

func TestLinkInPlaceOfALargeFile(t *testing.T) {
	r := startRelay(t)
	tr := newTransport(t, r, make([]byte, 2048), func(e *Endpoint) { e.OverLimit, e.LinkExpiry = OverLimitLink, domain.Duration(2*time.Hour) })
	st := state(t, 2048) // over the 1 KiB maxSize
	if _, err := tr.Begin(context.Background(), st); domain.CodeOf(err) != "TOO_LARGE" {
		t.Fatalf("without a Linker: Begin = %v, want TOO_LARGE", err)
	}
	l := &linker{}
	tr.Links = l
	if _, err := tr.SendChunk(context.Background(), st, st.Request.Chunk(st.Request.Chunks)); err != nil {
		t.Fatal(err)
	}
	if len(r.got) != 1 || l.expiry != 2*time.Hour {
		t.Fatalf("%d messages, link expiry %s", len(r.got), l.expiry)
	}
	mr, err := mail.CreateReader(bytes.NewReader(r.got[0].data))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Header.(*mail.AttachmentHeader); ok {
			t.Fatal("a file over maxSize was attached")
		}
		b, _ := io.ReadAll(p.Body)
		texts = append(texts, string(b))
	}
	if len(texts) != 1 || !strings.Contains(texts[0], "https://bucket.example/"+st.ID+"?X-Amz-Signature=abc") || !strings.Contains(texts[0], "2048 bytes") {
		t.Errorf("texts %q, want one with the link", texts)
	}
	if _, err := ParseEndpoints(section("bad", `{"host": "h", "from": "a@x.example", "to": ["b@y.example"], "overLimit": "shrink", "linkExpiry": "720h"}`)); err == nil ||
		!strings.Contains(err.Error(), `overLimit "shrink"`) || !strings.Contains(err.Error(), "linkExpiry 720h0m0s") {
		t.Errorf("bad overLimit and linkExpiry: %v", err)
	}
}
