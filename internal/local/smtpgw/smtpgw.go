// Package smtpgw is SES's email receiving, emulated for ferry local: an
// SMTP server on loopback (github.com/emersion/go-smtp) that does what the
// template's receipt rule does. It accepts mail only for the rule's
// recipients (550 for others, as SES answers when no rule matches),
// requires STARTTLS when the rule's TlsPolicy is Require, stores each
// message in the emulated S3 under the rule's S3 action (bucket, prefix +
// message id), and invokes the rule's function with the
// events.SimpleEmailEvent SES would send: the mail's envelope and common
// headers, and the receipt's recipients and verdicts.
//
// The verdicts come from a local policy, not a scan: every one PASS (the
// Gateway's Verdicts change that), and a message may set its own with a
// header X-Ferry-Verdicts: virus=FAIL, dmarc=FAIL (the tests' way to show
// a message that fails a check).
//
// Unlike SES, which invokes the function asynchronously once it has taken
// the message, the gateway answers the DATA command after the function
// returns: 250 when it did, 451 (try again later) when it failed, so the
// sender keeps the message and a test knows when the transfers exist.
package smtpgw

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/emersion/go-smtp"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/local/resources"
)

// Objects is what the gateway needs of S3: storing a received message, as
// SES's S3 action does.
type Objects interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// VerdictHeader is the header by which a message sets its own verdicts
// locally: "virus=FAIL, dmarc=FAIL".
const VerdictHeader = "X-Ferry-Verdicts"

// Gateway is one receipt rule, played.
type Gateway struct {
	Rule    resources.ReceiptRule
	Objects Objects
	// Handler is the rule's function.
	Handler func(context.Context, events.SimpleEmailEvent) error
	// FunctionARN names it in the event's receipt action.
	FunctionARN string
	// Verdicts are the verdicts of every message that does not set its
	// own, by name (spf, dkim, dmarc, spam, virus); those not given are
	// PASS.
	Verdicts map[string]string
	// MaxMessageBytes bounds a message, as SES does at 40 MB; 0 means
	// domain.DefaultMaxEmailSize.
	MaxMessageBytes int64
	// TLS is STARTTLS's configuration; nil makes a certificate of its own
	// (SelfSigned).
	TLS *tls.Config
	// TempDir is where a message is spooled while it is received ("" for
	// the system's).
	TempDir string
	Now     func() time.Time
	Log     *slog.Logger
}

// Serve answers SMTP on l until ctx is done, then waits for the messages
// being received to finish.
func Serve(ctx context.Context, l net.Listener, g *Gateway) error {
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{g: g, conn: c, ctx: ctx}, nil
	}))
	s.Domain = "ferry.local"
	s.MaxMessageBytes = g.maxBytes()
	s.MaxRecipients = 50 // SES's limit
	s.ReadTimeout, s.WriteTimeout = 5*time.Minute, time.Minute
	s.ErrorLog = slogLogger{g.Log}
	s.TLSConfig = g.TLS
	if s.TLSConfig == nil {
		var err error
		if s.TLSConfig, err = SelfSigned(""); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("smtp: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdown); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("smtp: %w", err)
	}
	return nil
}

func (g *Gateway) maxBytes() int64 {
	if g.MaxMessageBytes > 0 {
		return g.MaxMessageBytes
	}
	return domain.DefaultMaxEmailSize
}

// Accepts reports whether the rule takes mail for address: an address it
// names, or one at a domain it names (".example.com": at any subdomain),
// without regard to case; a rule naming none takes every address.
func (g *Gateway) Accepts(address string) bool {
	if len(g.Rule.Recipients) == 0 {
		return true
	}
	address = strings.ToLower(address)
	_, dom, ok := strings.Cut(address, "@")
	if !ok {
		return false
	}
	for _, r := range g.Rule.Recipients {
		r = strings.ToLower(r)
		switch {
		case r == address, r == dom, strings.HasPrefix(r, ".") && strings.HasSuffix(dom, r):
			return true
		}
	}
	return false
}

// session is one SMTP connection's state.
type session struct {
	g    *Gateway
	conn *smtp.Conn
	ctx  context.Context
	from string
	to   []string
}

var _ smtp.Session = (*session)(nil)

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if _, tls := s.conn.TLSConnectionState(); s.g.Rule.TLSRequired && !tls {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first (the receipt rule requires TLS)"}
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.g.Accepts(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox does not exist (no receipt rule takes " + to + ")"}
	}
	s.to = append(s.to, strings.ToLower(to))
	return nil
}

func (s *session) Data(r io.Reader) error {
	f, err := os.CreateTemp(s.g.TempDir, "ferry-smtp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := io.Copy(f, r)
	if err != nil {
		return err // the server answers 552 for a message over its limit
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	ev, err := s.g.event(f, s.from, s.to)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message cannot be parsed: " + err.Error()}
	}
	id := ev.Records[0].SES.Mail.MessageID
	log := s.g.Log.With("messageId", id, "from", s.from, "to", s.to, "bytes", size)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	key := s.g.Rule.Prefix + id
	if _, err := s.g.Objects.PutObject(s.ctx, &s3.PutObjectInput{
		Bucket: &s.g.Rule.Bucket, Key: &key, Body: f, ContentLength: aws.Int64(size), ContentType: aws.String("message/rfc822"),
	}); err != nil {
		log.Error("store received message", "error", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not stored, try again later"}
	}
	if err := s.g.Handler(s.ctx, ev); err != nil {
		log.Error("email function failed", "error", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not processed, try again later"}
	}
	log.Info("email received", "key", key)
	return nil
}

// event is the SimpleEmailEvent SES sends for a message read from r.
func (g *Gateway) event(r io.Reader, from string, to []string) (events.SimpleEmailEvent, error) {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return events.SimpleEmailEvent{}, err
	}
	id, err := messageID()
	if err != nil {
		return events.SimpleEmailEvent{}, err
	}
	now := g.Now().UTC()
	var headers []events.SimpleEmailHeader
	for name, values := range msg.Header {
		for _, v := range values {
			headers = append(headers, events.SimpleEmailHeader{Name: name, Value: v})
		}
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	verdicts := g.verdicts(msg.Header.Get(VerdictHeader))
	verdict := func(name string) events.SimpleEmailVerdict { return events.SimpleEmailVerdict{Status: verdicts[name]} }
	var recipients []string
	for _, t := range to {
		if g.Accepts(t) {
			recipients = append(recipients, t)
		}
	}
	return events.SimpleEmailEvent{Records: []events.SimpleEmailRecord{{
		EventSource: "aws:ses", EventVersion: "1.0",
		SES: events.SimpleEmailService{
			Mail: events.SimpleEmailMessage{
				MessageID: id, Timestamp: now, Source: from, Destination: to, Headers: headers,
				CommonHeaders: events.SimpleEmailCommonHeaders{
					ReturnPath: from,
					From:       addresses(msg.Header, "From"), To: addresses(msg.Header, "To"), Cc: addresses(msg.Header, "Cc"),
					Date: msg.Header.Get("Date"), MessageID: msg.Header.Get("Message-ID"), Subject: subject,
				},
			},
			Receipt: events.SimpleEmailReceipt{
				Recipients: recipients, Timestamp: now,
				SPFVerdict: verdict(domain.VerdictSPF), DKIMVerdict: verdict(domain.VerdictDKIM),
				DMARCVerdict: verdict(domain.VerdictDMARC), SpamVerdict: verdict(domain.VerdictSpam),
				VirusVerdict: verdict(domain.VerdictVirus), DMARCPolicy: "none",
				Action: events.SimpleEmailReceiptAction{Type: "Lambda", FunctionARN: g.FunctionARN, InvocationType: "Event"},
			},
		},
	}}}, nil
}

// verdicts are the gateway's, then the message's own (its VerdictHeader).
func (g *Gateway) verdicts(header string) map[string]string {
	v := map[string]string{}
	for _, name := range domain.VerdictNames {
		v[name] = "PASS"
		if s := g.Verdicts[name]; s != "" {
			v[name] = s
		}
	}
	for _, kv := range strings.FieldsFunc(header, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
		if name, status, ok := strings.Cut(kv, "="); ok {
			v[strings.ToLower(name)] = strings.ToUpper(status)
		}
	}
	return v
}

// addresses returns a header's addresses as SES lists them ("Name <a@b>").
func addresses(h mail.Header, key string) []string {
	list, err := h.AddressList(key)
	if err != nil {
		if v := h.Get(key); v != "" {
			return []string{v}
		}
		return nil
	}
	var out []string
	for _, a := range list {
		out = append(out, a.String())
	}
	return out
}

// messageID makes an id like SES's: 40 lower-case letters and digits.
func messageID() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// slogLogger passes go-smtp's error log to slog.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }
