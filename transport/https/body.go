package https

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"
	"sync"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// chunks streams chunks first..last of a transfer from its source, opening
// each only when the one before it is read to the end, so at most one
// chunk reader is open and no chunk is held in memory. A planned chunk
// that reads longer or shorter than its length fails the read with
// KindConflict (the source changed under the transfer). Read and Close may
// be called concurrently, as net/http requires of a request body.
type chunks struct {
	ctx         context.Context
	src         transport.Source
	t           domain.State
	next, last  int
	lastLength  int64 // bytes read of chunk last (once it is being read)
	mu          sync.Mutex
	cur         io.ReadCloser
	curChunk    domain.Chunk // what cur reads: one chunk, or a planned run of them
	curLast     int          // the last chunk cur reads
	curRead     int64
	closed      bool
	err         error // the first error, sticky
	sourceError bool  // err came from the source or its length check
}

// openChunks returns a reader of chunks first..last of t, having opened the
// first one already, so that a missing source fails here rather than
// inside the HTTP client.
func openChunks(ctx context.Context, src transport.Source, t domain.State, first, last int) (*chunks, error) {
	b := &chunks{ctx: ctx, src: src, t: t, next: first, last: last}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

// open opens chunk b.next or, for a planned transfer, chunks b.next..last
// as one span of the source: one read for the whole body rather than one
// per chunk (each a request to S3). A source-chunked transfer's chunks are
// opened one by one. The caller holds no lock.
func (b *chunks) open() error {
	c, last := b.t.Request.Chunk(b.next), b.next
	if !b.t.Request.SourceChunked() && b.next < b.last {
		end := b.t.Request.Chunk(b.last)
		c.Length, last = end.Offset+end.Length-c.Offset, b.last
	}
	rc, err := b.src.OpenChunk(b.ctx, b.t, c)
	if err != nil {
		return sourceErr(c, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = rc.Close()
		return errors.New("https: body closed")
	}
	b.cur, b.curChunk, b.curLast, b.curRead = rc, c, last, 0
	b.next = last + 1
	return nil
}

func sourceErr(c domain.Chunk, err error) error {
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	return &domain.Error{Kind: domain.KindUnavailable, Message: fmt.Sprintf("read chunk %d from the source", c.Index), Err: err}
}

func (b *chunks) fail(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err, b.sourceError = err, true
	}
	return b.err
}

// Read implements io.Reader.
func (b *chunks) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		cur, c, curLast, closed, err := b.cur, b.curChunk, b.curLast, b.closed, b.err
		b.mu.Unlock()
		switch {
		case err != nil:
			return 0, err
		case closed:
			return 0, errors.New("https: body closed")
		case cur == nil && b.next > b.last:
			return 0, io.EOF
		case cur == nil:
			if err := b.open(); err != nil {
				return 0, b.fail(err)
			}
			continue
		}
		n, rerr := cur.Read(p)
		b.mu.Lock()
		b.curRead += int64(n)
		read := b.curRead
		if curLast == b.last {
			b.lastLength = read
			if c.Offset >= 0 { // a span: the last chunk's share of it
				b.lastLength = max(read-(b.t.Request.Chunk(b.last).Offset-c.Offset), 0)
			}
		}
		b.mu.Unlock()
		if c.Length >= 0 && read > c.Length {
			return 0, b.fail(domain.Errorf(domain.KindConflict, "chunk %d of the source reads longer than its %d bytes", c.Index, c.Length))
		}
		if rerr == io.EOF {
			if c.Length >= 0 && read != c.Length {
				return 0, b.fail(domain.Errorf(domain.KindConflict, "chunk %d of the source read %d bytes, want %d", c.Index, read, c.Length))
			}
			b.mu.Lock()
			b.cur = nil
			b.mu.Unlock()
			if err := cur.Close(); err != nil {
				return 0, b.fail(sourceErr(c, err))
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if rerr != nil {
			return n, b.fail(sourceErr(c, rerr))
		}
		return n, nil
	}
}

// Close closes the open chunk reader, if any.
func (b *chunks) Close() error {
	b.mu.Lock()
	cur := b.cur
	b.cur, b.closed = nil, true
	b.mu.Unlock()
	if cur != nil {
		return cur.Close()
	}
	return nil
}

// sourceErr returns the error reading the source gave, if any.
func (b *chunks) sourceErrOf() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sourceError {
		return b.err
	}
	return nil
}

// lastRead is how many bytes of the last chunk were read.
func (b *chunks) lastRead() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastLength
}

// soapBody wraps a payload in a SOAP envelope as it streams: the head, the
// payload in base64, the tail.
type soapBody struct {
	io.Reader
	payload io.Closer
}

func (s soapBody) Close() error { return s.payload.Close() }

// soapEnvelope returns the text before and after the base64 payload.
func soapEnvelope(s SOAP) (head, tail string) {
	ns := "http://schemas.xmlsoap.org/soap/envelope/"
	if s.Version == "1.2" {
		ns = "http://www.w3.org/2003/05/soap-envelope"
	}
	head = `<?xml version="1.0" encoding="utf-8"?>` +
		`<soap:Envelope xmlns:soap="` + ns + `"><soap:Body>` +
		`<m:` + s.Operation + ` xmlns:m="` + html.EscapeString(s.Namespace) + `"><m:payload>`
	tail = `</m:payload></m:` + s.Operation + `></soap:Body></soap:Envelope>`
	return head, tail
}

// soapContentType returns the Content-Type of s's envelope, and the
// SOAPAction header's value (SOAP 1.1 only; "" otherwise).
func soapContentType(s SOAP) (contentType, action string) {
	if s.Version == "1.2" {
		ct := "application/soap+xml; charset=utf-8"
		if s.Action != "" {
			ct += `; action="` + s.Action + `"`
		}
		return ct, ""
	}
	return "text/xml; charset=utf-8", `"` + s.Action + `"`
}

// wrapSOAP returns body wrapped in s's envelope, and the envelope's length
// when the payload's (n) is known (n < 0: unknown, -1 returned).
func wrapSOAP(s SOAP, body io.ReadCloser, n int64) (io.ReadCloser, int64) {
	head, tail := soapEnvelope(s)
	r := soapBody{Reader: io.MultiReader(strings.NewReader(head), newBase64Reader(body), strings.NewReader(tail)), payload: body}
	if n < 0 {
		return r, -1
	}
	return r, int64(len(head)) + int64(base64.StdEncoding.EncodedLen(int(n))) + int64(len(tail))
}

// base64Reader encodes what it reads from src in standard base64, pulling
// 3 KiB at a time: no goroutine, no pipe.
type base64Reader struct {
	src  io.Reader
	in   [3 << 10]byte
	out  [4 << 10]byte
	pend []byte
	eof  bool
}

func newBase64Reader(src io.Reader) *base64Reader { return &base64Reader{src: src} }

func (r *base64Reader) Read(p []byte) (int, error) {
	for len(r.pend) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		n, err := io.ReadFull(r.src, r.in[:])
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			r.eof = true
		case err != nil:
			return 0, err
		}
		base64.StdEncoding.Encode(r.out[:], r.in[:n])
		r.pend = r.out[:base64.StdEncoding.EncodedLen(n)]
	}
	n := copy(p, r.pend)
	r.pend = r.pend[n:]
	return n, nil
}
