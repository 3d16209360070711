package store

import (
	"context"
	"errors"
	"net"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
)

// wrap turns an error from the DynamoDB API into a *domain.Error of the
// right kind, with op as its message and err in its chain.
func wrap(op string, err error) error {
	e := &domain.Error{Kind: kindOf(err), Message: op, Err: err}
	var api smithy.APIError
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
	}
	return e
}

func kindOf(err error) domain.Kind {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException",
			"RequestLimitExceeded", "LimitExceededException",
			"InternalServerError", "InternalFailure", "ServiceUnavailable",
			"TransactionConflictException", "TransactionInProgressException",
			"TransactionCanceledException": // canceled for a reason other than a condition
			return domain.KindUnavailable
		case "ValidationException", "SerializationException":
			return domain.KindInvalid
		case "ResourceNotFoundException", "TableNotFoundException":
			return domain.KindNotFound
		case "UnrecognizedClientException", "InvalidSignatureException",
			"AccessDeniedException", "MissingAuthenticationTokenException",
			"ExpiredTokenException":
			return domain.KindUnauthorized
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if c := re.HTTPStatusCode(); c >= 500 || c == 429 || c == 408 {
			return domain.KindUnavailable
		}
	}
	var send *smithyhttp.RequestSendError
	var ne net.Error
	if errors.As(err, &send) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.KindUnavailable
	}
	return domain.KindInternal
}
