package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// Presigner signs the S3 uploads POST /uploads hands out: one PUT, or the
// parts of a multipart upload.
type Presigner interface {
	PresignPutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
	PresignUploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

// UploadTTL is how long a presigned upload URL is valid.
const UploadTTL = time.Hour

// MaxUpload is the largest file one presigned PUT takes: S3's limit for a
// single PUT. Larger files, up to MaxMultipartUpload, are uploaded in parts.
const MaxUpload = 5 << 30

type uploadRequest struct {
	Recipient string `json:"recipient"`
	Filename  string `json:"filename"`
	Size      *int64 `json:"size"`
	Workflow  string `json:"workflow"`
	Subject   string `json:"subject"`
	Localid   string `json:"localid"`
	// Multipart asks for a multipart upload whatever the size; files over
	// MaxUpload get one anyway. PartSize, if set, is its part size.
	Multipart bool   `json:"multipart"`
	PartSize  *int64 `json:"partSize"`
}

type uploadBody struct {
	ID        string            `json:"id"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expiresAt"`
}

// uploads is POST /uploads: a presigned PUT of the caller's file to its
// postbox key, whose notification makes the transfer the answer promises
// (intake takes the id and the sender from the key). The metadata is
// signed: the upload must send it as given.
func (h *Handler) uploads(ctx context.Context, who Identity, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	var in uploadRequest
	dec := json.NewDecoder(strings.NewReader(req.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return events.APIGatewayV2HTTPResponse{}, badRequest("body: " + err.Error())
	}
	switch {
	case in.Recipient == "":
		return events.APIGatewayV2HTTPResponse{}, badRequest("recipient: required")
	case in.Filename == "":
		return events.APIGatewayV2HTTPResponse{}, badRequest("filename: required")
	case in.Size == nil || *in.Size < 0:
		return events.APIGatewayV2HTTPResponse{}, badRequest("size: required, in bytes")
	case *in.Size > MaxMultipartUpload:
		return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusRequestEntityTooLarge, "payload_too_large", "size: over 5 TiB, the most S3 stores in one object"}
	}
	multipart := in.Multipart || *in.Size > MaxUpload || in.PartSize != nil
	var partSize int64
	var partCount int
	if multipart {
		var err error
		if partSize, partCount, err = partPlan(*in.Size, in.PartSize); err != nil {
			return events.APIGatewayV2HTTPResponse{}, err
		}
	}
	meta := map[string]string{"sender": who.Party, "recipient": in.Recipient, "filename": in.Filename}
	for k, v := range map[string]string{"workflow": in.Workflow, "subject": in.Subject, "localid": in.Localid} {
		if v != "" {
			meta[k] = v
		}
	}
	id := ulid.Make().String()
	if key := authorizer.HeaderValue(req.Headers, "Idempotency-Key"); key != "" {
		held, err := h.Store.ClaimIdempotencyKey(ctx, who.Party, key, id, h.Now())
		if err != nil {
			return events.APIGatewayV2HTTPResponse{}, err
		}
		if _, err := h.Store.Load(ctx, held); err == nil {
			return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusConflict, "conflict", "the upload for this Idempotency-Key arrived already, as transfer " + held}
		} else if !errors.Is(err, store.ErrNotFound) {
			return events.APIGatewayV2HTTPResponse{}, err
		}
		id = held // not uploaded yet: sign the same key again
	}
	obj := intake.Object{Bucket: h.Bucket, Key: domain.PostboxKey(who.Party, id, transport.SafeFilename(in.Filename, "upload")), Size: *in.Size, Metadata: meta, Sender: who.Party}
	if r, ok := h.Intake.Command(obj).(domain.Reject); ok {
		if domain.CodeOf(r.Reason) == "NO_ROUTE" {
			return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusUnprocessableEntity, "unroutable", r.Reason.Message}
		}
		return events.APIGatewayV2HTTPResponse{}, badRequest(r.Reason.Message)
	}
	if multipart {
		return h.startMultipart(ctx, who, obj, partSize, partCount)
	}
	signed, err := h.Presigner.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &obj.Bucket, Key: &obj.Key, Metadata: meta},
		func(o *s3.PresignOptions) { o.Expires = UploadTTL })
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, domain.Errorf(domain.KindUnavailable, "sign the upload: %v", err)
	}
	h.Log.InfoContext(ctx, "upload signed", "transfer", id, "party", who.Party, "keyId", who.KeyID, "bytes", *in.Size)
	return reply(http.StatusCreated, uploadBody{ID: id, URL: signed.URL, Method: http.MethodPut, Headers: signedHeaders(signed), ExpiresAt: h.Now().Add(UploadTTL).UTC()}), nil
}

// signedHeaders are the headers a presigned request must send as signed,
// but Host, which the client's URL sets.
func signedHeaders(signed *v4.PresignedHTTPRequest) map[string]string {
	headers := map[string]string{}
	for k, v := range signed.SignedHeader {
		if !strings.EqualFold(k, "host") {
			headers[k] = strings.Join(v, ",")
		}
	}
	return headers
}
