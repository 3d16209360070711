// Package email turns email received by SES into transfers: one transfer
// per attachment, routed by the address the message was received for.
//
// SES's receipt rule stores the raw message in the upload bucket under
// domain.EmailPrefix + its message id, then invokes this handler with the
// message's SimpleEmailEvent (ferry local's SMTP listener does the same).
// The handler reads the message from S3 as a stream twice: once to check
// its MIME structure and find its parts, holding none of them, then to
// stream each attachment into an object of its own under a domain.EmailKey
// (a multipart upload, one part in memory at a time) and make it a transfer
// through intake's Command, the one place an upload meets the routing
// table. The transfers of one message share its SES message id as their
// correlation id.
//
// Every message for every recipient ends as recorded transfers: the
// attachments requested, or one transfer Requested and at once Failed (not
// retryable) whose reason says why the message was refused: no route
// (NO_ROUTE), a sender the route does not allow (SENDER_NOT_ALLOWED), a
// verdict the route does not accept (VERDICT_FAILED), too large
// (TOO_LARGE), malformed (MALFORMED_MESSAGE), too many parts
// (TOO_MANY_PARTS), no attachment on a route that does not take a
// message's text (NO_ATTACHMENT), gone from the bucket (SOURCE_GONE), or an
// SES message id unsafe as a key (INVALID_MESSAGE_ID). A
// refused message's attachments are not stored. Only a failure to reach
// S3 or the table is returned as an error, for Lambda to retry the
// invocation; the transfers' ids are derived from the message, so a retry
// makes no new ones.
package email

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// Objects is what the email function needs of S3: reading received
// messages, storing their attachments.
type Objects interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Requester decides what an upload asks for: intake's Command.
type Requester interface {
	Command(o intake.Object) domain.Command
}

// Handler is the email Lambda.
type Handler struct {
	Store   store.Appender
	Objects Objects
	Intake  Requester
	// Routes is the routing table Intake routes by; the handler reads the
	// email policy of the route a message takes from it.
	Routes domain.Routes
	// Bucket is the upload bucket, where SES stores received messages
	// (under domain.EmailPrefix) and attachments are put.
	Bucket string
	// PartSize is the part size of attachments' uploads; 0 means
	// DefaultPartSize.
	PartSize int64
	Now      func() time.Time
	Log      *slog.Logger
}

// Handle processes the messages of an SES receipt rule's Lambda action. It
// returns an error only when S3 or the table could not be reached, after
// recording what it could; invoked again, it records the rest.
func (h *Handler) Handle(ctx context.Context, ev events.SimpleEmailEvent) error {
	var errs []error
	for _, r := range ev.Records {
		if err := h.message(ctx, r.SES); err != nil {
			h.Log.ErrorContext(ctx, "email message failed", "messageId", r.SES.Mail.MessageID, "error", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// messageIDs are the SES message ids the handler reads, as object keys.
var messageIDs = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// received is one message as the handler knows it.
type received struct {
	id       string // SES's message id
	at       time.Time
	key      string
	from     string
	verdicts domain.Verdicts
	subject  string
	headerID string // the Message-ID header

	head  *s3.HeadObjectOutput // the stored message, nil when gone
	parts []Part               // found by the first reading; nil before it
	bad   *domain.Error        // why the first reading refused the message
}

func (h *Handler) message(ctx context.Context, ses events.SimpleEmailService) error {
	m, rc := ses.Mail, ses.Receipt
	msg := &received{
		id: m.MessageID, at: m.Timestamp, key: domain.EmailPrefix + m.MessageID,
		from: sender(m), subject: m.CommonHeaders.Subject, headerID: m.CommonHeaders.MessageID,
		verdicts: domain.Verdicts{
			domain.VerdictSPF: rc.SPFVerdict.Status, domain.VerdictDKIM: rc.DKIMVerdict.Status,
			domain.VerdictDMARC: rc.DMARCVerdict.Status, domain.VerdictSpam: rc.SpamVerdict.Status,
			domain.VerdictVirus: rc.VirusVerdict.Status,
		},
	}
	if msg.at.IsZero() {
		msg.at = rc.Timestamp
	}
	recipients := recipientsOf(ses)
	if len(recipients) == 0 {
		return domain.Errorf(domain.KindInvalid, "message %s names no recipient", m.MessageID)
	}
	if !messageIDs.MatchString(m.MessageID) {
		reason := domain.Errorf(domain.KindInvalid, "SES message id %q is not safe as an object key", m.MessageID).WithCode("INVALID_MESSAGE_ID")
		msg.key = domain.EmailPrefix
		return h.each(recipients, func(to string) error { return h.reject(ctx, msg, to, domain.Requested{}, reason) })
	}
	head, err := h.Objects.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &h.Bucket, Key: &msg.key})
	switch {
	case err != nil && awserr.Kind(err) != domain.KindNotFound:
		return awserr.Classify("head received message", err)
	case err == nil:
		msg.head = head
	}
	return h.each(recipients, func(to string) error { return h.recipient(ctx, msg, to) })
}

// each calls fn for every recipient, joining the errors.
func (h *Handler) each(recipients []string, fn func(to string) error) error {
	var errs []error
	for _, to := range recipients {
		errs = append(errs, fn(to))
	}
	return errors.Join(errs...)
}

// recipient makes the transfers of msg for one recipient address.
func (h *Handler) recipient(ctx context.Context, msg *received, to string) error {
	md := msg.metadata(to)
	probe := intake.Object{Bucket: h.Bucket, Key: domain.EmailKey(domain.EmailTransferID(msg.id, to, 0, msg.at), msg.id+".eml"), Metadata: md}
	if msg.head != nil {
		probe.Size = aws.ToInt64(msg.head.ContentLength)
	}
	// The message as a whole: its route, sender and verdicts.
	req, reason := requested(h.Intake.Command(probe))
	if reason != nil {
		return h.reject(ctx, msg, to, req, reason)
	}
	if msg.head == nil {
		return h.reject(ctx, msg, to, req, domain.Errorf(domain.KindInvalid, "received message s3://%s/%s no longer exists", h.Bucket, msg.key).WithCode("SOURCE_GONE"))
	}
	policy := h.route(req.Route).EmailPolicy()
	if size := aws.ToInt64(msg.head.ContentLength); size > policy.MaxMessage() {
		return h.reject(ctx, msg, to, req, domain.Errorf(domain.KindInvalid, "message of %d bytes is over route %s's %d", size, req.Route, policy.MaxMessage()).WithCode("TOO_LARGE"))
	}
	if err := h.scan(ctx, msg); err != nil {
		return err
	}
	if msg.bad != nil {
		return h.reject(ctx, msg, to, req, msg.bad)
	}
	selected := chosen(msg.parts, policy.Body)
	if len(selected) == 0 {
		why := fmt.Sprintf("message has no attachment, and route %s does not take a message's text (email.body)", req.Route)
		if policy.Body {
			why = "message has neither an attachment nor a text"
		}
		return h.reject(ctx, msg, to, req, domain.Errorf(domain.KindInvalid, "%s", why).WithCode("NO_ATTACHMENT"))
	}
	// The second reading stores the chosen parts.
	body, err := h.open(ctx, msg)
	if err != nil {
		return err
	}
	defer body.Close()
	var errs []error
	err = Walk(body, func(p Part, r io.Reader) error {
		n := slices.Index(selected, p.Index) + 1
		if n == 0 {
			return nil
		}
		if err := h.attachment(ctx, msg, to, md, n, p, r); err != nil {
			if domain.KindOf(err).Retryable() {
				return err // S3 is not answering: the invocation is retried
			}
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// attachment stores part p (the n-th chosen) and makes it a transfer.
func (h *Handler) attachment(ctx context.Context, msg *received, to string, md map[string]string, n int, p Part, r io.Reader) error {
	id := domain.EmailTransferID(msg.id, to, n, msg.at)
	meta := map[string]string{}
	for k, v := range md {
		meta[k] = v
	}
	if p.Name != "" {
		meta[domain.MetaEmailFilename] = escape(p.Name)
	}
	key := domain.EmailKey(id, p.Filename())
	st, err := put(ctx, h.Objects, h.Bucket, key, p.ContentType, meta, r, h.partSize())
	if err != nil {
		return fmt.Errorf("attachment %d of %s: %w", p.Index, msg.id, err)
	}
	cmd := h.Intake.Command(intake.Object{Bucket: h.Bucket, Key: key, VersionID: st.VersionID, ETag: st.ETag, Size: st.Size, Metadata: meta})
	if c, ok := cmd.(domain.Request); ok {
		c.Requested.SHA256 = st.SHA256
		cmd = c
	}
	return h.create(ctx, id, cmd)
}

// chosen returns the indexes of the parts that become transfers: the
// attachments, or when there are none and body is set, the message's text
// (its first text/plain part, else its first text part).
func chosen(parts []Part, body bool) []int {
	var out []int
	text := 0
	for _, p := range parts {
		switch {
		case p.Attachment:
			out = append(out, p.Index)
		case text == 0 || (p.ContentType == "text/plain" && parts[text-1].ContentType != "text/plain"):
			text = p.Index
		}
	}
	if len(out) == 0 && body && text != 0 {
		out = []int{text}
	}
	return out
}

// scan reads the message once, to find its parts and any damage, holding
// none of it.
func (h *Handler) scan(ctx context.Context, msg *received) error {
	if msg.parts != nil || msg.bad != nil {
		return nil
	}
	body, err := h.open(ctx, msg)
	if err != nil {
		return err
	}
	defer body.Close()
	parts := []Part{}
	err = Walk(body, func(p Part, _ io.Reader) error {
		parts = append(parts, p)
		return nil
	})
	switch {
	case errors.Is(err, ErrTooManyParts):
		msg.bad = domain.Errorf(domain.KindInvalid, "message has %s", err).WithCode("TOO_MANY_PARTS")
	case errors.Is(err, ErrMalformed):
		msg.bad = domain.Errorf(domain.KindInvalid, "message cannot be read: %s", err).WithCode("MALFORMED_MESSAGE")
	case err != nil:
		return domain.Errorf(domain.KindUnavailable, "read received message %s: %v", msg.key, err)
	}
	msg.parts = parts
	return nil
}

// open reads the stored message: the version its HeadObject saw.
func (h *Handler) open(ctx context.Context, msg *received) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &h.Bucket, Key: &msg.key, IfMatch: msg.head.ETag}
	if v := aws.ToString(msg.head.VersionId); v != "" && v != "null" {
		in.VersionId, in.IfMatch = &v, nil
	}
	out, err := h.Objects.GetObject(ctx, in)
	if err != nil {
		return nil, awserr.Classify("read received message", err)
	}
	return out.Body, nil
}

// reject records the message, for one recipient, as a transfer that
// failed at once: req (the message as intake saw it, or zero) with the
// stored message as its source.
func (h *Handler) reject(ctx context.Context, msg *received, to string, req domain.Requested, reason *domain.Error) error {
	if req.Sender == "" && req.Recipient == "" {
		req.Sender, req.Recipient = msg.from, to
	}
	req.Source = domain.Source{Kind: "s3", Bucket: h.Bucket, Key: msg.key}
	if msg.head != nil {
		req.Source.VersionID, req.Source.ETag = aws.ToString(msg.head.VersionId), aws.ToString(msg.head.ETag)
		req.Size = aws.ToInt64(msg.head.ContentLength)
	}
	req.Filename = transport.SafeFilename(msg.id+".eml", "message.eml")
	req.CorrelationID = msg.id
	return h.create(ctx, domain.EmailTransferID(msg.id, to, 0, msg.at), domain.Reject{Requested: req, Reason: reason})
}

// create records a transfer; one recorded before (a retried invocation,
// or intake's notification of the attachment first) is success.
func (h *Handler) create(ctx context.Context, id string, cmd domain.Command) error {
	d, err := store.DecideAppend(ctx, h.Store, domain.State{ID: id}, cmd, h.Now().UTC())
	if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	log := h.Log.With("transfer", id)
	if d.Lost {
		log.InfoContext(ctx, "transfer recorded before")
		return nil
	}
	st := d.State
	log = log.With("version", st.Version, "status", st.Status, "route", st.Request.Route, "correlationId", st.Request.CorrelationID)
	if st.Status == domain.StatusFailed {
		log.WarnContext(ctx, "email rejected", "reason", st.LastFailure.Message, "code", st.LastFailure.Code, "sender", st.Request.Sender)
	} else {
		log.InfoContext(ctx, "attachment requested", "bytes", st.Request.Size, "chunks", st.Request.Chunks)
	}
	return nil
}

// route returns the route named, with its defaults.
func (h *Handler) route(name string) domain.Route {
	for _, r := range h.Routes.Routes {
		if r.Name == name {
			return r
		}
	}
	return domain.Route{}
}

func (h *Handler) partSize() int64 {
	if h.PartSize > 0 {
		return h.PartSize
	}
	return DefaultPartSize
}

// requested returns what a command asks for, and its rejection's reason.
func requested(cmd domain.Command) (domain.Requested, *domain.Error) {
	switch c := cmd.(type) {
	case domain.Request:
		return c.Requested, nil
	case domain.Reject:
		return c.Requested, c.Reason
	}
	return domain.Requested{}, domain.Errorf(domain.KindInternal, "unexpected command %T", cmd)
}

// metadata is what every object of msg for recipient to carries, as S3
// user metadata (URL-encoded, as intake reads it).
func (msg *received) metadata(to string) map[string]string {
	md := map[string]string{
		domain.MetaEmailFrom:     escape(msg.from),
		domain.MetaEmailTo:       escape(to),
		domain.MetaCorrelationID: escape(msg.id),
	}
	if msg.subject != "" {
		md["subject"] = escape(msg.subject)
	}
	if msg.headerID != "" {
		md[domain.MetaEmailMessageID] = escape(msg.headerID)
	}
	for name, v := range msg.verdicts {
		if v != "" {
			md[domain.MetaVerdictPrefix+name] = escape(v)
		}
	}
	return md
}

// maxMetadataValue bounds each escaped metadata value, so that all of them
// stay within S3's 2 KB of user metadata.
const maxMetadataValue = 256

// escape URL-encodes s (S3 metadata is ASCII), cut at a character boundary
// to at most maxMetadataValue bytes encoded.
func escape(s string) string {
	e := url.QueryEscape(s)
	for len(e) > maxMetadataValue {
		r := []rune(s)
		s = string(r[:len(r)*maxMetadataValue/len(e)])
		e = url.QueryEscape(s)
	}
	return e
}

// sender is the message's sender: its From address as SES parsed it,
// which DMARC checks, else the envelope's MAIL FROM.
func sender(m events.SimpleEmailMessage) string {
	for _, f := range m.CommonHeaders.From {
		if a, err := mail.ParseAddress(f); err == nil && a.Address != "" {
			return a.Address
		}
	}
	return m.Source
}

// recipientsOf lists the addresses the receipt rule took the message for,
// lower case and once each.
func recipientsOf(ses events.SimpleEmailService) []string {
	all := ses.Receipt.Recipients
	if len(all) == 0 {
		all = ses.Mail.Destination
	}
	var out []string
	for _, r := range all {
		r = strings.ToLower(strings.TrimSpace(r))
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
