package email

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// fakeS3 is an in-memory bucket: objects by key, multipart uploads by id.
// It counts the parts uploaded.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string]fakeObject
	uploads map[string]map[int32][]byte
	// uploadMeta is each multipart upload's metadata.
	uploadMeta map[string]map[string]string
	parts      int
	// down, when set, fails every call as an unavailable S3 would.
	down bool
}

type fakeObject struct {
	data        []byte
	meta        map[string]string
	contentType string
	version     int
}

var _ Objects = (*fakeS3)(nil)

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string]fakeObject{}, uploads: map[string]map[int32][]byte{}, uploadMeta: map[string]map[string]string{}}
}

func (f *fakeS3) failure() error {
	if !f.down {
		return nil
	}
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 503}}, Err: fmt.Errorf("service unavailable"),
	}}
}

func notFound() error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 404}}, Err: &s3types.NotFound{},
	}}
}

func etagOf(b []byte) string {
	s := md5.Sum(b)
	return `"` + hex.EncodeToString(s[:]) + `"`
}

func (f *fakeS3) store(key string, data []byte, meta map[string]string, contentType string) (string, string) {
	o := fakeObject{data: data, meta: meta, contentType: contentType, version: f.objects[key].version + 1}
	f.objects[key] = o
	return fmt.Sprint(o.version), etagOf(data)
}

// keys lists the stored keys under prefix, sorted.
func (f *fakeS3) keys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fakeS3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return nil, err
	}
	o, ok := f.objects[*in.Key]
	if !ok {
		return nil, notFound()
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.data))), ETag: aws.String(etagOf(o.data)), VersionId: aws.String(fmt.Sprint(o.version))}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return nil, err
	}
	o, ok := f.objects[*in.Key]
	if !ok || (in.VersionId != nil && *in.VersionId != fmt.Sprint(o.version)) {
		return nil, notFound()
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(o.data)), ContentLength: aws.Int64(int64(len(o.data)))}, nil
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	v, etag := f.store(*in.Key, b, in.Metadata, aws.ToString(in.ContentType))
	return &s3.PutObjectOutput{VersionId: &v, ETag: &etag}, nil
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("upload-%d|%s|%s", len(f.uploads)+1, *in.Key, aws.ToString(in.ContentType))
	f.uploads[id] = map[int32][]byte{}
	f.uploadMeta[id] = in.Metadata
	return &s3.CreateMultipartUploadOutput{UploadId: &id}, nil
}

func (f *fakeS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.uploads[*in.UploadId][*in.PartNumber] = b
	f.parts++
	return &s3.UploadPartOutput{ETag: aws.String(etagOf(b))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return nil, err
	}
	var all []byte
	for _, p := range in.MultipartUpload.Parts {
		all = append(all, f.uploads[*in.UploadId][*p.PartNumber]...)
	}
	contentType := (*in.UploadId)[strings.LastIndex(*in.UploadId, "|")+1:]
	v, etag := f.store(*in.Key, all, f.uploadMeta[*in.UploadId], contentType)
	delete(f.uploads, *in.UploadId)
	return &s3.CompleteMultipartUploadOutput{VersionId: &v, ETag: &etag}, nil
}

func (f *fakeS3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.uploads, *in.UploadId)
	return &s3.AbortMultipartUploadOutput{}, nil
}
