package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	dynamodbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
)

// apiError builds the error chain the SDK returns for an HTTP error
// response: operation error → response error (status) → API error (code).
func apiError(status int, code string) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "the message"}
	if code == "" {
		inner = errors.New("empty error body")
	}
	return responseError("S3", "UploadPartCopy", status, inner)
}

// responseError wraps err, an error the service sent with status, as the SDK
// returns it from service's operation.
func responseError(service, operation string, status int, err error) error {
	return &smithy.OperationError{
		ServiceID:     service,
		OperationName: operation,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      err,
			},
			RequestID: "req-1",
		},
	}
}

// canceled is a DynamoDB TransactWriteItems cancellation with one reason per
// item.
func canceled(reasons ...string) error {
	tce := &dynamodbtypes.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
	for _, r := range reasons {
		tce.CancellationReasons = append(tce.CancellationReasons, dynamodbtypes.CancellationReason{Code: aws.String(r)})
	}
	return responseError("DynamoDB", "TransactWriteItems", 400, tce)
}

func sendError(err error) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "PutObject",
		Err:           &smithyhttp.RequestSendError{Err: &url.Error{Op: "Put", URL: "http://127.0.0.1:1/b/k", Err: err}},
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestClassify is the one table of what ferry makes of AWS errors: codes of
// every service ferry calls (with the status each sends them with, built
// from the SDK's own error types where it has one), bare HTTP statuses,
// network errors and context errors.
func TestClassify(t *testing.T) {
	msg := aws.String("the message")
	tests := []struct {
		name     string
		err      error
		wantKind domain.Kind
		wantCode string
	}{
		// S3
		{"500 InternalError", apiError(500, "InternalError"), domain.KindUnavailable, "InternalError"},
		{"503 SlowDown", apiError(503, "SlowDown"), domain.KindUnavailable, "SlowDown"},
		{"408 RequestTimeout", apiError(408, "RequestTimeout"), domain.KindUnavailable, "RequestTimeout"},
		{"400 RequestTimeout", apiError(400, "RequestTimeout"), domain.KindUnavailable, "RequestTimeout"},
		{"403 RequestTimeTooSkewed", apiError(403, "RequestTimeTooSkewed"), domain.KindUnavailable, "RequestTimeTooSkewed"},
		{"403 AccessDenied", apiError(403, "AccessDenied"), domain.KindUnauthorized, "AccessDenied"},
		{"403 InvalidAccessKeyId", apiError(403, "InvalidAccessKeyId"), domain.KindUnauthorized, "InvalidAccessKeyId"},
		{"403 SignatureDoesNotMatch", apiError(403, "SignatureDoesNotMatch"), domain.KindUnauthorized, "SignatureDoesNotMatch"},
		{"400 ExpiredToken", apiError(400, "ExpiredToken"), domain.KindUnauthorized, "ExpiredToken"},
		{"404 NoSuchBucket", apiError(404, "NoSuchBucket"), domain.KindNotFound, "NoSuchBucket"},
		{"404 NoSuchKey", responseError("S3", "GetObject", 404, &s3types.NoSuchKey{Message: msg}), domain.KindNotFound, "NoSuchKey"},
		{"404 NoSuchUpload", apiError(404, "NoSuchUpload"), domain.KindNotFound, "NoSuchUpload"},
		{"404 NoSuchVersion", apiError(404, "NoSuchVersion"), domain.KindNotFound, "NoSuchVersion"},
		{"404 without a body (HEAD)", apiError(404, ""), domain.KindNotFound, "404"},
		{"412 PreconditionFailed", apiError(412, "PreconditionFailed"), domain.KindConflict, "PreconditionFailed"},
		{"409 ConditionalRequestConflict", apiError(409, "ConditionalRequestConflict"), domain.KindConflict, "ConditionalRequestConflict"},
		{"409 OperationAborted (try again)", apiError(409, "OperationAborted"), domain.KindUnavailable, "OperationAborted"},
		{"400 InvalidRequest", apiError(400, "InvalidRequest"), domain.KindInvalid, "InvalidRequest"},
		{"400 EntityTooSmall", apiError(400, "EntityTooSmall"), domain.KindInvalid, "EntityTooSmall"},
		{"416 InvalidRange", apiError(416, "InvalidRange"), domain.KindInvalid, "InvalidRange"},

		// DynamoDB (400 for nearly everything: the code decides)
		{"DynamoDB ConditionalCheckFailedException", responseError("DynamoDB", "PutItem", 400, &dynamodbtypes.ConditionalCheckFailedException{Message: msg}), domain.KindConflict, "ConditionalCheckFailedException"},
		{"DynamoDB TransactionConflictException (another transaction on the item)", responseError("DynamoDB", "PutItem", 400, &dynamodbtypes.TransactionConflictException{Message: msg}), domain.KindUnavailable, "TransactionConflictException"},
		{"DynamoDB TransactionInProgressException", responseError("DynamoDB", "TransactWriteItems", 400, &dynamodbtypes.TransactionInProgressException{Message: msg}), domain.KindUnavailable, "TransactionInProgressException"},
		{"DynamoDB TransactionCanceledException, a condition failed", canceled("None", "ConditionalCheckFailed"), domain.KindConflict, "TransactionCanceledException"},
		{"DynamoDB TransactionCanceledException, conflicting transaction", canceled("TransactionConflict", "None"), domain.KindUnavailable, "TransactionCanceledException"},
		{"DynamoDB TransactionCanceledException, throttled", canceled("None", "ThrottlingError"), domain.KindUnavailable, "TransactionCanceledException"},
		{"DynamoDB TransactionCanceledException, validation beats a condition", canceled("ConditionalCheckFailed", "ValidationError"), domain.KindInvalid, "TransactionCanceledException"},
		{"DynamoDB TransactionCanceledException, item collection full", canceled("ItemCollectionSizeLimitExceeded"), domain.KindInvalid, "TransactionCanceledException"},
		{"DynamoDB TransactionCanceledException without reasons", responseError("DynamoDB", "TransactWriteItems", 400, &smithy.GenericAPIError{Code: "TransactionCanceledException"}), domain.KindUnavailable, "TransactionCanceledException"},
		{"DynamoDB ProvisionedThroughputExceededException", responseError("DynamoDB", "Query", 400, &dynamodbtypes.ProvisionedThroughputExceededException{Message: msg}), domain.KindUnavailable, "ProvisionedThroughputExceededException"},
		{"DynamoDB ThrottlingException", apiError(400, "ThrottlingException"), domain.KindUnavailable, "ThrottlingException"},
		{"DynamoDB RequestLimitExceeded", responseError("DynamoDB", "PutItem", 400, &dynamodbtypes.RequestLimitExceeded{Message: msg}), domain.KindUnavailable, "RequestLimitExceeded"},
		{"DynamoDB LimitExceededException", responseError("DynamoDB", "CreateTable", 400, &dynamodbtypes.LimitExceededException{Message: msg}), domain.KindUnavailable, "LimitExceededException"},
		{"DynamoDB ReplicatedWriteConflictException", responseError("DynamoDB", "PutItem", 400, &dynamodbtypes.ReplicatedWriteConflictException{Message: msg}), domain.KindUnavailable, "ReplicatedWriteConflictException"},
		{"DynamoDB InternalServerError", responseError("DynamoDB", "PutItem", 500, &dynamodbtypes.InternalServerError{Message: msg}), domain.KindUnavailable, "InternalServerError"},
		{"DynamoDB ResourceNotFoundException", responseError("DynamoDB", "Query", 400, &dynamodbtypes.ResourceNotFoundException{Message: msg}), domain.KindNotFound, "ResourceNotFoundException"},
		{"DynamoDB TableNotFoundException", responseError("DynamoDB", "Query", 400, &dynamodbtypes.TableNotFoundException{Message: msg}), domain.KindNotFound, "TableNotFoundException"},
		{"DynamoDB ItemCollectionSizeLimitExceededException", responseError("DynamoDB", "PutItem", 400, &dynamodbtypes.ItemCollectionSizeLimitExceededException{Message: msg}), domain.KindInvalid, "ItemCollectionSizeLimitExceededException"},
		{"DynamoDB ValidationException", apiError(400, "ValidationException"), domain.KindInvalid, "ValidationException"},
		{"DynamoDB SerializationException", apiError(400, "SerializationException"), domain.KindInvalid, "SerializationException"},
		{"DynamoDB UnrecognizedClientException", apiError(400, "UnrecognizedClientException"), domain.KindUnauthorized, "UnrecognizedClientException"},
		{"DynamoDB InvalidSignatureException", apiError(400, "InvalidSignatureException"), domain.KindUnauthorized, "InvalidSignatureException"},
		{"DynamoDB MissingAuthenticationTokenException", apiError(400, "MissingAuthenticationTokenException"), domain.KindUnauthorized, "MissingAuthenticationTokenException"},
		{"DynamoDB ExpiredTokenException", apiError(400, "ExpiredTokenException"), domain.KindUnauthorized, "ExpiredTokenException"},
		{"DynamoDB AccessDeniedException", apiError(400, "AccessDeniedException"), domain.KindUnauthorized, "AccessDeniedException"},

		// SQS
		{"SQS QueueDoesNotExist", responseError("SQS", "SendMessage", 400, &sqstypes.QueueDoesNotExist{Message: msg}), domain.KindNotFound, "QueueDoesNotExist"},
		{"SQS NonExistentQueue (query protocol)", apiError(400, "AWS.SimpleQueueService.NonExistentQueue"), domain.KindNotFound, "AWS.SimpleQueueService.NonExistentQueue"},
		{"SQS RequestThrottled", responseError("SQS", "SendMessage", 400, &sqstypes.RequestThrottled{Message: msg}), domain.KindUnavailable, "RequestThrottled"},
		{"SQS KmsThrottled", responseError("SQS", "SendMessage", 400, &sqstypes.KmsThrottled{Message: msg}), domain.KindUnavailable, "KmsThrottled"},
		{"SQS InvalidClientTokenId", apiError(403, "InvalidClientTokenId"), domain.KindUnauthorized, "InvalidClientTokenId"},
		{"SQS ReceiptHandleIsInvalid", responseError("SQS", "DeleteMessage", 400, &sqstypes.ReceiptHandleIsInvalid{Message: msg}), domain.KindInvalid, "ReceiptHandleIsInvalid"},

		// EventBridge
		{"EventBridge InternalException", responseError("EventBridge", "PutEvents", 500, &ebtypes.InternalException{Message: msg}), domain.KindUnavailable, "InternalException"},
		{"EventBridge ThrottlingException", responseError("EventBridge", "PutEvents", 400, &ebtypes.ThrottlingException{Message: msg}), domain.KindUnavailable, "ThrottlingException"},
		{"EventBridge ConcurrentModificationException", responseError("EventBridge", "PutRule", 400, &ebtypes.ConcurrentModificationException{Message: msg}), domain.KindUnavailable, "ConcurrentModificationException"},
		{"EventBridge ResourceNotFoundException", responseError("EventBridge", "PutEvents", 400, &ebtypes.ResourceNotFoundException{Message: msg}), domain.KindNotFound, "ResourceNotFoundException"},
		{"EventBridge AccessDeniedException", responseError("EventBridge", "PutEvents", 400, &ebtypes.AccessDeniedException{Message: msg}), domain.KindUnauthorized, "AccessDeniedException"},
		{"EventBridge InvalidEventPatternException", responseError("EventBridge", "PutRule", 400, &ebtypes.InvalidEventPatternException{Message: msg}), domain.KindInvalid, "InvalidEventPatternException"},

		// SSM Parameter Store
		{"SSM ParameterNotFound", responseError("SSM", "GetParameter", 400, &ssmtypes.ParameterNotFound{Message: msg}), domain.KindNotFound, "ParameterNotFound"},
		{"SSM ParameterVersionNotFound", responseError("SSM", "GetParameter", 400, &ssmtypes.ParameterVersionNotFound{Message: msg}), domain.KindNotFound, "ParameterVersionNotFound"},
		{"SSM InternalServerError", responseError("SSM", "GetParameter", 500, &ssmtypes.InternalServerError{Message: msg}), domain.KindUnavailable, "InternalServerError"},
		{"SSM ThrottlingException", responseError("SSM", "GetParameter", 400, &ssmtypes.ThrottlingException{Message: msg}), domain.KindUnavailable, "ThrottlingException"},
		{"SSM InvalidKeyId", responseError("SSM", "GetParameter", 400, &ssmtypes.InvalidKeyId{Message: msg}), domain.KindInvalid, "InvalidKeyId"},
		{"SSM AccessDeniedException", responseError("SSM", "GetParameter", 400, &ssmtypes.AccessDeniedException{Message: msg}), domain.KindUnauthorized, "AccessDeniedException"},

		// Secrets Manager
		{"Secrets Manager ResourceNotFoundException", responseError("Secrets Manager", "GetSecretValue", 400, &smtypes.ResourceNotFoundException{Message: msg}), domain.KindNotFound, "ResourceNotFoundException"},
		{"Secrets Manager InternalServiceError", responseError("Secrets Manager", "GetSecretValue", 500, &smtypes.InternalServiceError{Message: msg}), domain.KindUnavailable, "InternalServiceError"},
		{"Secrets Manager DecryptionFailure", responseError("Secrets Manager", "GetSecretValue", 400, &smtypes.DecryptionFailure{Message: msg}), domain.KindInvalid, "DecryptionFailure"},
		{"Secrets Manager InvalidRequestException", responseError("Secrets Manager", "GetSecretValue", 400, &smtypes.InvalidRequestException{Message: msg}), domain.KindInvalid, "InvalidRequestException"},
		{"Secrets Manager KMS.AccessDeniedException", apiError(400, "KMS.AccessDeniedException"), domain.KindUnauthorized, "KMS.AccessDeniedException"},

		// The code decides even without the status that usually carries it.
		{"transient code without a response", &smithy.GenericAPIError{Code: "InternalServiceError"}, domain.KindUnavailable, "InternalServiceError"},
		{"conflict code without a response", &smithy.GenericAPIError{Code: "ConditionalCheckFailedException"}, domain.KindConflict, "ConditionalCheckFailedException"},
		{"transaction conflict without a response", &smithy.GenericAPIError{Code: "TransactionConflictException"}, domain.KindUnavailable, "TransactionConflictException"},
		{"not-found code without a response", &smithy.GenericAPIError{Code: "ParameterNotFound"}, domain.KindNotFound, "ParameterNotFound"},

		// HTTP statuses without a code the table knows
		{"502 without a body", apiError(502, ""), domain.KindUnavailable, "502"},
		{"503 without a body", apiError(503, ""), domain.KindUnavailable, "503"},
		{"429 without a code", apiError(429, ""), domain.KindUnavailable, "429"},
		{"408 without a code", apiError(408, ""), domain.KindUnavailable, "408"},
		{"403 without a body", apiError(403, ""), domain.KindUnauthorized, "403"},
		{"401", apiError(401, "Unauthorized"), domain.KindUnauthorized, "Unauthorized"},
		{"409 unknown code", apiError(409, "Odd"), domain.KindConflict, "Odd"},
		{"412 without a body", apiError(412, ""), domain.KindConflict, "412"},
		{"400 unknown code", apiError(400, "Odd"), domain.KindInvalid, "Odd"},
		{"retries exhausted on 503", &retry.MaxAttemptsError{Attempt: 3, Err: apiError(503, "ServiceUnavailable")}, domain.KindUnavailable, "ServiceUnavailable"},

		// network errors
		{"connection refused", sendError(&net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "x"}}), domain.KindUnavailable, ""},
		{"connection refused errno", sendError(syscall.ECONNREFUSED), domain.KindUnavailable, ""},
		{"connection reset mid-body", fmt.Errorf("read body: %w", syscall.ECONNRESET), domain.KindUnavailable, ""},
		{"broken pipe", fmt.Errorf("write body: %w", syscall.EPIPE), domain.KindUnavailable, ""},
		{"unexpected EOF", fmt.Errorf("deserialize: %w", io.ErrUnexpectedEOF), domain.KindUnavailable, ""},
		{"net timeout", sendError(timeoutError{}), domain.KindUnavailable, ""},

		// context errors
		{"context deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), domain.KindUnavailable, ""},
		{"context canceled", &smithy.CanceledError{Err: context.Canceled}, domain.KindUnavailable, ""},
		{"context canceled mid-request", sendError(context.Canceled), domain.KindUnavailable, ""},

		// before a request is sent, and the rest
		{"parameter validation", &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &smithy.ParamRequiredError{}}, domain.KindInvalid, ""},
		{"client fault without status", &smithy.GenericAPIError{Code: "Odd", Fault: smithy.FaultClient}, domain.KindInvalid, "Odd"},
		{"server fault without status", &smithy.GenericAPIError{Code: "Odd", Fault: smithy.FaultServer}, domain.KindUnavailable, "Odd"},
		{"unknown error", errors.New("boom"), domain.KindInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := awserr.Classify("s3 upload part 2", tt.err)
			if got == nil {
				t.Fatal("Classify returned nil")
			}
			if got.Kind != tt.wantKind || got.Code != tt.wantCode {
				t.Errorf("Classify(%v) = kind %s code %q, want kind %s code %q", tt.err, got.Kind, got.Code, tt.wantKind, tt.wantCode)
			}
			if k, c := awserr.Kind(tt.err), awserr.Code(tt.err); k != got.Kind || c != got.Code {
				t.Errorf("Kind, Code = %s, %q; Classify says %s, %q", k, c, got.Kind, got.Code)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("Classify lost the original error from the chain")
			}
			if !strings.HasPrefix(got.Message, "s3 upload part 2: ") {
				t.Errorf("Message = %q, want it to start with the operation", got.Message)
			}
		})
	}
}

func TestClassifyMessage(t *testing.T) {
	got := awserr.Classify("s3 copy part 1", apiError(404, "NoSuchKey"))
	if want := "s3 copy part 1: NoSuchKey: the message"; got.Message != want {
		t.Errorf("Message = %q, want %q", got.Message, want)
	}
	got = awserr.Classify("s3 head", apiError(404, ""))
	if want := "s3 head: HTTP 404"; got.Message != want {
		t.Errorf("Message = %q, want %q", got.Message, want)
	}
}

func TestClassifyNil(t *testing.T) {
	if got := awserr.Classify("op", nil); got != nil {
		t.Errorf("Classify(nil) = %v, want nil", got)
	}
}

func TestClassifyKeepsDomainErrors(t *testing.T) {
	in := domain.Errorf(domain.KindConflict, "already there").WithCode("X")
	got := awserr.Classify("op", fmt.Errorf("wrapped: %w", in))
	if got != in {
		t.Errorf("Classify = %v, want the *domain.Error unchanged", got)
	}
}

// TestClassifyRealNetworkError dials a port nothing listens on.
func TestClassifyRealNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = http.Get("http://" + addr + "/")
	if err == nil {
		t.Fatal("GET on a closed port succeeded")
	}
	if got := awserr.Classify("get", err); got.Kind != domain.KindUnavailable {
		t.Errorf("Classify(%v) kind = %s, want %s", err, got.Kind, domain.KindUnavailable)
	}
}
