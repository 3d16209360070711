// Package intake turns S3 ObjectCreated notifications, delivered through
// an SQS queue, into Requested transfers.
//
// Every notification ends as a recorded outcome: a transfer that is
// Requested, or one that is Requested and at once Failed (not retryable)
// with a reason naming what is wrong with the upload (missing or invalid
// metadata, no matching route, source gone). A message that is not an S3
// notification at all is reported as a batch item failure, so the queue's
// redrive policy moves it to the on-failure queue without holding up the
// rest of its batch.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
	"github.com/ferryhq/ferry/store"
)

// Store is what intake needs of the event store.
type Store interface {
	// Append stores events after prev; errors.Is(err, store.ErrConflict)
	// (domain.KindConflict) when version 1 already exists.
	Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error)
}

// Objects is what intake needs of S3.
type Objects interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	// ListObjectVersions finds the version a notification without a
	// version id is about.
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

// Addresser completes the request of an upload on a route whose
// destination takes its addresses from the upload (MESH: from, to and
// workflow from mex-* metadata or the mailbox folder; mesh.Addressing), or
// returns why it cannot be sent (a KindInvalid error with a code), which
// intake records as the transfer's failure.
type Addresser interface {
	// Address completes req from the object's raw user metadata and its
	// Content-Encoding.
	Address(req *domain.Requested, route domain.Route, metadata map[string]string, contentEncoding string) *domain.Error
}

// Handler is the intake Lambda.
type Handler struct {
	Store   Store
	Objects Objects
	Routes  domain.Routes
	// MESH addresses uploads on routes to MESH; nil when no MESH is
	// configured (such uploads are then rejected, code NO_MESH).
	MESH Addresser
	Now  func() time.Time
	Log  *slog.Logger
}

// Handle processes a batch of SQS messages, each holding an S3 event
// notification. Messages whose processing failed are returned as batch item
// failures; the others are done.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, msg := range ev.Records {
		if err := h.message(ctx, msg); err != nil {
			h.Log.ErrorContext(ctx, "intake message failed", "messageId", msg.MessageId, "error", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
		}
	}
	return resp, nil
}

// s3TestEvent is what S3 sends once when a notification is configured.
type s3TestEvent struct {
	Event string `json:"Event"`
}

func (h *Handler) message(ctx context.Context, msg events.SQSMessage) error {
	var test s3TestEvent
	if err := json.Unmarshal([]byte(msg.Body), &test); err == nil && test.Event == "s3:TestEvent" {
		return nil
	}
	var n events.S3Event
	if err := json.Unmarshal([]byte(msg.Body), &n); err != nil {
		return domain.Errorf(domain.KindInvalid, "message is not an S3 notification: %v", err)
	}
	if len(n.Records) == 0 {
		return domain.Errorf(domain.KindInvalid, "message is not an S3 notification: no records")
	}
	var errs []error
	for _, r := range n.Records {
		if err := h.record(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (h *Handler) record(ctx context.Context, r events.S3EventRecord) error {
	if !strings.HasPrefix(r.EventName, "ObjectCreated:") {
		return nil
	}
	bucket := r.S3.Bucket.Name
	key, err := url.QueryUnescape(r.S3.Object.Key)
	if err != nil || bucket == "" || key == "" {
		return domain.Errorf(domain.KindInvalid, "notification names no valid object (bucket %q, key %q)", bucket, r.S3.Object.Key)
	}
	etag := normalETag(r.S3.Object.ETag)
	// gone records the upload as a transfer that failed at once: the object
	// this notification is about cannot be read any more.
	gone := func(why string) error {
		src := domain.Source{Kind: "s3", Bucket: bucket, Key: key, VersionID: r.S3.Object.VersionID, ETag: etag}
		id := domain.ObjectTransferID(bucket, key, r.S3.Object.VersionID, r.S3.Object.ETag, r.EventTime)
		return h.create(ctx, id, domain.Reject{
			Requested: domain.Requested{Source: src, Size: r.S3.Object.Size, Filename: path.Base(key)},
			Reason:    reasonf("source object s3://%s/%s %s", bucket, key, why).WithCode("SOURCE_GONE"),
		})
	}
	head, why, err := h.headNotified(ctx, r, bucket, key, etag)
	if err != nil {
		return err
	}
	if why != "" {
		return gone(why)
	}
	versionID := aws.ToString(head.VersionId)
	if versionID == "null" {
		versionID = ""
	}
	headETag := aws.ToString(head.ETag)
	modified := aws.ToTime(head.LastModified)
	obj := Object{
		Bucket: bucket, Key: key, VersionID: versionID, ETag: headETag, Size: aws.ToInt64(head.ContentLength),
		Metadata: head.Metadata, ContentEncoding: aws.ToString(head.ContentEncoding),
	}
	id := domain.ObjectTransferID(bucket, key, versionID, headETag, modified)
	if party, pid, ok := domain.ParsePostboxKey(key); ok {
		// A file given to the HTTP API: its key names its transfer and
		// its sender (a posted file's transfer exists already).
		id, obj.Sender = pid, party
	} else if eid, ok := domain.ParseEmailKey(key); ok {
		// An attachment of received email: its key names its transfer,
		// which the email function has made (or had not yet, when it
		// stopped: made here then, the same).
		id = eid
	}
	return h.create(ctx, id, h.Command(obj))
}

// headNotified reads the object version a notification is about. When that
// version cannot be read any more it returns why (recorded as SOURCE_GONE);
// an error is worth retrying.
//
// A notification without a version id (an unversioned bucket, or the local
// emulator) names its object by ETag, and the key may hold a newer upload by
// now: the newest version is the notified one when it has that ETag and is
// not newer than the event; otherwise the version is looked up by ETag.
func (h *Handler) headNotified(ctx context.Context, r events.S3EventRecord, bucket, key, etag string) (*s3.HeadObjectOutput, string, error) {
	in := &s3.HeadObjectInput{Bucket: &bucket, Key: &key}
	if v := r.S3.Object.VersionID; v != "" {
		in.VersionId = &v
	} else if etag != "" {
		latest, err := h.Objects.HeadObject(ctx, in)
		switch {
		case err == nil && normalETag(aws.ToString(latest.ETag)) == etag && !newerThanEvent(aws.ToTime(latest.LastModified), r.EventTime):
			return latest, "", nil
		case err != nil && awserr.Kind(err) != domain.KindNotFound:
			return nil, "", awserr.Classify("head source object", err)
		}
		v, found, err := h.versionOf(ctx, bucket, key, etag, r.EventTime)
		if err != nil {
			return nil, "", err
		}
		if !found {
			return nil, fmt.Sprintf("was overwritten before it could be read (no version has ETag %s)", etag), nil
		}
		in = &s3.HeadObjectInput{Bucket: &bucket, Key: &key}
		if v != "" && v != "null" {
			in.VersionId = &v
		} else {
			// The bucket keeps one version: read it only if it is still
			// the one the notification is about.
			in.IfMatch = aws.String(`"` + etag + `"`)
		}
	}
	head, err := h.Objects.HeadObject(ctx, in)
	if err != nil {
		e := awserr.Classify("head source object", err)
		switch {
		case e.Kind == domain.KindNotFound:
			// Deleted before we saw it: record that, do not retry for ever.
			return nil, "no longer exists", nil
		case e.Code == "PreconditionFailed" || e.Code == "412":
			return nil, fmt.Sprintf("was overwritten before it could be read (it no longer has ETag %s)", etag), nil
		}
		return nil, "", e
	}
	return head, "", nil
}

// versionOf returns the id of the version of bucket/key whose ETag is etag,
// and whether there is one. When several versions share the ETag (the same
// bytes uploaded again), it takes the newest one not newer than the
// notification's event time. It pages through the key's versions with
// ListObjectVersions; an unversioned bucket lists its one object as
// version "null".
func (h *Handler) versionOf(ctx context.Context, bucket, key, etag string, eventTime time.Time) (string, bool, error) {
	in := &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &key}
	var best string
	var bestAt time.Time
	found := false
	for pages := 0; pages < maxVersionPages; pages++ {
		out, err := h.Objects.ListObjectVersions(ctx, in)
		if err != nil {
			return "", false, awserr.Classify("list versions of source object", err)
		}
		for _, v := range out.Versions {
			if aws.ToString(v.Key) != key || normalETag(aws.ToString(v.ETag)) != etag {
				continue
			}
			at := aws.ToTime(v.LastModified)
			if newerThanEvent(at, eventTime) {
				continue // uploaded after this notification's event
			}
			if !found || at.After(bestAt) {
				best, bestAt, found = aws.ToString(v.VersionId), at, true
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextKeyMarker) != key {
			break // the listing has moved past this key
		}
		in.KeyMarker, in.VersionIdMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	return best, found, nil
}

// notAfter reports whether an object modified at is newer than a
// notification's event. S3 gives modification times in whole seconds and
// event times with milliseconds, so the comparison is by the second; an
// unknown event time puts no bound.
func newerThanEvent(modified, event time.Time) bool {
	return !event.IsZero() && modified.Truncate(time.Second).After(event.Truncate(time.Second))
}

// maxVersionPages bounds how many listing pages versionOf reads for one
// key (1,000 versions a page).
const maxVersionPages = 10

// normalETag strips the quotes S3 puts around ETags in some answers.
func normalETag(etag string) string { return strings.Trim(etag, `"`) }

// Object is what intake knows of an upload when it decides its transfer.
type Object struct {
	Bucket, Key, VersionID, ETag string
	Size                         int64
	// Metadata is the object's user metadata as S3 returns it, and
	// ContentEncoding its Content-Encoding.
	Metadata        map[string]string
	ContentEncoding string
	// Sender, when set, is the sender whatever the metadata says: the
	// party of a postbox key (domain.PostboxKey).
	Sender string
}

// Command decides what an upload asks for: a Request when it is complete
// and routable, a Reject naming every problem otherwise. It is the one
// place an upload meets the routing table; the HTTP API's posts come here
// too.
//
// An attachment of received email (an upload under a domain.EmailKey) is
// sent by its email-from address to its email-to address, is routed by
// the latter too (Match.EmailTo), and must then pass the route's email
// policy: a sender not allowed is rejected with code SENDER_NOT_ALLOWED, a
// verdict that breaks its rules with VERDICT_FAILED.
func (h *Handler) Command(o Object) domain.Command {
	cmd, _ := h.Explain(o)
	return cmd
}

// Explain is Command with why it chose the route it did: the routes
// before it, each with the criterion it failed (domain.Routes.Explain);
// all of them when none matched. ferry routes which shows it.
func (h *Handler) Explain(o Object) (domain.Command, []string) {
	bucket, key := o.Bucket, o.Key
	md, problems := parseMetadata(o.Metadata)
	_, email := domain.ParseEmailKey(key)
	if email {
		// Addresses are not party names: they are taken as the email
		// function found them, after the party checks.
		md[metaSender] = md.first(domain.MetaEmailFrom)
		md[metaRecipient] = strings.ToLower(md.first(domain.MetaEmailTo))
	}
	req := domain.Requested{
		Source:    domain.Source{Kind: "s3", Bucket: bucket, Key: key, VersionID: o.VersionID, ETag: o.ETag},
		Sender:    md.first(metaSender, mexFrom),
		Recipient: md.first(metaRecipient, mexTo),
		Workflow:  md.first(metaWorkflow, mexWorkflow),
		Filename:  md.first(metaFilename, mexFilename),
		Size:      o.Size,
		Metadata:  md.extra(),
		// CorrelationID ties the attachments of one email together; any
		// upload may carry one.
		CorrelationID: md.first(domain.MetaCorrelationID),
	}
	if req.Filename == "" {
		req.Filename = path.Base(key)
	}
	if o.Sender != "" {
		req.Sender = o.Sender
	}
	if len(problems) > 0 {
		return domain.Reject{Requested: req, Reason: reasonf("invalid upload: %s", strings.Join(problems, "; ")).WithCode("INVALID_METADATA")}, nil
	}
	upload := domain.Upload{Bucket: bucket, Key: key, Sender: req.Sender, Recipient: req.Recipient, Workflow: req.Workflow, Metadata: md}
	if email {
		upload.EmailTo = req.Recipient
	}
	route, skipped, ok := h.Routes.Explain(upload)
	if !ok {
		return domain.Reject{Requested: req, Reason: reasonf("no route matches s3://%s/%s (sender %q, recipient %q, workflow %q)", bucket, key, req.Sender, req.Recipient, req.Workflow).WithCode("NO_ROUTE")}, skipped
	}
	req.Route = route.Name
	req.Destination = route.Destination
	req.ChunkSize = int64(route.ChunkSize)
	req.Retry = route.Retry
	if route.ExpectAck && route.Destination.Type != "mesh" {
		req.ExpectAck, req.AckByRecipient = true, true
	}
	if email {
		if reason := emailReason(route, md); reason != nil {
			return domain.Reject{Requested: req, Reason: reason}, skipped
		}
	}
	if miss := md.missing(route.Require); len(miss) > 0 {
		return domain.Reject{Requested: req, Reason: reasonf("missing metadata: %s (route %s requires it)", strings.Join(miss, ", "), route.Name).WithCode("MISSING_METADATA")}, skipped
	}
	if route.Destination.Type == "mesh" {
		if h.MESH == nil {
			return domain.Reject{Requested: req, Reason: reasonf("route %s sends to MESH, but no MESH environment is configured", route.Name).WithCode("NO_MESH")}, skipped
		}
		if reason := h.MESH.Address(&req, route, o.Metadata, o.ContentEncoding); reason != nil {
			return domain.Reject{Requested: req, Reason: reason}, skipped
		}
	}
	return domain.Request{Requested: req}, skipped
}

// emailReason returns why the route's email policy refuses an attachment
// of received email, or nil: a sender it does not allow, or a verdict that
// breaks its rules (the verdicts travel as email-spf, email-virus, …).
func emailReason(route domain.Route, md metadata) *domain.Error {
	policy := route.EmailPolicy()
	if from := md.first(metaSender); !policy.Allows(from) {
		return reasonf("sender %q is not allowed on route %s (allowedSenders: %s)", from, route.Name, strings.Join(policy.AllowedSenders, ", ")).WithCode("SENDER_NOT_ALLOWED")
	}
	verdicts := domain.Verdicts{}
	for _, name := range domain.VerdictNames {
		verdicts[name] = md.first(domain.MetaVerdictPrefix + name)
	}
	return policy.Check(verdicts)
}

// create records the transfer. A conflict means the transfer already
// exists: the notification was a duplicate, and that is success.
func (h *Handler) create(ctx context.Context, id string, cmd domain.Command) error {
	d, err := store.DecideAppend(ctx, h.Store, domain.State{ID: id}, cmd, h.Now())
	if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	log := h.Log.With("transfer", id)
	if d.Lost {
		log.InfoContext(ctx, "duplicate notification ignored")
		return nil
	}
	st := d.State
	log = log.With("version", st.Version, "status", st.Status, "route", st.Request.Route)
	if st.Status == domain.StatusFailed {
		log.WarnContext(ctx, "upload rejected", "reason", st.LastFailure.Message, "source", st.Request.Source.Bucket+"/"+st.Request.Source.Key)
	} else {
		log.InfoContext(ctx, "transfer requested", "bytes", st.Request.Size, "chunks", st.Request.Chunks)
	}
	return nil
}
