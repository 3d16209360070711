package mesh

import (
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ferryhq/ferry/domain"
)

// statusTable is the one mapping from MESH's HTTP statuses to ferry's error
// kinds; the first row whose range holds the status wins. Statuses outside
// every row (1xx, 3xx) are KindInternal.
var statusTable = []struct {
	lo, hi int
	kind   domain.Kind
	reason string
}{
	{401, 401, domain.KindUnauthorized, "authentication failed"},
	{403, 403, domain.KindUnauthorized, "authentication failed"}, // wrong password or key, token reuse, not the recipient
	{404, 404, domain.KindNotFound, "not found"},
	{410, 410, domain.KindNotFound, "gone"},                 // expired, or not yet fully uploaded
	{423, 423, domain.KindConflict, "already finalised"},    // chunk sent after the last one was accepted
	{408, 408, domain.KindUnavailable, "request timed out"}, // retryable
	{429, 429, domain.KindUnavailable, "throttled"},         // retryable
	{400, 499, domain.KindInvalid, "rejected"},              // 400 malformed headers, 406, 417 bad recipient/chunks, 422 encoding
	{500, 599, domain.KindUnavailable, "server error"},      // retryable
}

// statusError turns a non-success response into a *domain.Error. Code is
// the MESH error code from the body (detail[0].code in v2, errorCode in
// v1) when there is one, else the HTTP status; Message keeps the status and
// MESH's own description.
func statusError(op string, status int, body []byte) *domain.Error {
	kind, reason := domain.KindInternal, "unexpected response"
	for _, row := range statusTable {
		if status >= row.lo && status <= row.hi {
			kind, reason = row.kind, row.reason
			break
		}
	}
	code, msg := parseErrorBody(body)
	if code == "" {
		code = strconv.Itoa(status)
	}
	detail := fmt.Sprintf("HTTP %d", status)
	if msg != "" {
		detail += ": " + msg
	}
	return &domain.Error{Kind: kind, Code: code, Message: fmt.Sprintf("%s: %s (%s)", op, reason, detail)}
}

// parseErrorBody extracts MESH's error code and description from an error
// body in any of the shapes the service answers with:
//
//	v2:         {"message_id", "internal_id", "detail": [{"event", "code", "msg"}]}
//	v1:         {"messageID", "errorEvent", "errorCode", "errorDescription"}
//	validation: {"detail": [{"type", "loc": ["header", "mex-to"], "msg"}]}
func parseErrorBody(body []byte) (code, msg string) {
	var b struct {
		Detail           json.RawMessage `json:"detail"`
		ErrorCode        string          `json:"errorCode"`
		ErrorDescription string          `json:"errorDescription"`
	}
	if json.Unmarshal(body, &b) != nil {
		return "", ""
	}
	var details []struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
		Loc  []any  `json:"loc"`
	}
	if json.Unmarshal(b.Detail, &details) == nil && len(details) > 0 {
		d := details[0]
		code, msg = d.Code, d.Msg
		if len(d.Loc) > 0 { // request validation: say which field
			var parts []string
			for _, l := range d.Loc {
				parts = append(parts, fmt.Sprint(l))
			}
			msg = strings.Join(parts, " ") + ": " + msg
		}
	} else {
		var s string
		if json.Unmarshal(b.Detail, &s) == nil {
			msg = s
		}
	}
	if code == "" {
		code = b.ErrorCode
	}
	if msg == "" {
		msg = b.ErrorDescription
	}
	return code, clean(msg)
}

// clean makes a server-supplied description safe and short for a log line.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimSpace(s)
}

// ioError classifies an error from sending a request or reading a body.
// An err that already holds a *domain.Error keeps that kind.
func ioError(op string, err error) *domain.Error {
	var de *domain.Error
	if errors.As(err, &de) {
		return &domain.Error{Kind: de.Kind, Code: de.Code, Message: op, Err: err}
	}
	return &domain.Error{Kind: ioKind(err), Message: op, Err: err}
}

func ioKind(err error) domain.Kind {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		alert     tls.AlertError
		corrupt   flate.CorruptInputError
		recordHdr tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return domain.KindUnavailable
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verifyErr):
		return domain.KindUnauthorized // the server's certificate is not the one we trust
	case errors.As(err, &alert) && certAlert(alert):
		return domain.KindUnauthorized // the server refused our client certificate
	case errors.As(err, &recordHdr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return domain.KindInvalid // TLS spoken to a plain-HTTP peer (net/http flattens that error): configuration
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return domain.KindInvalid // the data is corrupt; repeating will not mend it
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return domain.KindUnavailable
	}
	return domain.KindUnavailable // connection refused, reset, DNS, timeouts, broken streams
}

// certAlert reports whether a TLS alert from the server is about our
// certificate (bad, unsupported, revoked, expired, unknown, unknown CA,
// access denied, certificate required).
func certAlert(a tls.AlertError) bool {
	switch a {
	case 42, 43, 44, 45, 46, 48, 49, 116:
		return true
	}
	return false
}
