package https

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/domain"
)

// classify turns a response into nil (2xx) or the *domain.Error it means,
// reading at most maxBody bytes of a failure's body into the message. It
// is the one table of status classes:
//
//	2xx                  success
//	3xx                  KindInvalid: a redirect the endpoint does not follow
//	401, 403             KindUnauthorized
//	408, 429, 5xx        KindUnavailable, with the Retry-After hint
//	other 4xx            KindInvalid
//	anything else        KindInternal
//
// The error's Code is the status number. It does not close resp.Body.
func classify(op string, resp *http.Response, maxBody int64, now time.Time) error {
	s := resp.StatusCode
	if s >= 200 && s <= 299 {
		return nil
	}
	code := strconv.Itoa(s)
	switch {
	case s >= 300 && s <= 399:
		where := sanitize(location(resp.Header.Get("Location")), 256)
		return domain.Errorf(domain.KindInvalid, "%s: %s redirect to %q not allowed by the endpoint (followRedirects is false)", op, resp.Status, where).WithCode(code)
	}
	msg := fmt.Sprintf("%s: %s", op, statusText(resp))
	if excerpt := bodyExcerpt(resp.Body, maxBody); excerpt != "" {
		msg += ": " + excerpt
	}
	var e *domain.Error
	switch {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e = &domain.Error{Kind: domain.KindUnauthorized, Message: msg}
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500 && s <= 599:
		e = &domain.Error{Kind: domain.KindUnavailable, Message: msg, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now)}
	case s >= 400 && s <= 499:
		e = &domain.Error{Kind: domain.KindInvalid, Message: msg}
	default:
		e = &domain.Error{Kind: domain.KindInternal, Message: msg + " (unexpected status)"}
	}
	return e.WithCode(code)
}

// statusText is "503 Service Unavailable", with the reason phrase the
// server sent when it sent one.
func statusText(resp *http.Response) string {
	if resp.Status != "" {
		return sanitize(resp.Status, 128)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
}

// bodyExcerpt reads at most max bytes of body, sanitised; "…" marks a
// longer body.
func bodyExcerpt(body io.Reader, max int64) string {
	if body == nil || max <= 0 {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(body, max+1))
	more := int64(len(b)) > max
	if more {
		b = b[:max]
	}
	s := sanitize(string(b), int(max))
	if more {
		s += "…"
	}
	return s
}

// sanitize makes s fit for a log line: valid UTF-8, control characters as
// spaces, runs of spaces folded, trimmed, at most max bytes.
func sanitize(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	out := strings.TrimSpace(b.String())
	if len(out) > max {
		out = strings.ToValidUTF8(out[:max], "")
	}
	return out
}

// retryAfter parses a Retry-After value, seconds or an HTTP date, into a
// wait from now; 0 when absent, unparseable or past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(365*24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now).Round(time.Second)
	}
	return 0
}

// classifyErr turns an error of sending a request (not a response) into a
// *domain.Error: the source's own error when reading the body failed,
// KindInvalid for a certificate the endpoint's roots do not trust (a
// setting to fix, not a peer to wait for), KindUnavailable for everything
// else (the network, the peer, a timeout).
func classifyErr(op string, err error, bodyErr error) error {
	if bodyErr != nil {
		return withOp(op, bodyErr)
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return withOp(op, de)
	}
	var (
		unknown   x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
	)
	if errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verifyErr) {
		return &domain.Error{Kind: domain.KindInvalid, Message: op + ": TLS verification failed", Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &domain.Error{Kind: domain.KindUnavailable, Message: op + ": cancelled", Err: err}
	}
	return &domain.Error{Kind: domain.KindUnavailable, Message: op, Err: err}
}

// withOp returns a copy of e (a *domain.Error, or wrapped as internal)
// whose message begins with op.
func withOp(op string, err error) error {
	var de *domain.Error
	if !errors.As(err, &de) {
		return &domain.Error{Kind: domain.KindInternal, Message: op, Err: err}
	}
	c := *de
	if c.Message == "" {
		c.Message = op
	} else {
		c.Message = op + ": " + c.Message
	}
	return &c
}
