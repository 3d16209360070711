// Package s3transport delivers transfers to Amazon S3 by server-side copy:
// each chunk is an UploadPartCopy of a byte range of the source object into a
// multipart upload on the destination, so payload bytes never pass through
// ferry.
//
// The destination bucket and key prefix come from the route
// (Request.Destination); the object key is Prefix followed by
// transport.SafeFilename of the sender's filename (or of the source key's
// base name), falling back to the transfer id. The object carries the
// metadata ferry-transfer-id, which lets Complete recognise its own finished
// upload when it is called again.
//
// Chunks other than the last must be at least 5 MiB (S3's smallest part) and
// a transfer may have at most 10,000 chunks.
//
// A transfer whose source chose the chunks (a MESH message: any sizes its
// sender liked, often under 5 MiB) is uploaded through ferry instead, each
// chunk spooled to a temporary file. Small chunks are gathered into parts of
// at least 5 MiB without giving up one event per chunk or resumability: a
// chunk other than the last that would end a part under 5 MiB is held
// (transport.Sent.Held; nothing is stored, the ChunkSent event says so),
// and the next chunk's SendChunk re-reads the held chunks from the source
// (a MESH message stays in the inbox until it is acknowledged after
// delivery), adds its own bytes and uploads them all as one part numbered
// after the first held chunk. The decision depends only on the recorded
// state and the chunks' lengths, so repeating a step after a crash uploads
// the same part again. What is re-read per part is under 5 MiB
// (domain.MaxHeldBytes); the last chunk always ends a part. Part numbers
// of such an upload are ascending but may have gaps, and Complete checks
// that their sizes add up to the bytes received. A message in one chunk,
// of any size, is a one-part upload.
package s3transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/transport"
)

// MetadataTransferID is the user metadata key (x-amz-meta-ferry-transfer-id)
// holding the transfer id on every delivered object.
const MetadataTransferID = "ferry-transfer-id"

// S3's multipart limits.
const (
	MinPartSize = 5 * domain.MiB
	MaxPartSize = 5 * 1024 * domain.MiB
	MaxParts    = 10000
)

// Transport delivers to S3. It keeps no state between calls and is safe for
// concurrent use.
type Transport struct {
	client  *s3.Client
	sources map[string]transport.Source
	log     *slog.Logger
}

var _ transport.Transport = (*Transport)(nil)

// New returns a transport that uses client for both reading the source and
// writing the destination. The client's credentials need s3:GetObject (and
// s3:GetObjectVersion) on sources, and s3:PutObject, s3:ListMultipartUploadParts
// and s3:GetObject on destinations.
func New(client *s3.Client) *Transport {
	return &Transport{client: client}
}

// WithSource makes tr accept transfers whose source is of kind (e.g.
// "mesh"): their chunks are read from src and uploaded, since S3 can copy
// server side only from S3. It returns tr.
func (tr *Transport) WithSource(kind string, src transport.Source) *Transport {
	if tr.sources == nil {
		tr.sources = map[string]transport.Source{}
	}
	tr.sources[kind] = src
	return tr
}

// WithLog makes tr log what it decides on its own (mex-* headers left out
// of an object's metadata) to log. It returns tr.
func (tr *Transport) WithLog(log *slog.Logger) *Transport {
	tr.log = log
	return tr
}

func (tr *Transport) logger() *slog.Logger {
	if tr.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return tr.log
}

// Key returns the destination object key of transfer t: the destination
// prefix followed by the delivered file's name (transport.DeliveredName).
func Key(t domain.State) string {
	return t.Request.Destination.Prefix + transport.DeliveredName(t)
}

// Location returns "s3://bucket/key" for transfer t's destination object.
func Location(t domain.State) string {
	return "s3://" + t.Request.Destination.Bucket + "/" + Key(t)
}

// Begin creates a multipart upload at the destination, tagged with the
// transfer id, and returns its upload id. It returns KindInvalid if the
// destination is not an S3 one or the plan breaks S3's multipart limits, and
// otherwise the classified S3 error (KindNotFound for a missing bucket,
// KindUnauthorized, KindUnavailable…). Each call creates a new upload;
// uploads left behind by a crash before Started was recorded are for the
// bucket's AbortIncompleteMultipartUpload lifecycle rule to remove.
func (tr *Transport) Begin(ctx context.Context, t domain.State) (string, error) {
	if err := checkPlan(t); err != nil {
		return "", err
	}
	md, dropped := ObjectMetadata(t)
	if len(dropped) > 0 {
		tr.logger().WarnContext(ctx, "mex-* headers left out of the object's metadata: S3 allows 2 KB; the transfer's Requested event keeps them",
			"transfer", t.ID, "location", Location(t), "dropped", dropped)
	}
	out, err := tr.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:   aws.String(t.Request.Destination.Bucket),
		Key:      aws.String(Key(t)),
		Metadata: md,
	})
	if err != nil {
		return "", awserr.Classify(fmt.Sprintf("s3: begin upload of %s to %s", t.ID, Location(t)), err)
	}
	if aws.ToString(out.UploadId) == "" {
		return "", domain.Errorf(domain.KindInternal, "s3: begin upload of %s to %s: no upload id returned", t.ID, Location(t))
	}
	return aws.ToString(out.UploadId), nil
}

// SendChunk copies chunk c of the source into part c.Index of the upload
// t.Ref, server side, and returns the part's ETag. Sending the same chunk
// again replaces the part with the same bytes. When the source's ETag is
// known the copy is conditional on it, so a source replaced mid-transfer
// fails with KindConflict (PreconditionFailed) instead of mixing versions.
// An empty chunk (only an empty file has one) is checked against the
// source's size and uploaded as an empty part.
//
// A chunk of a source registered with WithSource (a MESH message) is read
// through ferry and uploaded, or held (see the package comment): the part
// it ends is numbered after the first chunk in it, and Sent.Held reports a
// chunk kept for the next part.
//
// Errors: KindInvalid for a chunk that is not in t's plan, a transfer not
// begun, or a source that is not in S3; KindNotFound for a missing source
// (NoSuchKey, NoSuchBucket) or upload (NoSuchUpload); KindConflict for held
// chunks that read back longer or shorter than when they were received;
// the source's errors; other classified S3 errors as awserr.Classify says.
func (tr *Transport) SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error) {
	if err := checkPlan(t); err != nil {
		return transport.Sent{}, err
	}
	if c.Index < 1 || c.Index > t.Request.Chunks || c != t.Request.Chunk(c.Index) {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "s3: chunk %+v is not chunk %d of transfer %s's plan", c, c.Index, t.ID)
	}
	if t.Ref == "" {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "s3: transfer %s has no upload id: Begin must come first", t.ID)
	}
	src := t.Request.Source
	if reader, ok := tr.sources[src.Kind]; ok && src.Kind != "s3" {
		return tr.upload(ctx, t, c, reader)
	}
	if src.Kind != "s3" || src.Bucket == "" || src.Key == "" {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "s3: transfer %s has source %q s3://%s/%s; only S3 sources can be copied", t.ID, src.Kind, src.Bucket, src.Key)
	}
	op := fmt.Sprintf("s3: copy chunk %d of %d of %s from s3://%s/%s to %s", c.Index, t.Request.Chunks, t.ID, src.Bucket, src.Key, Location(t))
	if c.Length == 0 {
		ref, err := tr.sendEmpty(ctx, t, c, op)
		return transport.Sent{Ref: ref}, err
	}
	in := &s3.UploadPartCopyInput{
		Bucket:     aws.String(t.Request.Destination.Bucket),
		Key:        aws.String(Key(t)),
		UploadId:   aws.String(t.Ref),
		PartNumber: aws.Int32(int32(c.Index)),
		CopySource: aws.String(CopySource(src)),
	}
	// A chunk that is the whole file is copied without a range: S3 documents
	// ranges only for sources over 5 MB.
	if c.Offset != 0 || c.Length != t.Request.Size {
		in.CopySourceRange = aws.String(fmt.Sprintf("bytes=%d-%d", c.Offset, c.Offset+c.Length-1))
	}
	if src.ETag != "" {
		in.CopySourceIfMatch = aws.String(src.ETag)
	}
	out, err := tr.client.UploadPartCopy(ctx, in)
	if err != nil {
		return transport.Sent{}, awserr.Classify(op, err)
	}
	if out.CopyPartResult == nil {
		return transport.Sent{}, domain.Errorf(domain.KindInternal, "%s: no copy result returned", op)
	}
	return transport.Sent{Ref: aws.ToString(out.CopyPartResult.ETag), Bytes: c.Length}, nil
}

// upload reads chunk c from a non-S3 source and uploads it, with the held
// chunks before it (t.HeldFrom..c.Index-1, t.HeldBytes in all), as part
// t.HeldFrom (c.Index when none is held) — or holds it, uploading nothing,
// when it is not the last chunk and the part would be under MinPartSize.
// The bytes are spooled to a temporary file first: S3 needs a part's length
// up front, a decompressed MESH chunk's length is known only at its end,
// and no chunk is ever held in memory. The new chunk is read first, at
// offset t.HeldBytes of the file, so the held chunks are read again only
// when the part is uploaded.
func (tr *Transport) upload(ctx context.Context, t domain.State, c domain.Chunk, src transport.Source) (transport.Sent, error) {
	op := fmt.Sprintf("s3: upload chunk %d of %d of %s from %s %s to %s", c.Index, t.Request.Chunks, t.ID, t.Request.Source.Kind, t.Request.Source.MessageID, Location(t))
	first, held := c.Index, int64(0)
	if t.HeldFrom > 0 {
		first, held = t.HeldFrom, t.HeldBytes
		if first >= c.Index || held < 0 || held >= domain.MaxHeldBytes {
			return transport.Sent{}, domain.Errorf(domain.KindInvalid, "%s: chunks %d.. (%d bytes) are recorded as held before chunk %d", op, first, held, c.Index)
		}
	}
	f, err := os.CreateTemp("", "ferry-part-")
	if err != nil {
		return transport.Sent{}, &domain.Error{Kind: domain.KindUnavailable, Message: op + ": spool", Err: err}
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, err := spool(ctx, t, c, src, io.NewOffsetWriter(f, held), -1, op)
	if err != nil {
		return transport.Sent{}, err
	}
	size := held + n
	if c.Index < t.Request.Chunks && size < MinPartSize {
		// S3 refuses parts under 5 MiB but the last: keep it for the next
		// chunk's part. Nothing is stored.
		return transport.Sent{Bytes: n, Held: true}, nil
	}
	if size > MaxPartSize {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "%s: part %d would have %d bytes; S3 parts hold at most %d", op, first, size, MaxPartSize)
	}
	w := io.NewOffsetWriter(f, 0)
	var got int64
	for i := first; i < c.Index; i++ {
		// Read one byte more than is left, to tell a source that grew.
		m, err := spool(ctx, t, t.Request.Chunk(i), src, w, held-got+1, op)
		if err != nil {
			return transport.Sent{}, err
		}
		got += m
	}
	if got != held {
		return transport.Sent{}, domain.Errorf(domain.KindConflict,
			"%s: held chunks %d..%d now read as %d bytes or more, %d when they were received", op, first, c.Index-1, got, held)
	}
	out, err := tr.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(t.Request.Destination.Bucket),
		Key:           aws.String(Key(t)),
		UploadId:      aws.String(t.Ref),
		PartNumber:    aws.Int32(int32(first)),
		Body:          io.NewSectionReader(f, 0, size),
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return transport.Sent{}, awserr.Classify(op, err)
	}
	return transport.Sent{Ref: aws.ToString(out.ETag), Bytes: n}, nil
}

// spool copies chunk c of t's source into w, at most limit bytes when
// limit is not negative, and returns how many it copied.
func spool(ctx context.Context, t domain.State, c domain.Chunk, src transport.Source, w io.Writer, limit int64, op string) (int64, error) {
	rc, err := src.OpenChunk(ctx, t, c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var r io.Reader = rc
	if limit >= 0 {
		r = io.LimitReader(rc, limit)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		var de *domain.Error
		if errors.As(err, &de) {
			return n, err
		}
		return n, &domain.Error{Kind: domain.KindUnavailable, Message: fmt.Sprintf("%s: spool chunk %d", op, c.Index), Err: err}
	}
	return n, nil
}

// sendEmpty checks the source exists and is still empty, then uploads an
// empty part.
func (tr *Transport) sendEmpty(ctx context.Context, t domain.State, c domain.Chunk, op string) (string, error) {
	src := t.Request.Source
	head := &s3.HeadObjectInput{Bucket: aws.String(src.Bucket), Key: aws.String(src.Key)}
	if src.VersionID != "" {
		head.VersionId = aws.String(src.VersionID)
	}
	if src.ETag != "" {
		head.IfMatch = aws.String(src.ETag)
	}
	h, err := tr.client.HeadObject(ctx, head)
	if err != nil {
		return "", awserr.Classify(op, err)
	}
	if n := aws.ToInt64(h.ContentLength); n != t.Request.Size {
		return "", domain.Errorf(domain.KindConflict, "%s: the source now has %d bytes, the transfer expects %d", op, n, t.Request.Size)
	}
	out, err := tr.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(t.Request.Destination.Bucket),
		Key:           aws.String(Key(t)),
		UploadId:      aws.String(t.Ref),
		PartNumber:    aws.Int32(int32(c.Index)),
		Body:          bytes.NewReader(nil),
		ContentLength: aws.Int64(0),
	})
	if err != nil {
		return "", awserr.Classify(op, err)
	}
	return aws.ToString(out.ETag), nil
}

// Complete lists the upload's parts, checks they are exactly chunks
// 1..Chunks with the planned sizes (for a source-chunked transfer: ascending
// part numbers, perhaps with gaps where small chunks were gathered, holding
// the bytes received), and completes the upload. If the upload
// no longer exists because an earlier Complete finished it, Complete accepts
// the destination object when its ferry-transfer-id metadata is t.ID and its
// size is t's, and returns the same Delivery: Ref is the object's ETag,
// Location "s3://bucket/key".
//
// Errors: KindInvalid when the parts do not match the plan, or when the
// upload is gone and the object at the key belongs to another transfer or
// has another size; KindNotFound (NoSuchUpload) when neither the upload nor
// the object exists; other classified S3 errors.
func (tr *Transport) Complete(ctx context.Context, t domain.State) (transport.Delivery, error) {
	if err := checkPlan(t); err != nil {
		return transport.Delivery{}, err
	}
	if t.Ref == "" {
		return transport.Delivery{}, domain.Errorf(domain.KindInvalid, "s3: transfer %s has no upload id: Begin must come first", t.ID)
	}
	op := fmt.Sprintf("s3: complete upload of %s to %s", t.ID, Location(t))
	parts, err := tr.parts(ctx, t)
	if isNoSuchUpload(err) {
		return tr.delivered(ctx, t, op)
	}
	if err != nil {
		return transport.Delivery{}, awserr.Classify(op, err)
	}
	if err := checkParts(t, parts); err != nil {
		return transport.Delivery{}, &domain.Error{Kind: domain.KindInvalid, Message: op, Err: err}
	}
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{PartNumber: p.PartNumber, ETag: p.ETag}
	}
	out, err := tr.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(t.Request.Destination.Bucket),
		Key:             aws.String(Key(t)),
		UploadId:        aws.String(t.Ref),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if isNoSuchUpload(err) {
		// Another Complete finished it between our ListParts and ours.
		return tr.delivered(ctx, t, op)
	}
	if err != nil {
		return transport.Delivery{}, awserr.Classify(op, err)
	}
	return transport.Delivery{Ref: aws.ToString(out.ETag), Location: Location(t)}, nil
}

// parts lists every part of t's upload in part-number order.
func (tr *Transport) parts(ctx context.Context, t domain.State) ([]types.Part, error) {
	var parts []types.Part
	p := s3.NewListPartsPaginator(tr.client, &s3.ListPartsInput{
		Bucket:   aws.String(t.Request.Destination.Bucket),
		Key:      aws.String(Key(t)),
		UploadId: aws.String(t.Ref),
	}, func(o *s3.ListPartsPaginatorOptions) { o.StopOnDuplicateToken = true })
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		parts = append(parts, page.Parts...)
		if len(parts) > MaxParts {
			return nil, fmt.Errorf("upload lists more than %d parts", MaxParts)
		}
	}
	return parts, nil
}

// checkParts reports how parts differ from chunks 1..Chunks of t's plan,
// or for a source-chunked transfer (whose small chunks share parts) from
// ascending part numbers within 1..Chunks whose sizes add up to the bytes
// received, with nothing still held.
func checkParts(t domain.State, parts []types.Part) error {
	if t.Request.SourceChunked() {
		return checkGatheredParts(t, parts)
	}
	var errs []error
	if len(parts) != t.Request.Chunks {
		errs = append(errs, fmt.Errorf("the upload has %d parts, the plan %d chunks", len(parts), t.Request.Chunks))
	}
	for i, p := range parts {
		n, size := aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size)
		switch {
		case int(n) != i+1:
			errs = append(errs, fmt.Errorf("part %d is listed where part %d should be", n, i+1))
		case int(n) > t.Request.Chunks:
			errs = append(errs, fmt.Errorf("part %d is beyond the plan", n))
		case !t.Request.SourceChunked() && size != t.Request.Chunk(int(n)).Length:
			errs = append(errs, fmt.Errorf("part %d has %d bytes, chunk %d has %d", n, size, n, t.Request.Chunk(int(n)).Length))
		}
		if len(errs) >= 5 {
			break
		}
	}
	return errors.Join(errs...)
}

// checkGatheredParts is checkParts for a source-chunked transfer.
func checkGatheredParts(t domain.State, parts []types.Part) error {
	var errs []error
	if t.HeldFrom != 0 {
		errs = append(errs, fmt.Errorf("chunks %d..%d are held and were never uploaded", t.HeldFrom, t.ChunksSent))
	}
	if len(parts) == 0 || len(parts) > t.Request.Chunks {
		errs = append(errs, fmt.Errorf("the upload has %d parts for %d chunks", len(parts), t.Request.Chunks))
	}
	var total int64
	prev := int32(0)
	for _, p := range parts {
		n := aws.ToInt32(p.PartNumber)
		if n <= prev || int(n) > t.Request.Chunks {
			errs = append(errs, fmt.Errorf("part %d is listed after part %d, of chunks 1..%d", n, prev, t.Request.Chunks))
		}
		prev = n
		total += aws.ToInt64(p.Size)
	}
	if total != t.BytesSent {
		errs = append(errs, fmt.Errorf("the parts hold %d bytes, %d were received", total, t.BytesSent))
	}
	return errors.Join(errs...)
}

// delivered accepts the destination object as t's completed delivery if it
// carries t's id and size.
func (tr *Transport) delivered(ctx context.Context, t domain.State, op string) (transport.Delivery, error) {
	h, err := tr.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(t.Request.Destination.Bucket),
		Key:    aws.String(Key(t)),
	})
	if err != nil {
		e := awserr.Classify(op, err)
		if e.Kind == domain.KindNotFound {
			return transport.Delivery{}, domain.Errorf(domain.KindNotFound, "%s: upload %s does not exist and neither does the object", op, t.Ref).WithCode("NoSuchUpload")
		}
		return transport.Delivery{}, e
	}
	id := metadata(h.Metadata, MetadataTransferID)
	size := aws.ToInt64(h.ContentLength)
	want := t.Request.Size
	if t.Request.SourceChunked() {
		want = t.BytesSent
	}
	if id != t.ID || size != want {
		return transport.Delivery{}, domain.Errorf(domain.KindInvalid,
			"%s: upload %s does not exist and the object there is not this transfer's (transfer id %q, %d bytes; want %q, %d bytes)",
			op, t.Ref, id, size, t.ID, want).WithCode("NoSuchUpload")
	}
	return transport.Delivery{Ref: aws.ToString(h.ETag), Location: Location(t)}, nil
}

// checkPlan reports, as KindInvalid, a transfer S3 cannot deliver.
func checkPlan(t domain.State) error {
	d, r := t.Request.Destination, t.Request
	switch {
	case d.Type != "s3" || d.Bucket == "":
		return domain.Errorf(domain.KindInvalid, "s3: transfer %s has destination type %q bucket %q, want an s3 bucket", t.ID, d.Type, d.Bucket)
	case r.Chunks < 1 || r.Chunks > MaxParts:
		return domain.Errorf(domain.KindInvalid, "s3: transfer %s has %d chunks; S3 allows 1 to %d parts", t.ID, r.Chunks, MaxParts)
	case r.SourceChunked():
		// The source chose the chunks; S3 checks part sizes at Complete.
	case r.Chunks > 1 && r.ChunkSize < MinPartSize:
		return domain.Errorf(domain.KindInvalid, "s3: transfer %s has chunks of %d bytes; S3 parts other than the last need at least %d", t.ID, r.ChunkSize, MinPartSize)
	case r.ChunkSize > MaxPartSize:
		return domain.Errorf(domain.KindInvalid, "s3: transfer %s has chunks of %d bytes; S3 parts hold at most %d", t.ID, r.ChunkSize, MaxPartSize)
	}
	return nil
}

// CopySource returns the x-amz-copy-source value naming src: bucket and key
// percent-encoded (keeping '/'), with "?versionId=" when src names a
// version.
func CopySource(src domain.Source) string {
	s := escapePath(src.Bucket + "/" + src.Key)
	if src.VersionID != "" {
		s += "?versionId=" + url.QueryEscape(src.VersionID)
	}
	return s
}

// escapePath percent-encodes every byte of p except unreserved characters
// and '/'.
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func isNoSuchUpload(err error) bool {
	return err != nil && domain.CodeOf(awserr.Classify("", err)) == "NoSuchUpload"
}

// metadata looks k up in S3 user metadata, whose keys may come back in any
// case.
func metadata(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	for mk, v := range m {
		if strings.EqualFold(mk, k) {
			return v
		}
	}
	return ""
}
