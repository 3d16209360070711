package azblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/ferryhq/ferry/domain"
)

// hints explain the service's error codes an operator most often meets.
var hints = map[string]string{
	"ContainerNotFound":               "the container does not exist (ferry never creates one)",
	"AuthenticationFailed":            "the shared key or SAS was refused (wrong key, or a SAS expired or mistyped)",
	"AuthorizationFailure":            "the credential may not do this (a SAS without the permission, or a network rule)",
	"AuthorizationPermissionMismatch": "the SAS lacks a permission this needs (read and write on the container's blobs)",
	"InvalidBlockList":                "a block of the list is not staged",
	"InvalidMd5":                      "the chunk's bytes arrived damaged (Content-MD5 mismatch)",
	"Md5Mismatch":                     "the chunk's bytes arrived damaged (Content-MD5 mismatch)",
}

// classify turns an error from the Azure SDK (or the source, or the secret
// resolver) into a *domain.Error with the kind that decides retrying. It is
// the package's one error mapping:
//
//   - a *domain.Error keeps its kind;
//   - HTTP 401 and 403 (AuthenticationFailed, AuthorizationFailure…) are
//     KindUnauthorized, 404 (ContainerNotFound, BlobNotFound) KindNotFound,
//     409 and 412 KindConflict, every other 4xx KindInvalid: all final;
//   - HTTP 408, 429 and 5xx are KindUnavailable, as are network failures,
//     timeouts and cancellation: repeating may help;
//   - anything else is KindInternal.
//
// The service's error code becomes the Code. Messages never hold a URL's
// query, where a SAS token would be.
func classify(op string, err error) *domain.Error {
	var de *domain.Error
	if errors.As(err, &de) {
		return &domain.Error{Kind: de.Kind, Code: de.Code, Message: op, Err: err}
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = strconv.Itoa(re.StatusCode)
		}
		msg := fmt.Sprintf("%s: HTTP %d %s", op, re.StatusCode, re.ErrorCode)
		if h, ok := hints[re.ErrorCode]; ok {
			msg += ": " + h
		}
		return &domain.Error{Kind: statusKind(re.StatusCode), Code: code, Message: msg}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &domain.Error{Kind: domain.KindUnavailable, Message: op + ": timed out"}
	case errors.Is(err, context.Canceled):
		return &domain.Error{Kind: domain.KindUnavailable, Message: op + ": cancelled"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// ue.Error() quotes the URL, SAS token and all: keep only the cause.
		return &domain.Error{Kind: domain.KindUnavailable, Message: fmt.Sprintf("%s: %s", op, ue.Op), Err: ue.Err}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return &domain.Error{Kind: domain.KindUnavailable, Message: op, Err: err}
	}
	return &domain.Error{Kind: domain.KindInternal, Message: op, Err: err}
}

// statusKind is the kind of an HTTP error status from the blob service.
func statusKind(status int) domain.Kind {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return domain.KindUnauthorized
	case status == http.StatusNotFound:
		return domain.KindNotFound
	case status == http.StatusConflict || status == http.StatusPreconditionFailed:
		return domain.KindConflict
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return domain.KindUnavailable
	case status >= 400:
		return domain.KindInvalid
	}
	return domain.KindInternal
}

// isCode reports whether err is the service's error code.
func isCode(err error, code string) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == code
}
