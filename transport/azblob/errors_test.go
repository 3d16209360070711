package azblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/ferryhq/ferry/domain"
)

func TestClassify(t *testing.T) {
	resp := func(status int, code string) error {
		return fmt.Errorf("wrapped: %w", &azcore.ResponseError{StatusCode: status, ErrorCode: code})
	}
	refused := &url.Error{Op: "Put", URL: "http://127.0.0.1:1/devstoreaccount1/c/b?comp=block&sig=SECRET",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	for _, c := range []struct {
		name     string
		err      error
		kind     domain.Kind
		code     string
		contains string
	}{
		{"403 AuthenticationFailed (a wrong key)", resp(403, "AuthenticationFailed"), domain.KindUnauthorized, "AuthenticationFailed", "shared key or SAS was refused"},
		{"403 AuthorizationFailure", resp(403, "AuthorizationFailure"), domain.KindUnauthorized, "AuthorizationFailure", "may not do this"},
		{"403 AuthorizationPermissionMismatch", resp(403, "AuthorizationPermissionMismatch"), domain.KindUnauthorized, "AuthorizationPermissionMismatch", "lacks a permission"},
		{"401", resp(401, ""), domain.KindUnauthorized, "401", "HTTP 401"},
		{"404 ContainerNotFound", resp(404, "ContainerNotFound"), domain.KindNotFound, "ContainerNotFound", "container does not exist"},
		{"404 BlobNotFound", resp(404, "BlobNotFound"), domain.KindNotFound, "BlobNotFound", "HTTP 404 BlobNotFound"},
		{"400 InvalidBlockList", resp(400, "InvalidBlockList"), domain.KindInvalid, "InvalidBlockList", "not staged"},
		{"400 Md5Mismatch", resp(400, "Md5Mismatch"), domain.KindInvalid, "Md5Mismatch", "damaged"},
		{"400 without a code", resp(400, ""), domain.KindInvalid, "400", "HTTP 400"},
		{"413 RequestBodyTooLarge", resp(413, "RequestBodyTooLarge"), domain.KindInvalid, "RequestBodyTooLarge", ""},
		{"409 LeaseIdMissing", resp(409, "LeaseIdMissing"), domain.KindConflict, "LeaseIdMissing", ""},
		{"412 ConditionNotMet", resp(412, "ConditionNotMet"), domain.KindConflict, "ConditionNotMet", ""},
		{"408", resp(408, ""), domain.KindUnavailable, "408", ""},
		{"429", resp(429, ""), domain.KindUnavailable, "429", ""},
		{"500 InternalError", resp(500, "InternalError"), domain.KindUnavailable, "InternalError", ""},
		{"500 OperationTimedOut", resp(500, "OperationTimedOut"), domain.KindUnavailable, "OperationTimedOut", ""},
		{"503 ServerBusy", resp(503, "ServerBusy"), domain.KindUnavailable, "ServerBusy", ""},
		{"connection refused", refused, domain.KindUnavailable, "", "connection refused"},
		{"a bare network error", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, domain.KindUnavailable, "", ""},
		{"a cut response", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), domain.KindUnavailable, "", ""},
		{"a timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), domain.KindUnavailable, "", "timed out"},
		{"a cancellation", context.Canceled, domain.KindUnavailable, "", "cancelled"},
		{"a source's not-found", domain.Errorf(domain.KindNotFound, "no such source").WithCode("NoSuchKey"), domain.KindNotFound, "NoSuchKey", "no such source"},
		{"a secret resolver's unavailable", domain.Errorf(domain.KindUnavailable, "secret secret:x"), domain.KindUnavailable, "", ""},
		{"anything else", errors.New("surprise"), domain.KindInternal, "", "surprise"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := classify("azblob: stage chunk 1 of 1 of T to azblob://a/c/b", c.err)
			if got.Kind != c.kind || got.Code != c.code {
				t.Errorf("classify = kind %s code %q (%v), want %s %q", got.Kind, got.Code, got, c.kind, c.code)
			}
			if got.Kind.Retryable() != (c.kind == domain.KindUnavailable) {
				t.Errorf("retryable = %v for kind %s", got.Kind.Retryable(), got.Kind)
			}
			msg := got.Error()
			if !strings.HasPrefix(msg, "azblob: stage chunk 1 of 1 of T to azblob://a/c/b") || !strings.Contains(msg, c.contains) {
				t.Errorf("message %q, want it to begin with the operation and say %q", msg, c.contains)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("message %q holds the URL's query (a SAS)", msg)
			}
		})
	}
}
