package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Outbound sends transfers to MESH: the transport of routes whose
// destination type is "mesh". The sending mailbox is the transfer's
// sender, the recipient its recipient (both checked at intake); chunk n of
// the file is MESH chunk n, gzip-compressed on the way when the transfer
// says so.
//
// While chunk n is being sent, chunk n+1 is read from the Source into
// memory, so reading the file and sending it overlap; at most ReadAhead
// chunks are held so across all transfers (one per transfer), and a chunk
// nobody asks for within 30 seconds is dropped; chunks over
// MaxReadAheadChunk are not read ahead. A chunk read ahead goes with
// its Content-Length. For an S3 source one read (ranged GET) spans up to 8
// chunks, taken from it one chunk at a time as they are read ahead.
type Outbound struct {
	Clients map[string]*Client // by sending mailbox id
	Source  transport.Source   // reads the file's chunks (S3 ranged GETs)
	// ReadAhead bounds the chunks read ahead at once (0 means
	// DefaultReadAhead; negative turns reading ahead off).
	ReadAhead int

	mu    sync.Mutex
	ahead map[string]*ahead // by transfer id
	slots chan struct{}     // one per chunk read ahead
	free  [][]byte          // buffers to reuse
}

var _ transport.Transport = (*Outbound)(nil)

func (o *Outbound) client(mailbox string) (*Client, error) {
	c, ok := o.Clients[strings.ToUpper(mailbox)]
	if !ok {
		return nil, domain.Errorf(domain.KindInvalid, "mesh: no credentials for mailbox %q", mailbox)
	}
	return c, nil
}

// Begin makes sure the sending mailbox has handshaken with MESH today
// (Client.EnsureHandshake: once a day per mailbox, shared with meshpoll and,
// through the client's HandshakeRecord, with other processes) and returns
// "": the MESH message id arrives with the first chunk.
func (o *Outbound) Begin(ctx context.Context, t domain.State) (string, error) {
	c, err := o.client(t.Request.Sender)
	if err != nil {
		return "", err
	}
	return "", c.EnsureHandshake(ctx)
}

// SendChunk streams chunk c of the file to MESH. Chunk 1 creates the
// message and returns its id as the chunk's Ref. MESH refuses a chunk of a
// message it has already finalised (423); since chunks go strictly in
// order, that can only be a repeat of a chunk MESH already has, so it counts
// as sent.
func (o *Outbound) SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error) {
	cl, err := o.client(t.Request.Sender)
	if err != nil {
		return transport.Sent{}, err
	}
	if c.Index > 1 && t.Ref == "" {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "mesh: chunk %d of %s before its message exists", c.Index, t.ID)
	}
	body, stream, err := o.openChunk(ctx, t, c)
	if err != nil {
		return transport.Sent{}, err
	}
	defer body.Close()
	r := t.Request
	if c.Index < r.Chunks && !r.SourceChunked() {
		o.readAhead(ctx, t, r.Chunk(c.Index+1), stream)
	} else {
		stream.close()
	}
	if c.Index == 1 {
		id, err := cl.Send(ctx, MessageOf(r), 1, r.Chunks, body, r.Compress)
		if err != nil {
			return transport.Sent{}, err
		}
		return transport.Sent{Ref: id, Bytes: c.Length}, nil
	}
	err = cl.SendChunk(ctx, t.Ref, c.Index, r.Chunks, body, r.Compress)
	if domain.KindOf(err) == domain.KindConflict {
		err = nil // 423: already finalised with this chunk
	}
	if err != nil {
		return transport.Sent{}, err
	}
	return transport.Sent{Ref: t.Ref, Bytes: c.Length}, nil
}

// Complete returns the MESH message as the delivery: MESH finalises a
// message with its last chunk.
func (o *Outbound) Complete(_ context.Context, t domain.State) (transport.Delivery, error) {
	if t.Ref == "" {
		return transport.Delivery{}, domain.Errorf(domain.KindInvalid, "mesh: transfer %s has no MESH message id", t.ID)
	}
	return transport.Delivery{Ref: t.Ref, Location: "mesh://" + t.Request.Recipient + "/" + t.Ref}, nil
}

// Track asks MESH whether the recipient has acknowledged the message.
// "acknowledged" is success; "undeliverable" and "error" are the far
// end's refusal.
func (o *Outbound) Track(ctx context.Context, t domain.State) (transport.Tracking, error) {
	cl, err := o.client(t.Request.Sender)
	if err != nil {
		return transport.Tracking{}, err
	}
	tr, err := cl.Track(ctx, t.Ref)
	if err != nil {
		return transport.Tracking{}, err
	}
	switch tr.Status {
	case StatusAcknowledged:
		return transport.Tracking{Acknowledged: true, By: t.Request.Recipient}, nil
	case StatusUndeliverable, StatusError:
		code := tr.StatusCode
		if code == "" {
			code = tr.Status
		}
		return transport.Tracking{Failure: &domain.Error{Kind: domain.KindInvalid, Code: code,
			Message: fmt.Sprintf("MESH reports message %s %s: %s", t.Ref, tr.Status, tr.StatusDescription)}}, nil
	}
	return transport.Tracking{}, nil
}

// MessageOf builds the MESH headers of a transfer as Outbound sends them:
// mex-* metadata as NHS England's client reads them, ferry's own names as a
// fallback. Intake uses it to refuse, before anything is sent, what Send
// would refuse (see Message.NotLatin1).
func MessageOf(r domain.Requested) Message {
	md := func(keys ...string) string {
		for _, k := range keys {
			if v := r.Metadata[k]; v != "" {
				return v
			}
		}
		return ""
	}
	return Message{
		To:         r.Recipient,
		WorkflowID: r.Workflow,
		Subject:    md("mex-subject", "subject"),
		LocalID:    md("mex-localid", "localid"),
		FileName:   r.Filename,
		Checksum:   md("mex-content-checksum"),
		Encrypted:  truthy(md("mex-content-encrypted")),
		Compressed: truthy(md("mex-content-compressed")),
	}
}

// Inbound reads MESH inbox messages for delivery elsewhere (the source of
// inbound transfers) and acknowledges them once delivered. At most
// MaxConcurrency chunks download at once per mailbox (default 4).
type Inbound struct {
	Clients        map[string]*Client // by receiving mailbox id
	MaxConcurrency int

	mu   sync.Mutex
	sems map[string]chan struct{}
}

var _ transport.Source = (*Inbound)(nil)

func (in *Inbound) sem(mailbox string) chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sems == nil {
		in.sems = map[string]chan struct{}{}
	}
	s, ok := in.sems[mailbox]
	if !ok {
		n := in.MaxConcurrency
		if n <= 0 {
			n = 4
		}
		s = make(chan struct{}, n)
		in.sems[mailbox] = s
	}
	return s
}

// OpenChunk downloads chunk c of the transfer's MESH message, decompressed.
// A REPORT has no data: its one chunk is its headers as JSON, as NHS
// England's client lands it (.ctl).
func (in *Inbound) OpenChunk(ctx context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	src := t.Request.Source
	cl, ok := in.Clients[strings.ToUpper(src.Mailbox)]
	if !ok {
		return nil, domain.Errorf(domain.KindInvalid, "mesh: no credentials for mailbox %q", src.Mailbox)
	}
	if strings.EqualFold(t.Request.Metadata["mex-messagetype"], MessageTypeReport) {
		b, err := json.MarshalIndent(t.Request.Metadata, "", "  ")
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	sem := in.sem(cl.Mailbox())
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, &domain.Error{Kind: domain.KindUnavailable, Message: "mesh: waiting for a download slot", Err: ctx.Err()}
	}
	d, err := cl.Download(ctx, src.MessageID, c.Index)
	if err != nil {
		<-sem
		return nil, err
	}
	return &release{ReadCloser: d.Body, sem: sem}, nil
}

// Acknowledge tells MESH the message is safely delivered.
func (in *Inbound) Acknowledge(ctx context.Context, t domain.State) error {
	cl, ok := in.Clients[strings.ToUpper(t.Request.Source.Mailbox)]
	if !ok {
		return domain.Errorf(domain.KindInvalid, "mesh: no credentials for mailbox %q", t.Request.Source.Mailbox)
	}
	return cl.Acknowledge(ctx, t.Request.Source.MessageID)
}

// release frees a download slot when the body is closed.
type release struct {
	io.ReadCloser
	sem  chan struct{}
	once sync.Once
}

func (r *release) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(func() { <-r.sem })
	return err
}
