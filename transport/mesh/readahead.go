package mesh

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// DefaultReadAhead is how many chunks an Outbound reads ahead at most at
// once, across all its transfers, when ReadAhead is zero.
const DefaultReadAhead = 2

// MaxReadAheadChunk is the largest chunk read ahead into memory; larger
// ones are streamed as they are sent, so that ReadAhead buffers fit a small
// function's memory (the Lambda functions have 256 MB) whatever the route's
// chunk size.
const MaxReadAheadChunk = 32 << 20

// readAheadTTL is how long a chunk read ahead waits to be sent before it is
// dropped (its transfer failed, was cancelled or moved to another process).
const readAheadTTL = 30 * time.Second

// readAheadSpan is how many chunks one source read spans at most: reading
// ahead asks the source once for the next several chunks and takes them
// from that one stream a chunk at a time, so a transfer costs one ranged
// GET per few chunks rather than one per chunk (each GET costs S3's
// first-byte latency; the local emulator even reads the whole object for
// each).
const readAheadSpan = 8

// streamTTL bounds how long one spanning read stays open.
const streamTTL = 5 * time.Minute

// ahead is one chunk being, or having been, read ahead into memory.
type ahead struct {
	key  aheadKey
	done chan struct{} // closed when buf, err and stream are set
	buf  []byte
	err  error
	// stream, when not nil, continues with the bytes after this chunk, up
	// to its end; the next chunk's read ahead takes it over.
	stream *span

	cancel context.CancelFunc
	timer  *time.Timer
}

// span is an open read of several chunks of a source, positioned at pos.
type span struct {
	body     io.ReadCloser
	pos, end int64 // next byte it yields; the byte after its last
	cancel   context.CancelFunc
}

func (s *span) close() {
	if s != nil {
		_ = s.body.Close()
		s.cancel()
	}
}

// streamFor returns a span positioned at c: prev when it is, else a new
// read of c and up to readAheadSpan-1 chunks after it. prev, when not
// used, is closed.
func (o *Outbound) streamFor(ctx context.Context, t domain.State, c domain.Chunk, prev *span) (*span, error) {
	if prev != nil && prev.pos == c.Offset && prev.end >= c.Offset+c.Length {
		return prev, nil
	}
	prev.close()
	r := t.Request
	length := c.Length
	if r.Source.Kind == "s3" && r.ChunkSize > 0 {
		length = min(int64(readAheadSpan)*r.ChunkSize, r.Size-c.Offset)
		length = max(length, c.Length)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streamTTL)
	body, err := o.Source.OpenChunk(sctx, t, domain.Chunk{Index: c.Index, Offset: c.Offset, Length: length})
	if err != nil {
		cancel()
		return nil, err
	}
	return &span{body: body, pos: c.Offset, end: c.Offset + length, cancel: cancel}, nil
}

// aheadKey names exactly which bytes were read: a chunk of one version of
// one transfer's source.
type aheadKey struct {
	transfer string
	source   domain.Source
	chunk    domain.Chunk
}

func keyOf(t domain.State, c domain.Chunk) aheadKey {
	return aheadKey{transfer: t.ID, source: t.Request.Source, chunk: c}
}

// readAheadLimit returns the number of read-ahead slots (0: none).
func (o *Outbound) readAheadLimit() int {
	switch {
	case o.ReadAhead < 0:
		return 0
	case o.ReadAhead == 0:
		return DefaultReadAhead
	}
	return o.ReadAhead
}

// openChunk returns chunk c of t's file: from memory when it was read
// ahead, else streamed from the Source. A read ahead that failed is not an
// error: the chunk is then read again, and that read's error is the one
// that counts. stream is the open spanning read that continues after c,
// if any, for the next read ahead.
func (o *Outbound) openChunk(ctx context.Context, t domain.State, c domain.Chunk) (body io.ReadCloser, stream *span, err error) {
	if a := o.take(keyOf(t, c)); a != nil {
		select {
		case <-a.done:
		case <-ctx.Done():
			o.drop(a)
			return nil, nil, &domain.Error{Kind: domain.KindUnavailable, Message: "mesh: waiting for a chunk read ahead", Err: ctx.Err()}
		}
		if a.err == nil {
			stream, a.stream = a.stream, nil
			return &aheadBody{Reader: bytes.NewReader(a.buf), o: o, a: a}, stream, nil
		}
		o.drop(a)
	}
	body, err = o.Source.OpenChunk(ctx, t, c)
	return body, nil, err
}

// take removes and returns the read ahead of t's chunk if it is the one
// key names; a read ahead of another chunk of the transfer is dropped.
func (o *Outbound) take(key aheadKey) *ahead {
	o.mu.Lock()
	a := o.ahead[key.transfer]
	if a == nil {
		o.mu.Unlock()
		return nil
	}
	delete(o.ahead, key.transfer)
	o.mu.Unlock()
	a.timer.Stop()
	if a.key != key {
		o.drop(a)
		return nil
	}
	return a
}

// readAhead starts reading chunk next of t into memory, from stream when
// it is positioned there, unless a slot is not free or the transfer already
// has a chunk read ahead. It never blocks. It takes stream over: it is
// closed when not used.
func (o *Outbound) readAhead(ctx context.Context, t domain.State, next domain.Chunk, stream *span) {
	if next.Length <= 0 || next.Length > MaxReadAheadChunk || o.readAheadLimit() == 0 {
		stream.close()
		return
	}
	o.mu.Lock()
	if o.slots == nil {
		o.slots = make(chan struct{}, o.readAheadLimit())
		o.ahead = map[string]*ahead{}
	}
	if _, busy := o.ahead[t.ID]; busy {
		o.mu.Unlock()
		stream.close()
		return
	}
	select {
	case o.slots <- struct{}{}:
	default:
		o.mu.Unlock()
		stream.close()
		return // every slot in use: this chunk will be streamed
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readAheadTTL)
	a := &ahead{key: keyOf(t, next), done: make(chan struct{}), cancel: cancel}
	a.timer = time.AfterFunc(readAheadTTL, func() {
		o.mu.Lock()
		mine := o.ahead[t.ID] == a
		if mine {
			delete(o.ahead, t.ID)
		}
		o.mu.Unlock()
		if mine {
			o.drop(a)
		}
	})
	o.ahead[t.ID] = a
	o.mu.Unlock()

	go func() {
		defer close(a.done)
		buf := o.buffer(next.Length)
		s, err := o.streamFor(rctx, t, next, stream)
		if err == nil {
			_, err = io.ReadFull(s.body, buf)
			s.pos += next.Length
			if err != nil || s.pos >= s.end {
				s.close()
				s = nil
			}
		}
		a.buf, a.err, a.stream = buf, err, s
	}()
}

// drop discards a read ahead (once it has finished) and frees its slot.
func (o *Outbound) drop(a *ahead) {
	a.cancel()
	go func() {
		<-a.done
		o.release(a)
	}()
}

// release returns a finished read ahead's buffer and slot, and closes the
// stream it still holds.
func (o *Outbound) release(a *ahead) {
	a.cancel()
	a.stream.close()
	a.stream = nil
	o.mu.Lock()
	if a.buf != nil && len(o.free) < o.readAheadLimit() {
		o.free = append(o.free, a.buf[:0])
	}
	a.buf = nil
	o.mu.Unlock()
	<-o.slots
}

// buffer returns a buffer of n bytes, reusing a released one when it is
// large enough, so that memory stays at about ReadAhead chunks.
func (o *Outbound) buffer(n int64) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, b := range o.free {
		if int64(cap(b)) >= n {
			o.free = append(o.free[:i], o.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// aheadBody is a chunk read ahead, sent from memory; closing it frees its
// slot and buffer.
type aheadBody struct {
	*bytes.Reader
	o    *Outbound
	a    *ahead
	once sync.Once
}

func (b *aheadBody) Close() error {
	b.once.Do(func() { b.o.release(b.a) })
	return nil
}
