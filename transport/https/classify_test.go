package https

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

func TestClassify(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		name    string
		status  int
		header  http.Header
		body    string
		max     int64
		kind    domain.Kind // "" for success
		message string      // the message, exactly
		after   time.Duration
	}{
		{name: "200", status: 200},
		{name: "201", status: 201},
		{name: "204", status: 204},
		{name: "302 names the location", status: 302, header: http.Header{"Location": {"https://x.example/\x1bnext"}}, kind: domain.KindInvalid,
			message: `op: 302 Found redirect to "https://x.example/ next" not allowed by the endpoint (followRedirects is false)`},
		{name: "400 with an excerpt", status: 400, body: "line one\r\n\tline\x00two", max: 1024, kind: domain.KindInvalid, message: "op: 400 Bad Request: line one line two"},
		{name: "400 with a long body, cut", status: 400, body: long, max: 10, kind: domain.KindInvalid, message: "op: 400 Bad Request: xxxxxxxxxx…"},
		{name: "400 without excerpt", status: 400, body: "secretish", max: 0, kind: domain.KindInvalid, message: "op: 400 Bad Request"},
		{name: "404", status: 404, max: 1024, kind: domain.KindInvalid, message: "op: 404 Not Found"},
		{name: "413", status: 413, max: 1024, kind: domain.KindInvalid, message: "op: 413 Request Entity Too Large"},
		{name: "401", status: 401, max: 1024, kind: domain.KindUnauthorized, message: "op: 401 Unauthorized"},
		{name: "403", status: 403, max: 1024, body: "no", kind: domain.KindUnauthorized, message: "op: 403 Forbidden: no"},
		{name: "408 is retryable", status: 408, max: 1024, kind: domain.KindUnavailable, message: "op: 408 Request Timeout"},
		{name: "429 with seconds", status: 429, header: http.Header{"Retry-After": {"7"}}, kind: domain.KindUnavailable, message: "op: 429 Too Many Requests", after: 7 * time.Second},
		{name: "503 with a date", status: 503, header: http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, kind: domain.KindUnavailable, message: "op: 503 Service Unavailable", after: 90 * time.Second},
		{name: "503 with a past date", status: 503, header: http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, kind: domain.KindUnavailable, message: "op: 503 Service Unavailable"},
		{name: "500 with garbage Retry-After", status: 500, header: http.Header{"Retry-After": {"soon"}}, kind: domain.KindUnavailable, message: "op: 500 Internal Server Error"},
		{name: "599", status: 599, kind: domain.KindUnavailable, message: "op: 599"},
		{name: "600 is unexpected", status: 600, kind: domain.KindInternal, message: "op: 600 (unexpected status)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			status := strings.TrimSpace(strconv.Itoa(tc.status) + " " + http.StatusText(tc.status))
			resp := &http.Response{StatusCode: tc.status, Status: status, Header: h, Body: io.NopCloser(strings.NewReader(tc.body))}
			err := classify("op", resp, tc.max, now)
			if tc.kind == "" {
				if err != nil {
					t.Fatalf("classify = %v, want nil", err)
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) {
				t.Fatalf("classify = %v (%T), want a *domain.Error", err, err)
			}
			if de.Kind != tc.kind || de.Code != strconv.Itoa(tc.status) || de.Message != tc.message || de.RetryAfter != tc.after {
				t.Errorf("classify = {%s %s %q after %s}, want {%s %d %q after %s}", de.Kind, de.Code, de.Message, de.RetryAfter, tc.kind, tc.status, tc.message, tc.after)
			}
			if de.Kind.Retryable() != (tc.kind == domain.KindUnavailable) {
				t.Errorf("retryable = %t", de.Kind.Retryable())
			}
		})
	}
}

func TestClassifyErr(t *testing.T) {
	source := domain.Errorf(domain.KindNotFound, "source gone")
	for _, tc := range []struct {
		name    string
		err     error
		bodyErr error
		want    domain.Kind
	}{
		{"the source's error wins", errors.New("write: broken pipe"), source, domain.KindNotFound},
		{"a network error is retryable", errors.New("connection refused"), nil, domain.KindUnavailable},
		{"a timeout is retryable", context.DeadlineExceeded, nil, domain.KindUnavailable},
		{"a domain error inside is kept", &wrapped{source}, nil, domain.KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := domain.KindOf(classifyErr("op", tc.err, tc.bodyErr)); got != tc.want {
				t.Errorf("kind %s, want %s", got, tc.want)
			}
		})
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "wrapped: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"7", 7 * time.Second}, {" 120 ", 2 * time.Minute}, {"0", 0}, {"-3", 0}, {"1.5", 0},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute},
		{"Wed, 02 Dec 2026 02:00:00 GMT", 0},
		{"99999999999", 0},
	} {
		if got := retryAfter(tc.v, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x00b\r\nc\u2028d", 20, "a b c d"},
		{"\xff\xfeok", 20, "\uFFFDok"},
		{"héllo", 2, "h"},
	} {
		if got := sanitize(tc.in, tc.max); got != tc.want {
			t.Errorf("sanitize(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
