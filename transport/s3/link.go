package s3transport

import (
	"context"
	"fmt"
	"mime"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Links presigns GET URLs of transfers' S3 sources, for a destination that
// sends a link in place of a file too large for it (an email endpoint's
// overLimit link). Presigning calls nothing; the URL works as long as the
// credentials that signed it, and the version it names exists.
type Links struct {
	Presigner *s3.PresignClient
}

// Link returns a URL that downloads the version of t's source object for
// expiry, named as t's delivered name. KindInvalid for a source that is
// not an S3 object.
func (l Links) Link(ctx context.Context, t domain.State, expiry time.Duration) (string, error) {
	src := t.Request.Source
	if src.Kind != "s3" {
		return "", domain.Errorf(domain.KindInvalid, "s3: transfer %s has a %q source, which a link cannot name", t.ID, src.Kind)
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(src.Bucket), Key: aws.String(src.Key),
		ResponseContentDisposition: aws.String(mime.FormatMediaType("attachment", map[string]string{"filename": transport.DeliveredName(t)})),
	}
	if src.VersionID != "" {
		in.VersionId = aws.String(src.VersionID)
	}
	req, err := l.Presigner.PresignGetObject(ctx, in, s3.WithPresignExpires(expiry))
	if err != nil {
		return "", domain.Errorf(domain.KindInternal, "s3: presign a link to %s: %v", fmt.Sprintf("s3://%s/%s", src.Bucket, src.Key), err)
	}
	return req.URL, nil
}
