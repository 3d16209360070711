package domain

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error. Every failure ferry records carries one, and the
// kind alone decides whether an attempt is worth repeating.
type Kind string

// The error kinds. Unknown errors count as KindInternal.
const (
	KindInvalid      Kind = "invalid"      // the request or the data is wrong; repeating will not help
	KindNotFound     Kind = "not_found"    // the thing named does not exist
	KindConflict     Kind = "conflict"     // the state changed underneath; reload and decide again
	KindUnauthorized Kind = "unauthorized" // credentials were refused
	KindUnavailable  Kind = "unavailable"  // a peer or service is down, slow or throttling; retryable
	KindInternal     Kind = "internal"     // a bug or an unclassified error
)

// Retryable reports whether an error of this kind may succeed when repeated.
// It is the one table that maps kinds to retry decisions.
func (k Kind) Retryable() bool {
	switch k {
	case KindUnavailable:
		return true
	default:
		return false
	}
}

// Error is ferry's one error shape: a kind, an optional protocol code (a MESH
// error code, an HTTP status, an S3 error code) and a message fit to show an
// operator. Messages never contain secrets or payload bytes.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Err     error
	// RetryAfter is how long the peer asked to be left alone before the
	// next attempt (an HTTP Retry-After header), or 0 when it did not say.
	// It is a hint for a retryable error: the retry policy decides.
	RetryAfter time.Duration
}

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// WithCode returns a copy of e carrying the protocol code.
func (e *Error) WithCode(code string) *Error {
	c := *e
	c.Code = code
	return &c
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Err != nil {
		if msg == "" {
			msg = e.Err.Error()
		} else {
			msg += ": " + e.Err.Error()
		}
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%s %s)", msg, e.Kind, e.Code)
	}
	return fmt.Sprintf("%s (%s)", msg, e.Kind)
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first *Error in err's chain, or KindInternal
// when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// RetryAfterOf returns the RetryAfter hint of the first *Error in err's
// chain, or 0 when there is none.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// CodeOf returns the protocol code of the first *Error in err's chain, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
