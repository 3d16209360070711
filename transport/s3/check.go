package s3transport

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/transport"
)

var _ transport.Checker = (*Transport)(nil)

// Check asks S3 for d's bucket (HeadBucket, which needs s3:ListBucket):
// it exists and these credentials may reach it. It writes nothing.
func (tr *Transport) Check(ctx context.Context, d domain.Destination) ([]transport.Credential, error) {
	if d.Type != "s3" || d.Bucket == "" {
		return nil, domain.Errorf(domain.KindInvalid, "s3: %q is not an s3 destination with a bucket", d.Type)
	}
	if _, err := tr.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &d.Bucket}); err != nil {
		return nil, awserr.Classify(fmt.Sprintf("s3: bucket %s", d.Bucket), err)
	}
	return nil, nil
}
