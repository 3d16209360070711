package email

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/ferryhq/ferry/transport"
)

// MaxParts bounds the leaf parts of one message: a message of more is
// rejected (TOO_MANY_PARTS) rather than made hundreds of transfers.
const MaxParts = 100

// Part is one leaf part of a message, as Walk finds it.
type Part struct {
	// Index counts the message's leaf parts from 1, in order.
	Index int
	// Name is the part's file name as the message gives it, decoded
	// (RFC 2231 parameters, RFC 2047 words); "" when it gives none.
	Name string
	// ContentType is the part's media type, lower case.
	ContentType string
	// Attachment says the part is a file: a disposition of attachment, a
	// file name, or a type other than text (an image, a PDF, a forwarded
	// message/rfc822, which is delivered as it is, a .eml file). The
	// other parts are the message's text.
	Attachment bool
}

// Filename is the name the part is stored and delivered under: Name made
// safe by transport.SafeFilename, or attachment-N (body.txt, body.html for
// a message's text) with an extension from its type.
func (p Part) Filename() string {
	fallback := fmt.Sprintf("attachment-%d%s", p.Index, extension(p.ContentType))
	if !p.Attachment {
		fallback = "body" + extension(p.ContentType)
	}
	return transport.SafeFilename(p.Name, fallback)
}

func extension(contentType string) string {
	switch contentType {
	case "text/plain":
		return ".txt"
	case "text/html":
		return ".html"
	case "message/rfc822":
		return ".eml"
	}
	if exts, _ := mime.ExtensionsByType(contentType); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

// ErrMalformed marks a message whose MIME structure or encoding cannot be
// read; errors.Is recognises every error Walk returns for one.
var ErrMalformed = errors.New("malformed message")

// ErrTooManyParts is Walk's error for a message of more than MaxParts parts.
var ErrTooManyParts = fmt.Errorf("more than %d parts", MaxParts)

// Walk reads a raw message from r as a stream and calls fn with each leaf
// part and its body, decoded from its transfer encoding (base64,
// quoted-printable) but not from its charset: an attachment's bytes are
// the ones its sender attached. fn must read what it needs of body before
// it returns; what it leaves is skipped. Walk returns ErrMalformed (wrapped,
// with what is wrong) for a message it cannot read, ErrTooManyParts, or
// fn's error.
func Walk(r io.Reader, fn func(p Part, body io.Reader) error) error {
	mr, err := mail.CreateReader(r)
	if err != nil && !message.IsUnknownCharset(err) {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for n := 1; ; n++ {
		mp, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil && !message.IsUnknownCharset(err) {
			return fmt.Errorf("%w: part %d: %v", ErrMalformed, n, err)
		}
		if n > MaxParts {
			return ErrTooManyParts
		}
		p, err := describe(n, mp)
		if err != nil {
			return err
		}
		body := &readErrors{r: mp.Body}
		err = fn(p, body)
		if err == nil {
			// Read what fn left, to find the next part (and any damage).
			_, err = io.Copy(io.Discard, body)
		}
		if body.err != nil {
			return fmt.Errorf("%w: part %d: %v", ErrMalformed, n, body.err)
		}
		if err != nil {
			return err
		}
	}
}

// describe classifies a leaf part by its header.
func describe(n int, mp *mail.Part) (Part, error) {
	var h message.Header
	switch ph := mp.Header.(type) {
	case *mail.InlineHeader:
		h = ph.Header
	case *mail.AttachmentHeader:
		h = ph.Header
	}
	t, _, _ := h.ContentType()
	t = strings.ToLower(t)
	if t == "" {
		t = "text/plain" // RFC 2045's default
	}
	if strings.HasPrefix(t, "multipart/") {
		return Part{}, fmt.Errorf("%w: part %d: %s without a boundary", ErrMalformed, n, t)
	}
	disp, _, _ := h.ContentDisposition()
	name, _ := (&mail.AttachmentHeader{Header: h}).Filename()
	name = decodeWords(name)
	return Part{
		Index: n, Name: name, ContentType: t,
		Attachment: strings.EqualFold(disp, "attachment") || name != "" || !strings.HasPrefix(t, "text/"),
	}, nil
}

// decodeWords decodes RFC 2047 encoded words that go-message left as they
// were (it decodes UTF-8 ones; the standard library adds ISO-8859-1 and
// US-ASCII).
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// readErrors remembers the first error reading r gave other than EOF:
// damage to the part (bad base64, a boundary missing).
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
