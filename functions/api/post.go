package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// MaxPost is the largest file POST /transfers takes: a Lambda invocation's
// 6 MB request limit holds about 4.4 MB of file once base64-encoded, with
// the rest of the event. Larger files go through POST /uploads.
const MaxPost = 4 << 20

// Objects is what the API needs of S3: storing a posted file.
type Objects interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Requester is the one place an upload meets the routing table: intake's
// Command.
type Requester interface {
	Command(o intake.Object) domain.Command
}

// postFields are the query parameters of POST /transfers, each kept as the
// object's metadata of the same name (intake's fields).
var postFields = []string{"recipient", "workflow", "filename", "subject", "localid"}

// post takes a file: it becomes a transfer at once, its object stored
// under the caller's postbox key in the upload bucket.
func (h *Handler) post(ctx context.Context, who Identity, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	q := req.QueryStringParameters
	for k := range q {
		if !slices.Contains(postFields, k) {
			return events.APIGatewayV2HTTPResponse{}, badRequest(k + ": not a field of a posted file (" + strings.Join(postFields, ", ") + ", or mex-* headers)")
		}
	}
	if q["recipient"] == "" {
		return events.APIGatewayV2HTTPResponse{}, badRequest("recipient: required")
	}
	meta := map[string]string{"sender": who.Party}
	for _, k := range postFields {
		if v := q[k]; v != "" {
			meta[k] = v
		}
	}
	for k, v := range req.Headers {
		k = strings.ToLower(k)
		if !strings.HasPrefix(k, "mex-") {
			continue
		}
		if k == "mex-from" && v != who.Party {
			return events.APIGatewayV2HTTPResponse{}, badRequest("mex-from: a posted file is sent by the caller's party, " + who.Party)
		}
		meta[k] = v
	}
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			return events.APIGatewayV2HTTPResponse{}, badRequest("body: not valid base64")
		}
	}
	if len(body) > MaxPost {
		return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("the body is %d bytes, over POST /transfers' %d: ask POST /uploads for a URL to upload it to", len(body), MaxPost)}
	}

	id := ulid.Make().String()
	repeat := false // a retry of an earlier request, whose transfer id it takes
	if key := authorizer.HeaderValue(req.Headers, "Idempotency-Key"); key != "" {
		held, err := h.Store.ClaimIdempotencyKey(ctx, who.Party, key, id, h.Now())
		if err != nil {
			return events.APIGatewayV2HTTPResponse{}, err
		}
		if held != id {
			// Asked before: answer as then, or finish what that request began.
			if st, err := h.Store.Load(ctx, held); err == nil {
				return reply(http.StatusOK, accepted(st)), nil
			} else if !errors.Is(err, store.ErrNotFound) {
				return events.APIGatewayV2HTTPResponse{}, err
			}
			id, repeat = held, true
		}
	}
	filename := transport.SafeFilename(q["filename"], "upload")
	obj := intake.Object{
		Bucket: h.Bucket, Key: domain.PostboxKey(who.Party, id, filename), Size: int64(len(body)),
		Metadata: meta, ContentEncoding: authorizer.HeaderValue(req.Headers, "Content-Encoding"), Sender: who.Party,
	}
	cmd := h.Intake.Command(obj)
	if r, ok := cmd.(domain.Reject); ok {
		// Refused before anything is stored: the caller still has the file.
		if domain.CodeOf(r.Reason) == "NO_ROUTE" {
			return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusUnprocessableEntity, "unroutable", r.Reason.Message}
		}
		return events.APIGatewayV2HTTPResponse{}, badRequest(r.Reason.Message)
	}
	put := &s3.PutObjectInput{
		Bucket: &obj.Bucket, Key: &obj.Key, Body: bytes.NewReader(body), ContentLength: aws.Int64(obj.Size),
		Metadata: meta, ContentType: aws.String(cmp.Or(authorizer.HeaderValue(req.Headers, "Content-Type"), "application/octet-stream")),
	}
	if obj.ContentEncoding != "" {
		put.ContentEncoding = &obj.ContentEncoding
	}
	out, err := h.Objects.PutObject(ctx, put)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, domain.Errorf(domain.KindUnavailable, "store the posted file: %v", err)
	}
	request := cmd.(domain.Request) // a Reject returned above
	request.Requested.Source.VersionID, request.Requested.Source.ETag = aws.ToString(out.VersionId), aws.ToString(out.ETag)
	d, err := store.DecideAppend(ctx, h.Store, domain.State{ID: id}, request, h.Now().UTC())
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if d.Lost {
		// Intake, woken by the object just stored, made the transfer first,
		// or the request this one repeats did meanwhile. Only a repeat is
		// answered as one; the first request's transfer is still new.
		st, err := h.Store.Load(ctx, id)
		if err != nil {
			return events.APIGatewayV2HTTPResponse{}, err
		}
		if repeat {
			return reply(http.StatusOK, accepted(st)), nil
		}
		d.State = st
	}
	h.Log.InfoContext(ctx, "file posted", "transfer", id, "party", who.Party, "keyId", who.KeyID, "bytes", obj.Size, "route", d.State.Request.Route)
	resp := reply(http.StatusAccepted, accepted(d.State))
	resp.Headers["Location"] = "/transfers/" + id
	return resp, nil
}

type acceptedBody struct {
	ID     string        `json:"id"`
	URL    string        `json:"url"`
	Status domain.Status `json:"status"`
}

func accepted(st domain.State) acceptedBody {
	return acceptedBody{ID: st.ID, URL: "/transfers/" + st.ID, Status: st.Status}
}

func badRequest(msg string) *apiError { return &apiError{http.StatusBadRequest, "bad_request", msg} }
