package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"path"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Transport sends each transfer as one message through its endpoint's
// relay. A message cannot be sent in parts, so, like the https transport's
// whole mode, every chunk but the last only marks progress and the last
// sends the message, reading the file from the source as it writes it
// (base64, never the whole file in memory). Sending it again (a retry of
// the last chunk after a failure the relay may not have seen) sends the
// message again: SMTP has no idempotency, but every sending of a transfer
// has the same Message-ID, <transferId@ferry>, by which a mailbox can tell
// the copies.
type Transport struct {
	endpoints map[string]Endpoint
	secrets   transport.Secrets
	source    transport.Source
	// Links makes the presigned URLs of files over an endpoint's MaxSize
	// whose overLimit is link; nil refuses them (TOO_LARGE).
	Links Linker
	// Timeout bounds one conversation with the relay; 0 means 5 minutes.
	Timeout time.Duration
}

var _ transport.Transport = (*Transport)(nil)

// Linker presigns a URL that reads transfer t's source for expiry.
type Linker interface {
	Link(ctx context.Context, t domain.State, expiry time.Duration) (string, error)
}

// New returns a transport sending through endpoints (as ParseEndpoints
// returns them), resolving their secrets with secrets when it sends and
// reading each file from source.
func New(endpoints map[string]Endpoint, secrets transport.Secrets, source transport.Source) *Transport {
	return &Transport{endpoints: endpoints, secrets: secrets, source: source}
}

// endpoint returns t's endpoint, or KindInvalid: not an email destination,
// an endpoint not defined, or a file over its MaxSize (code TOO_LARGE).
func (tr *Transport) endpoint(t domain.State) (Endpoint, error) {
	d := t.Request.Destination
	e, ok := tr.endpoints[d.Endpoint]
	switch {
	case d.Type != "email":
		return e, domain.Errorf(domain.KindInvalid, "email: transfer %s has destination type %q", t.ID, d.Type)
	case !ok:
		return e, domain.Errorf(domain.KindInvalid, "email: transfer %s names endpoint %q, which the email section does not define", t.ID, d.Endpoint)
	case t.Request.Size > int64(e.MaxSize) && (e.OverLimit != OverLimitLink || tr.Links == nil):
		return e, domain.Errorf(domain.KindInvalid, "email: the file is %d bytes, over endpoint %s's maxSize of %d", t.Request.Size, d.Endpoint, int64(e.MaxSize)).WithCode("TOO_LARGE")
	}
	return e, nil
}

// Begin checks the endpoint and the file's size; nothing is sent.
func (tr *Transport) Begin(_ context.Context, t domain.State) (string, error) {
	_, err := tr.endpoint(t)
	return "", err
}

// SendChunk marks chunks other than the last sent; the last sends the
// message. Its reference is the message's Message-ID.
func (tr *Transport) SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error) {
	e, err := tr.endpoint(t)
	if err != nil {
		return transport.Sent{}, err
	}
	if c.Index < t.Request.Chunks {
		return transport.Sent{Bytes: max(c.Length, 0)}, nil
	}
	if err := tr.send(ctx, e, t); err != nil {
		return transport.Sent{}, err
	}
	return transport.Sent{Bytes: max(c.Length, 0), Ref: MessageID(t)}, nil
}

// Complete returns the recipients as the location: "mailto:a@x,b@y".
func (tr *Transport) Complete(_ context.Context, t domain.State) (transport.Delivery, error) {
	e, err := tr.endpoint(t)
	if err != nil {
		return transport.Delivery{}, err
	}
	var to []string
	for _, s := range e.To {
		a, _ := mail.ParseAddress(s) // Validate parsed them
		to = append(to, a.Address)
	}
	return transport.Delivery{Location: "mailto:" + strings.Join(to, ","), Ref: MessageID(t)}, nil
}

// MessageID is the Message-ID of transfer t's message, every time it is
// sent.
func MessageID(t domain.State) string { return "<" + t.ID + "@ferry>" }

// send writes t's message to the relay.
func (tr *Transport) send(ctx context.Context, e Endpoint, t domain.State) error {
	timeout := tr.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := tr.dial(ctx, e)
	if err != nil {
		return err
	}
	defer c.Close()
	from, _ := mail.ParseAddress(e.From)
	if err := c.Mail(from.Address, nil); err != nil {
		return classify("MAIL FROM", err)
	}
	for _, to := range e.To {
		a, _ := mail.ParseAddress(to)
		if err := c.Rcpt(a.Address, nil); err != nil {
			return classify("RCPT TO "+a.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classify("DATA", err)
	}
	var link string
	if t.Request.Size > int64(e.MaxSize) {
		if link, err = tr.Links.Link(ctx, t, time.Duration(e.LinkExpiry)); err != nil {
			return err
		}
	}
	if err := tr.write(ctx, w, e, t, link); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return classify("end of DATA", err)
	}
	_ = c.Quit() // the message is taken; a failed QUIT does not undo that
	return nil
}

// dial connects to e's relay within ctx, over TLS (implicit or STARTTLS,
// verified against e's CA bundle or the system roots), and authenticates
// when e has a username. The caller closes the client.
func (tr *Transport) dial(ctx context.Context, e Endpoint) (*smtp.Client, error) {
	tlsCfg, err := tr.tlsConfig(ctx, e)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, domain.Errorf(domain.KindUnavailable, "email: connect to %s: %v", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	var c *smtp.Client
	if e.TLS == TLSImplicit {
		c = smtp.NewClient(tls.Client(conn, tlsCfg))
	} else if c, err = smtp.NewClientStartTLS(conn, tlsCfg); err != nil {
		conn.Close()
		return nil, classify("STARTTLS with "+addr, err)
	}
	if e.Username != "" {
		password, err := tr.secrets.Resolve(ctx, e.Password)
		if err != nil {
			c.Close()
			return nil, err
		}
		if err := c.Auth(sasl.NewPlainClient("", e.Username, string(password))); err != nil {
			c.Close()
			return nil, classify("authenticate as "+e.Username, err)
		}
	}
	return c, nil
}

// write writes the message: its text, then the file as a base64 attachment
// named as the route's filename template says, read from the source chunk
// by chunk; or, with a link, the text and the link in place of the file.
func (tr *Transport) write(ctx context.Context, w io.Writer, e Endpoint, t domain.State, link string) error {
	var h gomail.Header
	from, _ := mail.ParseAddress(e.From)
	h.SetAddressList("From", []*gomail.Address{{Name: from.Name, Address: from.Address}})
	var to []*gomail.Address
	for _, s := range e.To {
		a, _ := mail.ParseAddress(s)
		to = append(to, &gomail.Address{Name: a.Name, Address: a.Address})
	}
	h.SetAddressList("To", to)
	h.SetSubject(Expand(e.Subject, t))
	h.SetDate(t.Created)
	h.Set("Message-Id", MessageID(t))
	h.Set("X-Ferry-Transfer-Id", t.ID)
	mw, err := gomail.CreateWriter(w, h)
	if err != nil {
		return domain.Errorf(domain.KindInternal, "email: message of %s: %v", t.ID, err)
	}
	var th gomail.InlineHeader
	th.Set("Content-Type", "text/plain; charset=utf-8")
	th.Set("Content-Transfer-Encoding", "quoted-printable")
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return classify("write the message", err)
	}
	text := Expand(e.Body, t) + "\r\n"
	name := transport.DeliveredName(t)
	if link != "" {
		until := time.Now().Add(time.Duration(e.LinkExpiry)).UTC().Format(time.RFC1123)
		text += fmt.Sprintf("\r\n%s is %d bytes, too large to attach; download it before %s from\r\n%s\r\n", name, t.Request.Size, until, link)
	}
	if _, err := io.WriteString(tw, text); err != nil {
		return classify("write the message", err)
	}
	if err := tw.Close(); err != nil {
		return classify("write the message", err)
	}
	if link != "" {
		return classifyNil(mw.Close())
	}
	var ah gomail.AttachmentHeader
	contentType := mime.TypeByExtension(path.Ext(name))
	if contentType == "" || strings.HasPrefix(contentType, "text/") {
		contentType = "application/octet-stream" // bytes as they are, whatever their charset
	}
	ah.Set("Content-Type", contentType)
	ah.Set("Content-Transfer-Encoding", "base64")
	ah.SetFilename(name)
	aw, err := mw.CreateAttachment(ah)
	if err != nil {
		return classify("write the message", err)
	}
	for i := 1; i <= t.Request.Chunks; i++ {
		if err := tr.copyChunk(ctx, aw, t, t.Request.Chunk(i)); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return classify("write the message", err)
	}
	if err := mw.Close(); err != nil {
		return classify("write the message", err)
	}
	return nil
}

func (tr *Transport) copyChunk(ctx context.Context, w io.Writer, t domain.State, c domain.Chunk) error {
	r, err := tr.source.OpenChunk(ctx, t, c)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.Copy(w, r); err != nil {
		return domain.Errorf(domain.KindUnavailable, "email: read chunk %d of %s or send it: %v", c.Index, t.ID, err)
	}
	return nil
}

// Expand fills a subject or body template with t's values: those of the
// filename fields, as they are but for line breaks (which would end a
// header), each a space.
func Expand(tmpl string, t domain.State) string {
	r := t.Request
	filename := r.Filename
	if filename == "" {
		filename = path.Base(r.Source.Key)
	}
	ext := path.Ext(filename)
	created := t.Created.UTC()
	values := map[string]string{
		"filename": filename, "name": strings.TrimSuffix(filename, ext), "ext": ext,
		"sender": r.Sender, "recipient": r.Recipient, "workflow": r.Workflow, "transferId": t.ID,
		"date": created.Format("2006-01-02"), "time": created.Format("150405"),
	}
	var b strings.Builder
	for rest := tmpl; ; {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest[max(i, 0):], '}')
		if i < 0 || j < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		b.WriteString(values[rest[i+1:i+j]])
		rest = rest[i+j+1:]
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, b.String())
}

// tlsConfig verifies the relay's certificate for its host, against the
// endpoint's CA bundle if it has one.
func (tr *Transport) tlsConfig(ctx context.Context, e Endpoint) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: e.Host, MinVersion: tls.VersionTLS12}
	if e.CABundle != "" {
		pem, err := tr.secrets.Resolve(ctx, e.CABundle)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, domain.Errorf(domain.KindInvalid, "email: caBundle %s holds no PEM certificate", e.CABundle)
		}
	}
	return cfg, nil
}

// classifyNil is classify for an error that may be nil.
func classifyNil(err error) error {
	if err == nil {
		return nil
	}
	return classify("write the message", err)
}

// classify makes an SMTP conversation's error ferry's: 4xx replies and
// network errors are retryable (unavailable), 530/534/535 refused
// credentials (unauthorized), other 5xx replies and a certificate that
// cannot be verified final (invalid).
func classify(op string, err error) *domain.Error {
	var se *smtp.SMTPError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	switch {
	case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
		return domain.Errorf(domain.KindUnavailable, "email: %s: %d %s", op, se.Code, se.Message).WithCode(strconv.Itoa(se.Code))
	case errors.As(err, &se) && (se.Code == 530 || se.Code == 534 || se.Code == 535):
		return domain.Errorf(domain.KindUnauthorized, "email: %s: %d %s", op, se.Code, se.Message).WithCode(strconv.Itoa(se.Code))
	case errors.As(err, &se):
		return domain.Errorf(domain.KindInvalid, "email: %s: %d %s", op, se.Code, se.Message).WithCode(strconv.Itoa(se.Code))
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn):
		return domain.Errorf(domain.KindInvalid, "email: %s: the relay's certificate is not trusted: %v", op, err).WithCode("CERTIFICATE")
	}
	return domain.Errorf(domain.KindUnavailable, "email: %s: %v", op, fmt.Sprint(err))
}
