package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/internal/awserr"
)

// S3's multipart limits, and the part size ferry picks when the caller
// does not.
const (
	MaxMultipartUpload = 5 << 40 // the largest object S3 stores
	MinPartSize        = 5 << 20 // every part but the last
	MaxPartSize        = 5 << 30
	MaxParts           = 10000
	DefaultPartSize    = 64 << 20
	// PartsPerPage is how many part URLs one response signs: a 5 TiB file's
	// 10,000 would not fit a Lambda response, and URLs signed hours before
	// their part is sent could outlive the signer's credentials.
	PartsPerPage = 100
)

// Multipart is what the API needs of S3 for multipart uploads to the
// caller's postbox keys.
type Multipart interface {
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, opts ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// multipartBody is a multipart upload's plan and its first parts' URLs.
type multipartBody struct {
	ID        string    `json:"id"`
	Method    string    `json:"method"`
	ExpiresAt time.Time `json:"expiresAt"`
	PartSize  int64     `json:"partSize"`
	PartCount int       `json:"partCount"`
	Parts     []partURL `json:"parts"`
	NextPart  *int      `json:"nextPart,omitempty"`
	Complete  string    `json:"complete"`
}

type partURL struct {
	Number int    `json:"number"`
	URL    string `json:"url"`
}

type partPage struct {
	Parts     []partURL `json:"parts"`
	NextPart  *int      `json:"nextPart,omitempty"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// partPlan returns the part size and count of a multipart upload of size
// bytes: the caller's part size if it keeps within S3's limits, else the
// smallest whole number of MiB, at least DefaultPartSize, that needs no
// more than MaxParts parts.
func partPlan(size int64, want *int64) (int64, int, error) {
	partSize := int64(DefaultPartSize)
	if want != nil {
		partSize = *want
		if partSize < MinPartSize || partSize > MaxPartSize {
			return 0, 0, badRequest(fmt.Sprintf("partSize: want %d-%d bytes (5 MiB to 5 GiB)", MinPartSize, MaxPartSize))
		}
	} else if need := (size + MaxParts - 1) / MaxParts; need > partSize {
		const mib = 1 << 20
		partSize = (need + mib - 1) / mib * mib
	}
	count := int(max(1, (size+partSize-1)/partSize))
	if count > MaxParts {
		return 0, 0, badRequest(fmt.Sprintf("partSize: %d bytes makes %d parts of a %d-byte file, over S3's %d", partSize, count, size, MaxParts))
	}
	return partSize, count, nil
}

// startMultipart begins the multipart upload of obj, or takes up the one
// begun before for the same transfer (a retried POST with its
// Idempotency-Key), and signs its first parts.
func (h *Handler) startMultipart(ctx context.Context, who Identity, obj intake.Object, partSize int64, partCount int) (events.APIGatewayV2HTTPResponse, error) {
	_, id, _ := domain.ParsePostboxKey(obj.Key)
	up, err := h.findUpload(ctx, who, id)
	if err != nil && domain.KindOf(err) != domain.KindNotFound {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if err != nil {
		out, err := h.Multipart.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &obj.Bucket, Key: &obj.Key, Metadata: obj.Metadata})
		if err != nil {
			return events.APIGatewayV2HTTPResponse{}, awserr.Classify("begin the multipart upload", err)
		}
		up = s3types.MultipartUpload{Key: out.Key, UploadId: out.UploadId}
		if up.Key == nil {
			up.Key = &obj.Key
		}
	}
	parts, next, err := h.signParts(ctx, up, 1, min(partCount, PartsPerPage), partCount)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	h.Log.InfoContext(ctx, "multipart upload signed", "transfer", id, "party", who.Party, "keyId", who.KeyID,
		"bytes", obj.Size, "partSize", partSize, "parts", partCount)
	return reply(http.StatusCreated, multipartBody{
		ID: id, Method: "multipart", ExpiresAt: h.Now().Add(UploadTTL).UTC(),
		PartSize: partSize, PartCount: partCount, Parts: parts, NextPart: next,
		Complete: "/uploads/" + id + "/complete",
	}), nil
}

// findUpload returns the caller's multipart upload in progress for
// transfer id. It looks only under the caller's own postbox prefix, so
// another party's upload is not found (404), as for transfers.
func (h *Handler) findUpload(ctx context.Context, who Identity, id string) (s3types.MultipartUpload, error) {
	if !domain.ValidID(id) {
		return s3types.MultipartUpload{}, badRequest("id: not a transfer id (26 characters of Crockford base32)")
	}
	prefix := domain.PostboxKey(who.Party, id, "")
	out, err := h.Multipart.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &h.Bucket, Prefix: &prefix})
	if err != nil {
		return s3types.MultipartUpload{}, awserr.Classify("find the multipart upload", err)
	}
	for _, u := range out.Uploads {
		if u.Key != nil && u.UploadId != nil && strings.HasPrefix(*u.Key, prefix) {
			return u, nil
		}
	}
	return s3types.MultipartUpload{}, domain.Errorf(domain.KindNotFound, "no multipart upload in progress for transfer %s", id)
}

// signParts signs the URLs of parts from..to (1-based, inclusive) of up; next
// is the first part after them, nil after the last of count.
func (h *Handler) signParts(ctx context.Context, up s3types.MultipartUpload, from, to, count int) ([]partURL, *int, error) {
	parts := make([]partURL, 0, to-from+1)
	for n := from; n <= to; n++ {
		signed, err := h.Presigner.PresignUploadPart(ctx, &s3.UploadPartInput{
			Bucket: &h.Bucket, Key: up.Key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(n)),
		}, func(o *s3.PresignOptions) { o.Expires = UploadTTL })
		if err != nil {
			return nil, nil, domain.Errorf(domain.KindUnavailable, "sign part %d: %v", n, err)
		}
		parts = append(parts, partURL{Number: n, URL: signed.URL})
	}
	if to >= count {
		return parts, nil, nil
	}
	next := to + 1
	return parts, &next, nil
}

// uploadParts is GET /uploads/{id}/parts?from=N&count=M: fresh URLs for
// the parts of an upload in progress, PartsPerPage at most.
func (h *Handler) uploadParts(ctx context.Context, who Identity, id string, q map[string]string) (events.APIGatewayV2HTTPResponse, error) {
	for k := range q {
		if k != "from" && k != "count" {
			return events.APIGatewayV2HTTPResponse{}, badRequest(k + ": not a parameter of this query")
		}
	}
	from, err := intParam(q, "from", 1, 1, MaxParts)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	count, err := intParam(q, "count", PartsPerPage, 1, PartsPerPage)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	up, err := h.findUpload(ctx, who, id)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	parts, next, err := h.signParts(ctx, up, from, min(from+count-1, MaxParts), MaxParts)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	return reply(http.StatusOK, partPage{Parts: parts, NextPart: next, ExpiresAt: h.Now().Add(UploadTTL).UTC()}), nil
}

// completedBody answers a completed upload: the transfer it becomes, made
// from the object's notification in a moment.
type completedBody struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

type completeRequest struct {
	Parts []struct {
		Number int    `json:"number"`
		ETag   string `json:"etag"`
	} `json:"parts"`
}

// completeUpload is POST /uploads/{id}/complete: S3 joins the parts, and
// the object's notification makes the transfer the upload promised.
func (h *Handler) completeUpload(ctx context.Context, who Identity, id, body string) (events.APIGatewayV2HTTPResponse, error) {
	var in completeRequest
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return events.APIGatewayV2HTTPResponse{}, badRequest("body: " + err.Error())
	}
	if len(in.Parts) == 0 || len(in.Parts) > MaxParts {
		return events.APIGatewayV2HTTPResponse{}, badRequest(fmt.Sprintf("parts: want 1-%d parts, each with its number and the ETag its PUT returned", MaxParts))
	}
	done := make([]s3types.CompletedPart, len(in.Parts))
	for i, p := range in.Parts {
		if p.Number < 1 || p.Number > MaxParts || p.ETag == "" {
			return events.APIGatewayV2HTTPResponse{}, badRequest(fmt.Sprintf("parts[%d]: want a number 1-%d and its etag", i, MaxParts))
		}
		done[i] = s3types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
	}
	up, err := h.findUpload(ctx, who, id)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	_, err = h.Multipart.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &h.Bucket, Key: up.Key, UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: done},
	})
	switch code := awserr.Code(err); {
	case err == nil:
	case code == "InvalidPart" || code == "InvalidPartOrder" || code == "EntityTooSmall" || code == "MalformedXML":
		return events.APIGatewayV2HTTPResponse{}, badRequest("parts: S3 refused them (" + code + "): give every part, in order, with the ETag its PUT returned; all but the last at least 5 MiB")
	default:
		return events.APIGatewayV2HTTPResponse{}, awserr.Classify("complete the multipart upload", err)
	}
	h.Log.InfoContext(ctx, "multipart upload complete", "transfer", id, "party", who.Party, "keyId", who.KeyID, "parts", len(done))
	resp := reply(http.StatusAccepted, completedBody{ID: id, URL: "/transfers/" + id})
	resp.Headers["Location"] = "/transfers/" + id
	return resp, nil
}

// abortUpload is DELETE /uploads/{id}: the parts sent so far are dropped
// and no transfer is made.
func (h *Handler) abortUpload(ctx context.Context, who Identity, id string) (events.APIGatewayV2HTTPResponse, error) {
	up, err := h.findUpload(ctx, who, id)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if _, err := h.Multipart.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &h.Bucket, Key: up.Key, UploadId: up.UploadId}); err != nil {
		return events.APIGatewayV2HTTPResponse{}, awserr.Classify("abort the multipart upload", err)
	}
	h.Log.InfoContext(ctx, "multipart upload aborted", "transfer", id, "party", who.Party, "keyId", who.KeyID)
	return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusNoContent, Headers: map[string]string{"Cache-Control": "no-store"}}, nil
}
