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

// readAheadTTL is how long a chunk read ahead waits to be sent before it is
// dropped (its transfer failed, was cancelled or moved to another process).
const readAheadTTL = 30 * time.Second

// ahead is one chunk being, or having been, read ahead into memory.
type ahead struct {
	key  aheadKey
	done chan struct{} // closed when buf and err are set
	buf  []byte
	err  error

	cancel context.CancelFunc
	timer  *time.Timer
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
// that counts.
func (o *Outbound) openChunk(ctx context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	if a := o.take(keyOf(t, c)); a != nil {
		select {
		case <-a.done:
		case <-ctx.Done():
			o.drop(a)
			return nil, &domain.Error{Kind: domain.KindUnavailable, Message: "mesh: waiting for a chunk read ahead", Err: ctx.Err()}
		}
		if a.err == nil {
			return &aheadBody{Reader: bytes.NewReader(a.buf), o: o, a: a}, nil
		}
		o.drop(a)
	}
	return o.Source.OpenChunk(ctx, t, c)
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

// readAhead starts reading chunk next of t into memory, unless a slot is
// not free or the transfer already has a chunk read ahead. It never
// blocks.
func (o *Outbound) readAhead(ctx context.Context, t domain.State, next domain.Chunk) {
	if next.Length <= 0 || o.readAheadLimit() == 0 {
		return
	}
	o.mu.Lock()
	if o.slots == nil {
		o.slots = make(chan struct{}, o.readAheadLimit())
		o.ahead = map[string]*ahead{}
	}
	if _, busy := o.ahead[t.ID]; busy {
		o.mu.Unlock()
		return
	}
	select {
	case o.slots <- struct{}{}:
	default:
		o.mu.Unlock()
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
		body, err := o.Source.OpenChunk(rctx, t, next)
		if err == nil {
			_, err = io.ReadFull(body, buf)
			_ = body.Close()
		}
		a.buf, a.err = buf, err
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

// release returns a finished read ahead's buffer and slot.
func (o *Outbound) release(a *ahead) {
	a.cancel()
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
