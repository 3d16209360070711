package smtpgw

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/internal/local/resources"
)

// bucket keeps what the gateway stores.
type bucket struct {
	mu      sync.Mutex
	objects map[string]string
}

func (b *bucket) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects[*in.Bucket+"/"+*in.Key] = string(data)
	return &s3.PutObjectOutput{}, nil
}

type gateway struct {
	addr   string
	roots  *x509.CertPool
	bucket *bucket
	mu     sync.Mutex
	events []events.SimpleEmailEvent
	fail   error
}

func start(t *testing.T) *gateway {
	t.Helper()
	certPath := filepath.Join(t.TempDir(), "cert.pem")
	cfg, err := SelfSigned(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	gw := &gateway{roots: x509.NewCertPool(), bucket: &bucket{objects: map[string]string{}}}
	gw.roots.AppendCertsFromPEM(pem)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw.addr = l.Addr().String()
	g := &Gateway{
		Rule:    resources.ReceiptRule{Recipients: []string{"files@in.example", "notes.example", ".sub.example"}, TLSRequired: true, Bucket: "up", Prefix: "email/", Handler: "email"},
		Objects: gw.bucket, FunctionARN: "arn:aws:lambda:eu-west-2:1:function:f", TLS: cfg, TempDir: t.TempDir(),
		Verdicts: map[string]string{"spam": "GRAY"},
		Handler: func(_ context.Context, ev events.SimpleEmailEvent) error {
			gw.mu.Lock()
			defer gw.mu.Unlock()
			gw.events = append(gw.events, ev)
			return gw.fail
		},
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, g) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return gw
}

// send delivers msg from → to over SMTP, with STARTTLS unless plain.
func (gw *gateway) send(from string, to []string, msg string, plain bool) error {
	c, err := smtp.Dial(gw.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if !plain {
		if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: gw.roots}); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, strings.ReplaceAll(msg, "\n", "\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

const note = `From: Ann Lab <ann@lab.example>
To: files@in.example, desk@notes.example
Subject: =?UTF-8?Q?Results_=E2=80=93_May?=
Message-ID: <m1@lab.example>
X-Ferry-Verdicts: virus=FAIL, dmarc=fail

Hello.
`

func TestGatewayStoresAndInvokes(t *testing.T) {
	gw := start(t)
	if err := gw.send("bounce@lab.example", []string{"Files@In.Example", "desk@notes.example"}, note, false); err != nil {
		t.Fatal(err)
	}
	if len(gw.events) != 1 || len(gw.events[0].Records) != 1 {
		t.Fatalf("events %+v, want one of one record", gw.events)
	}
	ses := gw.events[0].Records[0].SES
	m, r := ses.Mail, ses.Receipt
	if stored := gw.bucket.objects["up/email/"+m.MessageID]; !strings.Contains(stored, "Hello.\r\n") || !strings.HasPrefix(stored, "From: Ann Lab") {
		t.Errorf("stored %q under email/%s", stored, m.MessageID)
	}
	if m.Source != "bounce@lab.example" || len(m.CommonHeaders.From) != 1 || m.CommonHeaders.From[0] != `"Ann Lab" <ann@lab.example>` ||
		m.CommonHeaders.Subject != "Results – May" || m.CommonHeaders.MessageID != "<m1@lab.example>" {
		t.Errorf("mail %+v", m)
	}
	if strings.Join(r.Recipients, ",") != "files@in.example,desk@notes.example" {
		t.Errorf("recipients %v", r.Recipients)
	}
	got := []string{r.VirusVerdict.Status, r.DMARCVerdict.Status, r.SpamVerdict.Status, r.SPFVerdict.Status, r.DKIMVerdict.Status}
	if strings.Join(got, ",") != "FAIL,FAIL,GRAY,PASS,PASS" {
		t.Errorf("verdicts virus, dmarc, spam, spf, dkim = %v", got)
	}
	if r.Action.Type != "Lambda" || r.Action.FunctionARN == "" || r.Action.InvocationType != "Event" {
		t.Errorf("action %+v", r.Action)
	}
}

func TestGatewayRefuses(t *testing.T) {
	gw := start(t)
	code := func(err error) int {
		var te *textproto.Error
		if !errors.As(err, &te) {
			return 0
		}
		return te.Code
	}
	if err := gw.send("a@lab.example", []string{"nobody@elsewhere.example"}, note, false); code(err) != 550 {
		t.Errorf("a recipient no rule takes: %v, want 550", err)
	}
	if err := gw.send("a@lab.example", []string{"files@in.example"}, note, true); code(err) != 530 {
		t.Errorf("without STARTTLS: %v, want 530", err)
	}
	gw.fail = errors.New("table unreachable")
	if err := gw.send("a@lab.example", []string{"files@in.example"}, note, false); code(err) != 451 {
		t.Errorf("when the function fails: %v, want 451 (try again later)", err)
	}
}

func TestAccepts(t *testing.T) {
	g := &Gateway{Rule: resources.ReceiptRule{Recipients: []string{"files@in.example", "notes.example", ".sub.example"}}}
	for addr, want := range map[string]bool{
		"files@in.example": true, "FILES@IN.EXAMPLE": true, "other@in.example": false,
		"x@notes.example": true, "x@a.notes.example": false, "x@a.sub.example": true, "x@sub.example": false, "nobody": false,
	} {
		if g.Accepts(addr) != want {
			t.Errorf("Accepts(%q) = %t", addr, !want)
		}
	}
	if !(&Gateway{}).Accepts("anyone@any.example") {
		t.Error("a rule without recipients refuses an address")
	}
}
