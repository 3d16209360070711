package domain

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

func TestKindRetryable(t *testing.T) {
	want := map[Kind]bool{
		KindInvalid: false, KindNotFound: false, KindConflict: false, KindUnauthorized: false,
		KindUnavailable: true, KindInternal: false, Kind("made-up"): false,
	}
	for k, w := range want {
		if got := k.Retryable(); got != w {
			t.Errorf("%s.Retryable() = %t, want %t", k, got, w)
		}
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{Errorf(KindInvalid, "size %d is negative", -1), "size -1 is negative (invalid)"},
		{Errorf(KindUnavailable, "peer down").WithCode("503"), "peer down (unavailable 503)"},
		{&Error{Kind: KindUnavailable, Err: io.ErrUnexpectedEOF}, "unexpected EOF (unavailable)"},
		{&Error{Kind: KindUnavailable, Message: "send chunk 2", Err: io.ErrUnexpectedEOF, Code: "EOF"}, "send chunk 2: unexpected EOF (unavailable EOF)"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestWithCodeCopies(t *testing.T) {
	base := Errorf(KindUnauthorized, "refused")
	coded := base.WithCode("401")
	if base.Code != "" || coded.Code != "401" || coded.Kind != KindUnauthorized || coded.Message != "refused" {
		t.Errorf("base %+v, coded %+v", base, coded)
	}
}

func TestKindOfAndCodeOf(t *testing.T) {
	inner := &Error{Kind: KindUnavailable, Code: "503", Err: io.EOF}
	wrapped := fmt.Errorf("append %s: %w", testID, inner)
	for _, tc := range []struct {
		name string
		err  error
		kind Kind
		code string
	}{
		{"direct", inner, KindUnavailable, "503"},
		{"wrapped", wrapped, KindUnavailable, "503"},
		{"joined", errors.Join(errors.New("plain"), wrapped), KindUnavailable, "503"},
		{"plain error is internal", io.EOF, KindInternal, ""},
		{"nil is internal", nil, KindInternal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KindOf(tc.err); got != tc.kind {
				t.Errorf("KindOf = %s, want %s", got, tc.kind)
			}
			if got := CodeOf(tc.err); got != tc.code {
				t.Errorf("CodeOf = %q, want %q", got, tc.code)
			}
		})
	}
	if !errors.Is(wrapped, io.EOF) {
		t.Error("Unwrap does not reach the cause")
	}
}

func TestRetryAfterOf(t *testing.T) {
	hinted := &Error{Kind: KindUnavailable, Message: "throttled", RetryAfter: 7 * time.Second}
	for _, tc := range []struct {
		name string
		err  error
		want time.Duration
	}{
		{"a hint", hinted, 7 * time.Second},
		{"a wrapped hint", fmt.Errorf("send: %w", hinted), 7 * time.Second},
		{"kept by WithCode", hinted.WithCode("429"), 7 * time.Second},
		{"no hint", Errorf(KindUnavailable, "down"), 0},
		{"not an *Error", io.EOF, 0},
		{"nil", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetryAfterOf(tc.err); got != tc.want {
				t.Errorf("RetryAfterOf(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}
