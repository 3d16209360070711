package azblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// The block blob limits that bound a transfer's plan.
const (
	// MaxBlocks is the most blocks a committed block blob may have, and so
	// the most chunks of a transfer.
	MaxBlocks = 50000
	// MaxBlockSize is the largest block, and so the largest chunk.
	MaxBlockSize = 4000 * domain.MiB
)

// MetadataTransferID is the metadata name (x-ms-meta-ferrytransferid)
// holding the transfer id on every delivered blob. Azure metadata names
// are C# identifiers, hence no hyphens.
const MetadataTransferID = "ferrytransferid"

// memoryLimit is the largest chunk SendChunk keeps in memory; a larger one
// is spooled to a temporary file.
const memoryLimit = 1 << 20

// Transport delivers to Azure Blob Storage. It keeps no state between
// calls but a cache of one client per endpoint, and is safe for concurrent
// use.
type Transport struct {
	endpoints map[string]Endpoint
	secrets   transport.Secrets
	source    transport.Source

	mu      sync.Mutex
	clients map[string]*client
}

var _ transport.Transport = (*Transport)(nil)

// client is what every call to one endpoint shares, its credential
// resolved once. It makes a block blob client per blob, which costs no
// I/O (the SDK's HTTP client, and its connections, are shared). The SDK's
// container client would make them too, but it brings Apache Arrow into
// the binary (some 3 MB).
type client struct {
	containerURL string
	sas          string                    // the SAS token's query, or ""
	cred         *blob.SharedKeyCredential // or nil, with a SAS
}

// clientOptions are every client's: the SDK retries a failed call twice,
// briefly, since ferry retries the step itself, later, on KindUnavailable.
var clientOptions = &blockblob.ClientOptions{ClientOptions: azcore.ClientOptions{
	Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second},
}}

// blockBlob returns a client of the blob name in c's container.
func (c *client) blockBlob(name string) (*blockblob.Client, error) {
	u := runtime.JoinPaths(c.containerURL, url.PathEscape(name))
	if c.cred != nil {
		return blockblob.NewClientWithSharedKeyCredential(u, c.cred, clientOptions)
	}
	return blockblob.NewClientWithNoCredential(u+"?"+c.sas, clientOptions)
}

// New returns a transport delivering to endpoints (as ParseEndpoints
// returns them), resolving their credentials with secrets on first use and
// reading every chunk from source.
func New(endpoints map[string]Endpoint, secrets transport.Secrets, source transport.Source) *Transport {
	return &Transport{endpoints: endpoints, secrets: secrets, source: source, clients: map[string]*client{}}
}

// BlobName returns the name of transfer t's blob after the endpoint's
// prefix: its route's filename template expanded with safe values
// (transport.DeliveredName), the upload's own name by default.
func BlobName(t domain.State) string {
	return transport.DeliveredName(t)
}

// BlockID returns the base64 block id of chunk index of the transfer with
// id transferID: "ferry-" + 16 hex digits of the id's SHA-256 + "-" + the
// index in six digits. Every id has the same length, as Azure requires of
// a blob's blocks, the same chunk always gets the same id (re-staging it
// replaces the block), and two transfers to the same blob name never share
// a block.
func BlockID(transferID string, index int) string {
	sum := sha256.Sum256([]byte(transferID))
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "ferry-%x-%06d", sum[:8], index))
}

// Location returns "azblob://ACCOUNT/CONTAINER/BLOB" for the blob name of
// transfer t at endpoint e.
func Location(e Endpoint, t domain.State) string {
	return "azblob://" + e.Account + "/" + e.Container + "/" + e.Prefix + BlobName(t)
}

// endpoint returns t's endpoint and a client of it, made on first use.
// Errors: KindInvalid for a destination that is not a known azblob
// endpoint or a transfer whose plan breaks block blob limits, and the
// secret resolver's errors.
func (tr *Transport) endpoint(ctx context.Context, t domain.State) (Endpoint, *client, error) {
	d, r := t.Request.Destination, t.Request
	e, ok := tr.endpoints[d.Endpoint]
	switch {
	case d.Type != "azblob":
		return e, nil, domain.Errorf(domain.KindInvalid, "azblob: transfer %s has destination type %q", t.ID, d.Type)
	case !ok:
		return e, nil, domain.Errorf(domain.KindInvalid, "azblob: transfer %s names endpoint %q, which the azblob section does not define", t.ID, d.Endpoint)
	case r.Chunks < 1 || r.Chunks > MaxBlocks:
		return e, nil, domain.Errorf(domain.KindInvalid, "azblob: transfer %s has %d chunks; a block blob has 1 to %d blocks", t.ID, r.Chunks, MaxBlocks)
	case r.ChunkSize > MaxBlockSize:
		return e, nil, domain.Errorf(domain.KindInvalid, "azblob: transfer %s has chunks of %d bytes; a block holds at most %d", t.ID, r.ChunkSize, MaxBlockSize)
	}
	tr.mu.Lock()
	c, ok := tr.clients[d.Endpoint]
	tr.mu.Unlock()
	if ok {
		return e, c, nil
	}
	c, err := tr.newClient(ctx, d.Endpoint, e)
	if err != nil {
		return e, nil, err
	}
	tr.mu.Lock()
	tr.clients[d.Endpoint] = c
	tr.mu.Unlock()
	return e, c, nil
}

// newClient resolves e's credential and returns a client of its container.
func (tr *Transport) newClient(ctx context.Context, name string, e Endpoint) (*client, error) {
	op := fmt.Sprintf("azblob: endpoint %s", name)
	c := &client{containerURL: runtime.JoinPaths(e.ServiceURL, url.PathEscape(e.Container))}
	if e.SAS != "" {
		sas, err := tr.secrets.Resolve(ctx, e.SAS)
		if err != nil {
			return nil, classify(op+": sas "+e.SAS, err)
		}
		c.sas = strings.TrimPrefix(strings.TrimSpace(string(sas)), "?")
		if _, err := url.ParseQuery(c.sas); err != nil || c.sas == "" {
			return nil, domain.Errorf(domain.KindInvalid, "%s: the SAS token %s is not a URL query", op, e.SAS)
		}
	} else {
		key, err := tr.secrets.Resolve(ctx, e.SharedKey)
		if err != nil {
			return nil, classify(op+": sharedKey "+e.SharedKey, err)
		}
		if c.cred, err = blob.NewSharedKeyCredential(e.Account, strings.TrimSpace(string(key))); err != nil {
			return nil, domain.Errorf(domain.KindInvalid, "%s: the shared key %s is not an account key (base64)", op, e.SharedKey)
		}
	}
	if _, err := c.blockBlob("ferry"); err != nil {
		return nil, domain.Errorf(domain.KindInvalid, "%s: %v", op, err)
	}
	return c, nil
}

// Begin checks that t can be delivered (a known azblob endpoint, a plan
// within block blob limits) and that the endpoint's credential resolves.
// It touches no blob and returns "": blocks are staged under ids derived
// from t alone. Errors: KindInvalid, or the secret resolver's.
func (tr *Transport) Begin(ctx context.Context, t domain.State) (string, error) {
	_, _, err := tr.endpoint(ctx, t)
	return "", err
}

// SendChunk reads chunk c from the source and stages it as the block
// BlockID(t.ID, c.Index) of t's blob, with its MD5 for the service to check.
// Staging the same chunk again replaces the block with the same bytes. An
// empty chunk (only an empty file has one) is read, to check the source,
// and stages nothing. Sent.Ref is the block id.
//
// A chunk of up to 1 MiB is read into memory, a larger one into a
// temporary file: the SDK needs a seekable body of known length (it
// retries by seeking back), and a decompressed source chunk's length is
// known only at its end.
//
// Errors: KindInvalid for a chunk not in t's plan; KindConflict for a
// source that reads longer or shorter than the chunk; the source's errors;
// the service's as classify says (KindNotFound for a missing container,
// KindUnauthorized for a refused credential, KindUnavailable for a service
// down or throttling).
func (tr *Transport) SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error) {
	e, cc, err := tr.endpoint(ctx, t)
	if err != nil {
		return transport.Sent{}, err
	}
	if c.Index < 1 || c.Index > t.Request.Chunks || c != t.Request.Chunk(c.Index) {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "azblob: chunk %+v is not chunk %d of transfer %s's plan", c, c.Index, t.ID)
	}
	op := fmt.Sprintf("azblob: stage chunk %d of %d of %s to %s", c.Index, t.Request.Chunks, t.ID, Location(e, t))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.Timeout))
	defer cancel()
	b, err := tr.read(ctx, t, c, op)
	if err != nil {
		return transport.Sent{}, err
	}
	defer b.Close()
	if b.n == 0 {
		return transport.Sent{}, nil
	}
	bb, err := cc.blockBlob(e.Prefix + BlobName(t))
	if err != nil {
		return transport.Sent{}, domain.Errorf(domain.KindInternal, "%s: %v", op, err)
	}
	id := BlockID(t.ID, c.Index)
	_, err = bb.StageBlock(ctx, id, b.body(), &blockblob.StageBlockOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(b.md5),
	})
	if err != nil {
		return transport.Sent{}, classify(op, err)
	}
	return transport.Sent{Ref: id, Bytes: b.n}, nil
}

// chunkBody is one chunk's bytes, in memory or in a temporary file.
type chunkBody struct {
	mem []byte
	f   *os.File
	n   int64
	md5 []byte
}

func (b *chunkBody) body() io.ReadSeekCloser {
	if b.f != nil {
		return streaming.NopCloser(io.NewSectionReader(b.f, 0, b.n))
	}
	return streaming.NopCloser(bytes.NewReader(b.mem))
}

// Close removes the temporary file, if any.
func (b *chunkBody) Close() {
	if b.f != nil {
		_ = b.f.Close()
		_ = os.Remove(b.f.Name())
	}
}

// read reads chunk c from the source, keeping it in memory up to
// memoryLimit bytes and spooling it to a temporary file beyond, and checks
// its length against the plan.
func (tr *Transport) read(ctx context.Context, t domain.State, c domain.Chunk, op string) (*chunkBody, error) {
	if tr.source == nil {
		return nil, domain.Errorf(domain.KindInvalid, "%s: the transport has no source to read chunks from", op)
	}
	rc, err := tr.source.OpenChunk(ctx, t, c)
	if err != nil {
		return nil, classify(op+": open the source", err)
	}
	defer rc.Close()
	limit := int64(MaxBlockSize)
	if c.Length >= 0 {
		limit = c.Length
	}
	// One byte more than allowed tells a source that grew.
	h := md5.New()
	r := io.TeeReader(io.LimitReader(rc, limit+1), h)
	b := &chunkBody{}
	head, err := io.ReadAll(io.LimitReader(r, memoryLimit+1))
	b.mem, b.n = head, int64(len(head))
	if err == nil && len(head) > memoryLimit {
		b.mem = nil
		if b.f, err = os.CreateTemp("", "ferry-azblob-"); err != nil {
			return nil, &domain.Error{Kind: domain.KindUnavailable, Message: op + ": spool", Err: err}
		}
		if _, err = b.f.Write(head); err == nil {
			var m int64
			m, err = io.Copy(b.f, r)
			b.n += m
		}
	}
	if err != nil {
		b.Close()
		var de *domain.Error
		if errors.As(err, &de) {
			return nil, classify(op+": read the source", err)
		}
		return nil, &domain.Error{Kind: domain.KindUnavailable, Message: op + ": read the source", Err: err}
	}
	b.md5 = h.Sum(nil)
	if b.n > limit {
		b.Close()
		if c.Length >= 0 {
			return nil, domain.Errorf(domain.KindConflict, "%s: the source holds more than the chunk's %d bytes", op, c.Length)
		}
		return nil, domain.Errorf(domain.KindInvalid, "%s: the chunk holds more than %d bytes, a block's most", op, limit)
	}
	if c.Length >= 0 && b.n != c.Length {
		b.Close()
		return nil, domain.Errorf(domain.KindConflict, "%s: the source read %d bytes, the chunk has %d", op, b.n, c.Length)
	}
	return b, nil
}

// Complete commits t's blocks, in chunk order, as t's blob, with the
// metadata ferrytransferid=t.ID, and returns Delivery{Ref: the blob's ETag,
// Location: "azblob://ACCOUNT/CONTAINER/BLOB"}. It first checks that the
// blocks staged are exactly t's chunks (every chunk with bytes, planned
// sizes, t's size in all). When the blob is already committed from exactly
// these blocks and carries t's id (an earlier Complete succeeded), it
// returns the same Delivery without committing again.
//
// Errors: KindNotFound when a chunk's block is missing (uncommitted blocks
// are discarded after a week, or when another upload commits the blob),
// KindInvalid when a block's size is not its chunk's; the service's errors
// as classify says.
func (tr *Transport) Complete(ctx context.Context, t domain.State) (transport.Delivery, error) {
	e, cc, err := tr.endpoint(ctx, t)
	if err != nil {
		return transport.Delivery{}, err
	}
	loc := Location(e, t)
	op := fmt.Sprintf("azblob: commit %s to %s", t.ID, loc)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(e.Timeout))
	defer cancel()
	bb, err := cc.blockBlob(e.Prefix + BlobName(t))
	if err != nil {
		return transport.Delivery{}, domain.Errorf(domain.KindInternal, "%s: %v", op, err)
	}
	exists := true
	list, err := bb.GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if isCode(err, "BlobNotFound") {
		exists = false
	} else if err != nil {
		return transport.Delivery{}, classify(op+": list blocks", err)
	}
	committed := blockSizes(list.CommittedBlocks)
	uncommitted := blockSizes(list.UncommittedBlocks)
	ids, err := plan(t, committed, uncommitted)
	if err != nil {
		return transport.Delivery{}, err
	}
	if exists && !anyOf(ids, uncommitted) && slices.Equal(names(list.CommittedBlocks), ids) {
		p, err := bb.GetProperties(ctx, nil)
		if err != nil {
			return transport.Delivery{}, classify(op+": read the blob", err)
		}
		if metadata(p.Metadata, MetadataTransferID) == t.ID && p.ETag != nil {
			return transport.Delivery{Ref: string(*p.ETag), Location: loc}, nil
		}
	}
	id := t.ID
	out, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{
		Metadata: map[string]*string{MetadataTransferID: &id},
	})
	if err != nil {
		return transport.Delivery{}, classify(op, err)
	}
	if out.ETag == nil {
		return transport.Delivery{}, domain.Errorf(domain.KindInternal, "%s: no ETag returned", op)
	}
	return transport.Delivery{Ref: string(*out.ETag), Location: loc}, nil
}

// plan returns the block ids to commit for t, in chunk order: each chunk's
// block, found uncommitted or committed. It fails when a chunk with bytes
// has no block, a block's size is not its chunk's, or the blocks' sizes do
// not add up to t's size.
func plan(t domain.State, committed, uncommitted map[string]int64) ([]string, error) {
	r := t.Request
	var ids []string
	var missing []int
	var total int64
	for i := 1; i <= r.Chunks; i++ {
		id := BlockID(t.ID, i)
		size, ok := uncommitted[id]
		if !ok {
			size, ok = committed[id]
		}
		want := r.Chunk(i).Length
		switch {
		case !ok && want != 0:
			// A source-chunked transfer's chunk (want -1) may have been
			// empty; the total tells.
			if want > 0 {
				missing = append(missing, i)
			}
			continue
		case !ok:
			continue
		case want >= 0 && size != want:
			return nil, domain.Errorf(domain.KindInvalid, "azblob: transfer %s: the block of chunk %d has %d bytes, the chunk %d", t.ID, i, size, want)
		}
		ids = append(ids, id)
		total += size
	}
	if len(missing) > 0 {
		return nil, domain.Errorf(domain.KindNotFound, "azblob: transfer %s: the blocks of chunks %v are not staged (uncommitted blocks are discarded after a week, or when another upload commits the blob)", t.ID, shorten(missing))
	}
	if total != t.Size() {
		return nil, domain.Errorf(domain.KindNotFound, "azblob: transfer %s: the staged blocks hold %d bytes, the transfer %d", t.ID, total, t.Size())
	}
	return ids, nil
}

// shorten keeps the first ten of a list of chunk indices.
func shorten(s []int) []int {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func blockSizes(bs []*blockblob.Block) map[string]int64 {
	m := make(map[string]int64, len(bs))
	for _, b := range bs {
		if b != nil && b.Name != nil {
			var n int64
			if b.Size != nil {
				n = *b.Size
			}
			m[*b.Name] = n
		}
	}
	return m
}

func names(bs []*blockblob.Block) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		if b != nil && b.Name != nil {
			out = append(out, *b.Name)
		}
	}
	return out
}

// anyOf reports whether any of ids is a key of m.
func anyOf(ids []string, m map[string]int64) bool {
	for _, id := range ids {
		if _, ok := m[id]; ok {
			return true
		}
	}
	return false
}

// metadata looks k up in blob metadata, whose names come back in any case.
func metadata(m map[string]*string, k string) string {
	for mk, v := range m {
		if strings.EqualFold(mk, k) && v != nil {
			return *v
		}
	}
	return ""
}
