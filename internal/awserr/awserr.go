// Package awserr classifies errors from the AWS SDK for Go v2 into ferry's
// error kinds, once, for every package that talks to AWS: the store
// (DynamoDB), the S3 transport, the functions' SQS, EventBridge and S3
// clients, and the secrets resolver (SSM, Secrets Manager). Classify makes
// an operator-facing *domain.Error; Kind and Code give the classification
// alone to callers that shape their own errors.
package awserr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	dynamodbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
)

// Error codes that decide the kind whatever the HTTP status (several AWS
// services answer 400 for throttling, missing tables or bad credentials).
// This is ferry's one table of AWS error codes; each code is placed by what
// the service's API reference says it means. Codes in the SDK's own retry
// lists (retry.DefaultThrottleErrorCodes, retry.DefaultRetryableErrorCodes:
// ThrottlingException, ProvisionedThroughputExceededException,
// RequestLimitExceeded, LimitExceededException, TransactionInProgressException,
// SlowDown, RequestThrottled, RequestTimeout…) are unavailable too.
var (
	unauthorizedCodes = set(
		"AccessDenied", "AccessDeniedException", "AllAccessDisabled",
		"InvalidAccessKeyId", "InvalidClientTokenId", "InvalidToken",
		"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired",
		"SignatureDoesNotMatch", "UnrecognizedClientException",
		"InvalidSignatureException", // DynamoDB, SSM, Secrets Manager, EventBridge: the signature is wrong
		"MissingAuthenticationToken", "MissingAuthenticationTokenException",
		"NotAuthorized", "AuthFailure", "UnauthorizedOperation",
		"KMS.AccessDeniedException",
	)
	notFoundCodes = set(
		"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "NoSuchVersion",
		"NotFound", "ResourceNotFoundException", // DynamoDB, EventBridge, Secrets Manager
		"TableNotFoundException", // DynamoDB (global tables)
		"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
		"ParameterNotFound", "ParameterVersionNotFound", // SSM
	)
	// Conflicts are lost conditions: the state changed underneath, so the
	// caller reloads and decides again rather than repeating the request.
	conflictCodes = set(
		"PreconditionFailed",              // S3: an If-Match (copy source version) condition failed
		"ConditionalCheckFailedException", // DynamoDB: the condition ferry's append relies on
		"ConditionalRequestConflict",      // S3: a conditional write lost to another
	)
	unavailableCodes = set(
		"InternalError", "InternalFailure", "InternalServerError",
		"InternalServiceError", // Secrets Manager's 500
		"InternalException",    // EventBridge's 500
		"ServiceUnavailable", "ServiceUnavailableException",
		"RequestTimeTooSkewed", // clock skew: the SDK corrects its offset and a retry succeeds
		"IDPCommunicationError",
		// DynamoDB: another transaction is in progress on the item; transient,
		// unlike ConditionalCheckFailedException.
		"TransactionConflictException",
		// DynamoDB: a transaction canceled without reasons to judge by (see
		// transactionKind for the typed error, which carries them).
		"TransactionCanceledException",
		"ReplicatedWriteConflictException", // DynamoDB: the item is being written in another Region; retryable
		"OperationAborted",                 // S3: "a conflicting conditional operation is in progress… Try again"
		"ConcurrentModificationException",  // EventBridge: a concurrent change to a rule or target; retryable
		"KmsThrottled",                     // SQS: KMS throttled the request
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
// transfer 01H…") followed by the AWS code and message (or the HTTP status,
// or the network error), so that the message alone tells an operator what
// happened; or nil when err is nil. An err that already is a *domain.Error
// is returned unchanged.
//
// Its kind is Kind(err), its code Code(err); Err keeps err so errors.As
// still finds the SDK's types.
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
	return &domain.Error{Kind: Kind(err), Code: Code(err), Message: op + ": " + summary(err, code, msg, status(err)), Err: err}
}

// Code returns the code Classify gives err: the code of a *domain.Error in
// its chain, else the AWS error code when there is one, else the HTTP
// status, else "".
func Code(err error) string {
	var de *domain.Error
	if errors.As(err, &de) {
		return de.Code
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() != "" {
		return api.ErrorCode()
	}
	if s := status(err); s != 0 {
		return strconv.Itoa(s)
	}
	return ""
}

// Kind returns the kind of err, an error from an AWS SDK client (any
// service), a network error or a context error. A *domain.Error in its
// chain keeps its kind; otherwise, in this order:
//   - KindUnavailable (retryable): context deadline or cancellation;
//   - by error code whatever the HTTP status (see the code table):
//     KindUnauthorized for credential codes (AccessDenied, InvalidAccessKeyId,
//     ExpiredToken, SignatureDoesNotMatch…), KindNotFound for missing things
//     (NoSuchBucket, NoSuchKey, NoSuchUpload, ResourceNotFoundException,
//     QueueDoesNotExist, ParameterNotFound…), KindConflict for lost
//     conditions (ConditionalCheckFailedException, PreconditionFailed…),
//     KindUnavailable for throttling and transient codes (SlowDown,
//     ThrottlingException, ProvisionedThroughputExceededException,
//     TransactionConflictException, RequestTimeout, InternalError…);
//   - a DynamoDB TransactionCanceledException by its cancellation reasons:
//     KindInvalid if an item failed validation or its collection is full,
//     else KindConflict if a condition failed, else KindUnavailable
//     (conflicting transactions, throttling);
//   - by HTTP status: 401 and 403 KindUnauthorized, 404 KindNotFound, 408,
//     429 and 5xx KindUnavailable, 409 and 412 KindConflict, every other
//     4xx KindInvalid;
//   - KindUnavailable for network and connection errors and timeouts;
//   - KindInvalid for parameter validation errors raised before a request
//     is sent, and other client-fault API errors; KindUnavailable for other
//     server-fault ones;
//   - KindInternal for anything else.
func Kind(err error) domain.Kind {
	var de *domain.Error
	if errors.As(err, &de) {
		return de.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.KindUnavailable
	}
	var canceled *smithy.CanceledError
	if errors.As(err, &canceled) {
		return domain.KindUnavailable
	}
	var tce *dynamodbtypes.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) > 0 {
		return transactionKind(tce.CancellationReasons)
	}
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
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
	switch status := status(err); {
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

// transactionKind judges a canceled DynamoDB transaction by the reasons its
// items give (the DynamoDB API reference's TransactionCanceledException):
// a request that cannot succeed as sent is invalid, a failed condition is a
// conflict, and the rest (TransactionConflict, ProvisionedThroughputExceeded,
// ThrottlingError, None) pass with time.
func transactionKind(reasons []dynamodbtypes.CancellationReason) domain.Kind {
	kind := domain.KindUnavailable
	for _, r := range reasons {
		switch aws.ToString(r.Code) {
		case "ValidationError", "ItemCollectionSizeLimitExceeded":
			return domain.KindInvalid
		case "ConditionalCheckFailed":
			kind = domain.KindConflict
		}
	}
	return kind
}

// status returns the HTTP status of the response err came from, or 0.
func status(err error) int {
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode()
	}
	return 0
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
