package s3transport

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/transport"
)

// Reader reads chunks of S3 sources with ranged GETs, streaming: the
// source of transports that cannot copy from S3 themselves (MESH).
type Reader struct {
	client *s3.Client
}

var _ transport.Source = (*Reader)(nil)

// NewReader returns a Reader using client.
func NewReader(client *s3.Client) *Reader { return &Reader{client: client} }

// OpenChunk returns chunk c of t's S3 source: the version t names, and only
// while its ETag is still the one t was requested with (a replaced source
// fails with KindConflict rather than mixing versions).
func (r *Reader) OpenChunk(ctx context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	src := t.Request.Source
	if src.Kind != "s3" {
		return nil, domain.Errorf(domain.KindInvalid, "s3: transfer %s has a %q source", t.ID, src.Kind)
	}
	if c.Length == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(src.Bucket),
		Key:    aws.String(src.Key),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", c.Offset, c.Offset+c.Length-1)),
	}
	if src.VersionID != "" {
		in.VersionId = aws.String(src.VersionID)
	}
	if src.ETag != "" {
		in.IfMatch = aws.String(src.ETag)
	}
	out, err := r.client.GetObject(ctx, in)
	if err != nil {
		return nil, awserr.Classify(fmt.Sprintf("s3: read chunk %d of s3://%s/%s", c.Index, src.Bucket, src.Key), err)
	}
	return out.Body, nil
}
