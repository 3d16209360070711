// Package transport defines how ferry moves a transfer's bytes to a
// destination, and the helpers every transport shares.
//
// A transport is stateless between calls: everything it needs comes from the
// transfer's domain.State (the request, and the remote reference Begin
// returned), so any process may continue a transfer another one started.
// Implementations live in sub-packages named after what they talk to
// (transport/s3, transport/null); transporttest holds the contract suite
// every implementation runs against its real peer.
package transport

import (
	"context"
	"io"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// Transport moves one transfer's bytes to one kind of destination.
//
// The advance handler calls Begin once, then SendChunk for chunks 1..n in
// order, then Complete. Any call may be repeated after a crash or a
// retryable failure, so every call must be safe to repeat for the same
// input. Every error returned is a *domain.Error whose Kind says whether
// repeating may help (KindUnavailable) or not (every other kind).
type Transport interface {
	// Begin prepares the destination and returns a remote reference later
	// calls need (e.g. an S3 multipart upload id). May return "".
	Begin(ctx context.Context, t domain.State) (ref string, err error)
	// SendChunk delivers chunk c of t's payload. Re-sending the same chunk
	// index must not corrupt or duplicate the delivery. It returns the
	// chunk's reference (e.g. part ETag) and its length, which only the
	// source knows when the source chose the chunks (a MESH message).
	SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (Sent, error)
	// Complete finishes the delivery once every chunk is sent and returns
	// where the file now is. Calling it again after it succeeded (crash
	// before recording) must succeed with the same result.
	Complete(ctx context.Context, t domain.State) (Delivery, error)
}

// Source reads one chunk of a transfer's payload from where it came from,
// for destinations that cannot copy from the source themselves (an inbound
// MESH message delivered to S3). The reader streams; the caller closes it.
// A destination may read a chunk more than once (it re-reads the chunks it
// held, see Sent.Held), so a chunk must read the same every time while the
// transfer is under way. For a planned transfer c may span several chunks
// (Index the first, Offset its offset, Length theirs together): a
// destination that sends them in one piece reads them in one request.
type Source interface {
	OpenChunk(ctx context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error)
}

// Secrets resolves the secret references of a destination's settings
// (domain.IsSecretRef: secret:NAME, ssm:NAME) to their values, for the
// transports whose endpoints hold credentials. internal/app's Secrets is
// the one that reads AWS; its errors are *domain.Error, and their kind is
// kept. Values never appear in errors or logs.
type Secrets interface {
	Resolve(ctx context.Context, ref string) ([]byte, error)
}

// DefaultTrackInterval is how long after delivery, and then between checks,
// a destination that acknowledges deliveries is asked again (or a source
// acknowledged again) when its settings do not say. The advance handler's
// first check and the retry handler's later ones both use it.
const DefaultTrackInterval = time.Minute

// Tracking is what a destination says about a delivery's acknowledgement.
// Neither field set means: not yet.
type Tracking struct {
	Acknowledged bool
	By           string        // who acknowledged
	Failure      *domain.Error // the far end refused the delivery
}

// Sent describes a chunk that reached the destination.
type Sent struct {
	Ref   string // per-chunk reference, e.g. an S3 part ETag; may be ""
	Bytes int64  // the chunk's length
	// Held says the destination took the chunk but has not stored it yet:
	// it stores it with the chunks that follow (see domain.ChunkSent.Held).
	// Only a source-chunked transfer's chunks other than the last may be
	// held, and a held run stays under domain.MaxHeldBytes. The next
	// SendChunk, given the state that records this chunk, stores it.
	Held bool
}

// Delivery says where a completed transfer's file now is.
type Delivery struct {
	// Ref is the destination's reference for the delivered file (e.g. the
	// S3 object's ETag, a MESH message id). May be "".
	Ref string
	// Location names the delivered file as a URL-like string
	// ("s3://bucket/key", "null://id"). Never "" on success.
	Location string
}
