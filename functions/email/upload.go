package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/internal/awserr"
)

// DefaultPartSize is the part size of the multipart uploads that store
// attachments: the memory an attachment takes on its way to S3.
const DefaultPartSize = 8 << 20

// stored is an attachment's object once it is complete.
type stored struct {
	Size            int64
	VersionID, ETag string
	SHA256          string
}

// put streams r into bucket/key holding at most one part of partSize in
// memory: a single PutObject when r ends within the first part, else a
// multipart upload (aborted if it fails).
func put(ctx context.Context, objects Objects, bucket, key, contentType string, meta map[string]string, r io.Reader, partSize int64) (stored, error) {
	h := sha256.New()
	r = io.TeeReader(r, h)
	buf := make([]byte, partSize)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return stored{}, err
	}
	if int64(n) < partSize {
		out, err := objects.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: &key, Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
			ContentType: &contentType, Metadata: meta,
		})
		if err != nil {
			return stored{}, awserr.Classify("store attachment", err)
		}
		return stored{Size: int64(n), VersionID: aws.ToString(out.VersionId), ETag: aws.ToString(out.ETag), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
	}
	mu, err := objects.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, ContentType: &contentType, Metadata: meta})
	if err != nil {
		return stored{}, awserr.Classify("store attachment", err)
	}
	abort := func(err error) (stored, error) {
		_, abortErr := objects.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: mu.UploadId})
		return stored{}, errors.Join(err, abortErr)
	}
	var parts []s3types.CompletedPart
	var size int64
	for num := int32(1); n > 0; num++ {
		out, err := objects.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: &bucket, Key: &key, UploadId: mu.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return abort(awserr.Classify("store attachment", err))
		}
		parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag})
		size += int64(n)
		if n, err = io.ReadFull(r, buf); err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return abort(err)
		}
	}
	out, err := objects.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &bucket, Key: &key, UploadId: mu.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return abort(awserr.Classify("store attachment", err))
	}
	return stored{Size: size, VersionID: aws.ToString(out.VersionId), ETag: aws.ToString(out.ETag), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
