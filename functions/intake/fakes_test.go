package intake

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
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

// fakeObjects answers HeadObject and ListObjectVersions from a map of
// bucket/key to the current object and a map of older versions (newest
// first), or with err for every call when err is set.
type fakeObjects struct {
	mu      sync.Mutex
	objects map[string]object
	older   map[string][]object
	err     error
	calls   []s3.HeadObjectInput
	lists   int
}

var _ Objects = (*fakeObjects)(nil)

// versions returns every version of bucket/key, newest first.
func (o *fakeObjects) versions(k string) []object {
	var all []object
	if cur, ok := o.objects[k]; ok {
		all = append(all, cur)
	}
	return append(all, o.older[k]...)
}

func (o *fakeObjects) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, *in)
	if o.err != nil {
		return nil, o.err
	}
	k := aws.ToString(in.Bucket) + "/" + aws.ToString(in.Key)
	obj, ok := o.objects[k]
	if in.VersionId != nil {
		ok = false
		for _, v := range o.versions(k) {
			if v.versionID == *in.VersionId {
				obj, ok = v, true
			}
		}
	}
	if !ok {
		return nil, httpError(404, "NotFound", "Not Found")
	}
	if in.IfMatch != nil && *in.IfMatch != obj.etag {
		return nil, httpError(412, "PreconditionFailed", "Precondition Failed")
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

func (o *fakeObjects) ListObjectVersions(_ context.Context, in *s3.ListObjectVersionsInput, _ ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lists++
	if o.err != nil {
		return nil, o.err
	}
	out := &s3.ListObjectVersionsOutput{IsTruncated: aws.Bool(false)}
	prefix := aws.ToString(in.Bucket) + "/" + aws.ToString(in.Prefix)
	for k := range o.objects {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		for i, v := range o.versions(k) {
			out.Versions = append(out.Versions, s3types.ObjectVersion{
				Key: aws.String(strings.TrimPrefix(k, aws.ToString(in.Bucket)+"/")), VersionId: aws.String(v.versionID),
				ETag: aws.String(v.etag), LastModified: aws.Time(v.lastModified.Truncate(time.Second)),
				Size: aws.Int64(v.size), IsLatest: aws.Bool(i == 0),
			})
		}
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
