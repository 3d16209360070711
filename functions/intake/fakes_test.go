package intake

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/memstore"
)

var _ Store = (*memstore.Store)(nil)

// only returns the one transfer stored, failing the test unless there is
// exactly one.
func only(t *testing.T, s *memstore.Store) (string, []domain.Event) {
	t.Helper()
	ids := s.IDs()
	if len(ids) != 1 {
		t.Fatalf("store holds %d transfers, want 1", len(ids))
	}
	return ids[0], s.History(ids[0])
}

// object is one stored S3 object version.
type object struct {
	versionID    string
	etag         string // as HeadObject returns it, quoted
	lastModified time.Time
	size         int64
	metadata     map[string]string
	// contentEncoding is the object's Content-Encoding ("" for none).
	contentEncoding string
}

// fakeObjects answers HeadObject from a map of bucket/key to object, or with
// err for every call when err is set.
type fakeObjects struct {
	mu      sync.Mutex
	objects map[string]object
	err     error
	calls   []s3.HeadObjectInput
}

var _ Objects = (*fakeObjects)(nil)

func (o *fakeObjects) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, *in)
	if o.err != nil {
		return nil, o.err
	}
	obj, ok := o.objects[aws.ToString(in.Bucket)+"/"+aws.ToString(in.Key)]
	if !ok {
		return nil, httpError(404, "NotFound", "Not Found")
	}
	out := &s3.HeadObjectOutput{
		VersionId:     aws.String(obj.versionID),
		ETag:          aws.String(obj.etag),
		LastModified:  aws.Time(obj.lastModified),
		ContentLength: aws.Int64(obj.size),
		Metadata:      obj.metadata,
	}
	if obj.contentEncoding != "" {
		out.ContentEncoding = aws.String(obj.contentEncoding)
	}
	return out, nil
}

func (o *fakeObjects) heads() []s3.HeadObjectInput {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]s3.HeadObjectInput(nil), o.calls...)
}

// httpError is the error chain the AWS SDK returns for an HTTP error
// response to an operation (HeadObject has no body, so the SDK invents a
// code from the status).
func httpError(status int, code, msg string) error {
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: "HeadObject",
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
				Err:      &smithy.GenericAPIError{Code: code, Message: msg},
			},
			RequestID: "4442587FB7D0A2F9",
		},
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// failures returns the message ids of a response's batch item failures,
// sorted.
func failures(resp events.SQSEventResponse) []string { return memstore.QueueFailures(resp) }
