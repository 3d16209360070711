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

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
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
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "UploadPartCopy",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      inner,
			},
			RequestID: "req-1",
		},
	}
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

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantKind domain.Kind
		wantCode string
	}{
		{"500 InternalError", apiError(500, "InternalError"), domain.KindUnavailable, "InternalError"},
		{"503 SlowDown", apiError(503, "SlowDown"), domain.KindUnavailable, "SlowDown"},
		{"502 without a body", apiError(502, ""), domain.KindUnavailable, "502"},
		{"408 RequestTimeout", apiError(408, "RequestTimeout"), domain.KindUnavailable, "RequestTimeout"},
		{"400 RequestTimeout", apiError(400, "RequestTimeout"), domain.KindUnavailable, "RequestTimeout"},
		{"429 without a code", apiError(429, ""), domain.KindUnavailable, "429"},
		{"400 ThrottlingException (DynamoDB)", apiError(400, "ThrottlingException"), domain.KindUnavailable, "ThrottlingException"},
		{"400 ProvisionedThroughputExceededException", apiError(400, "ProvisionedThroughputExceededException"), domain.KindUnavailable, "ProvisionedThroughputExceededException"},
		{"403 AccessDenied", apiError(403, "AccessDenied"), domain.KindUnauthorized, "AccessDenied"},
		{"403 without a body", apiError(403, ""), domain.KindUnauthorized, "403"},
		{"401", apiError(401, "Unauthorized"), domain.KindUnauthorized, "Unauthorized"},
		{"400 ExpiredToken", apiError(400, "ExpiredToken"), domain.KindUnauthorized, "ExpiredToken"},
		{"400 UnrecognizedClientException", apiError(400, "UnrecognizedClientException"), domain.KindUnauthorized, "UnrecognizedClientException"},
		{"404 NoSuchBucket", apiError(404, "NoSuchBucket"), domain.KindNotFound, "NoSuchBucket"},
		{"404 NoSuchKey", apiError(404, "NoSuchKey"), domain.KindNotFound, "NoSuchKey"},
		{"404 NoSuchUpload", apiError(404, "NoSuchUpload"), domain.KindNotFound, "NoSuchUpload"},
		{"404 without a body (HEAD)", apiError(404, ""), domain.KindNotFound, "404"},
		{"400 ResourceNotFoundException", apiError(400, "ResourceNotFoundException"), domain.KindNotFound, "ResourceNotFoundException"},
		{"412 PreconditionFailed", apiError(412, "PreconditionFailed"), domain.KindConflict, "PreconditionFailed"},
		{"400 ConditionalCheckFailedException", apiError(400, "ConditionalCheckFailedException"), domain.KindConflict, "ConditionalCheckFailedException"},
		{"400 InvalidRequest", apiError(400, "InvalidRequest"), domain.KindInvalid, "InvalidRequest"},
		{"400 EntityTooSmall", apiError(400, "EntityTooSmall"), domain.KindInvalid, "EntityTooSmall"},
		{"416 InvalidRange", apiError(416, "InvalidRange"), domain.KindInvalid, "InvalidRange"},
		{"retries exhausted on 503", &retry.MaxAttemptsError{Attempt: 3, Err: apiError(503, "ServiceUnavailable")}, domain.KindUnavailable, "ServiceUnavailable"},
		{"connection refused", sendError(&net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "x"}}), domain.KindUnavailable, ""},
		{"connection refused errno", sendError(syscall.ECONNREFUSED), domain.KindUnavailable, ""},
		{"connection reset mid-body", fmt.Errorf("read body: %w", syscall.ECONNRESET), domain.KindUnavailable, ""},
		{"unexpected EOF", fmt.Errorf("deserialize: %w", io.ErrUnexpectedEOF), domain.KindUnavailable, ""},
		{"net timeout", sendError(timeoutError{}), domain.KindUnavailable, ""},
		{"context deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), domain.KindUnavailable, ""},
		{"context canceled", &smithy.CanceledError{Err: context.Canceled}, domain.KindUnavailable, ""},
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
