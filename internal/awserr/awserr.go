// Package awserr classifies errors from the AWS SDK for Go v2 into ferry's
// error kinds, once, for every package that talks to AWS.
package awserr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
)

// Error codes that decide the kind whatever the HTTP status (several AWS
// services answer 400 for throttling, missing tables or bad credentials).
var (
	unauthorizedCodes = set(
		"AccessDenied", "AccessDeniedException", "AllAccessDisabled",
		"InvalidAccessKeyId", "InvalidClientTokenId", "InvalidToken",
		"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired",
		"SignatureDoesNotMatch", "UnrecognizedClientException",
		"MissingAuthenticationToken", "MissingAuthenticationTokenException",
		"NotAuthorized", "AuthFailure", "UnauthorizedOperation",
		"KMS.AccessDeniedException",
	)
	notFoundCodes = set(
		"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "NoSuchVersion",
		"NotFound", "ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue",
		"QueueDoesNotExist",
	)
	conflictCodes = set(
		"PreconditionFailed", "ConditionalCheckFailedException",
		"TransactionConflictException", "OperationAborted",
		"ConditionalRequestConflict",
	)
	unavailableCodes = set(
		"InternalError", "InternalFailure", "InternalServerError",
		"ServiceUnavailable", "ServiceUnavailableException",
		"RequestTimeTooSkewed", // clock skew: the SDK corrects its offset and a retry succeeds
		"IDPCommunicationError",
	)
)

func set(codes ...string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// Classify returns err as a *domain.Error whose message starts with op (a
// short description of what was being done, e.g. "s3 upload part 2 of
// transfer 01H…"), or nil when err is nil. An err that already is a
// *domain.Error is returned unchanged.
//
// Kinds:
//   - KindUnavailable (retryable): network and connection errors, timeouts,
//     context deadline or cancellation, HTTP 408, 429 and 5xx, and throttling
//     or transient error codes (SlowDown, ThrottlingException,
//     ProvisionedThroughputExceededException, RequestTimeout, InternalError…)
//     whatever their status;
//   - KindUnauthorized: HTTP 401 and 403, and credential codes (AccessDenied,
//     InvalidAccessKeyId, ExpiredToken, SignatureDoesNotMatch…);
//   - KindNotFound: HTTP 404 and not-found codes (NoSuchBucket, NoSuchKey,
//     NoSuchUpload, ResourceNotFoundException…);
//   - KindConflict: HTTP 409 and 412 and condition codes (PreconditionFailed,
//     ConditionalCheckFailedException…);
//   - KindInvalid: every other 4xx, other client-fault API errors, and
//     parameter validation errors raised before a request is sent;
//   - KindInternal: anything else.
//
// Code carries the AWS error code when there is one, else the HTTP status.
// Err keeps err so errors.As still finds the SDK's types.
func Classify(op string, err error) *domain.Error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return de
	}
	code, msg := "", ""
	var api smithy.APIError
	if errors.As(err, &api) {
		code, msg = api.ErrorCode(), api.ErrorMessage()
	}
	status := 0
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	e := &domain.Error{Kind: kind(err, api, code, status), Code: code, Err: err}
	if e.Code == "" && status != 0 {
		e.Code = strconv.Itoa(status)
	}
	e.Message = op + ": " + summary(err, code, msg, status)
	return e
}

func kind(err error, api smithy.APIError, code string, status int) domain.Kind {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.KindUnavailable
	}
	var canceled *smithy.CanceledError
	if errors.As(err, &canceled) {
		return domain.KindUnavailable
	}
	switch {
	case unauthorizedCodes[code]:
		return domain.KindUnauthorized
	case notFoundCodes[code]:
		return domain.KindNotFound
	case conflictCodes[code]:
		return domain.KindConflict
	case unavailableCodes[code], isKey(retry.DefaultThrottleErrorCodes, code), isKey(retry.DefaultRetryableErrorCodes, code):
		return domain.KindUnavailable
	}
	switch {
	case status == 401 || status == 403:
		return domain.KindUnauthorized
	case status == 404:
		return domain.KindNotFound
	case status == 408 || status == 429 || status >= 500:
		return domain.KindUnavailable
	case status == 409 || status == 412:
		return domain.KindConflict
	case status >= 400:
		return domain.KindInvalid
	}
	if network(err) {
		return domain.KindUnavailable
	}
	var invalid smithy.InvalidParamsError
	var required *smithy.ParamRequiredError
	var serial *smithy.SerializationError
	if errors.As(err, &invalid) || errors.As(err, &required) || errors.As(err, &serial) {
		return domain.KindInvalid
	}
	if api != nil {
		switch api.ErrorFault() {
		case smithy.FaultServer:
			return domain.KindUnavailable
		case smithy.FaultClient:
			return domain.KindInvalid
		}
	}
	return domain.KindInternal
}

func isKey(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return k != "" && ok
}

// network reports whether err comes from failing to reach a peer or from a
// connection breaking mid-response.
func network(err error) bool {
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	var retryable interface{ RetryableError() bool }
	var timeout interface{ Timeout() bool }
	switch {
	case errors.As(err, &send), errors.As(err, &netErr):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return true
	case errors.As(err, &timeout) && timeout.Timeout():
		return true
	case errors.As(err, &retryable) && retryable.RetryableError():
		return true
	}
	return false
}

// summary is the short reason shown to operators: the API error, else the
// HTTP status, else the innermost network error, else err itself.
func summary(err error, code, msg string, status int) string {
	switch {
	case code != "" && msg != "":
		return code + ": " + msg
	case code != "":
		return code
	case status != 0:
		return fmt.Sprintf("HTTP %d", status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return err.Error()
}
