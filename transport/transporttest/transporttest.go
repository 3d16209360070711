// Package transporttest is the contract every transport.Transport meets,
// written once and run by each implementation against its real peer (S3 on
// moto, a MESH sandbox, an SFTP server…).
//
// An implementation's test builds a Harness and calls Run:
//
//	func TestContract(t *testing.T) {
//		transporttest.Run(t, transporttest.Harness{
//			Transport: tr, ChunkSize: 5 * domain.MiB, ...,
//			Features:  transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
//		})
//	}
//
// A transport declares in Features what its protocol can offer, as
// watermill's tests.Features do for its Pub/Subs; the suite skips, saying
// why, only the cases that need what a transport declares it cannot do.
package transporttest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Harness connects the contract suite to one transport and its peer.
type Harness struct {
	// Transport is the implementation under test.
	Transport transport.Transport
	// ChunkSize is the chunk size of every transfer the suite makes; payload
	// sizes are chosen from it (three chunks and a bit, two exact chunks,
	// one short chunk, empty). It must satisfy the transport's minimum.
	ChunkSize int64
	// NewTransfer stores src (exactly size bytes) as a new source object and
	// returns a transfer ready to begin: ID id, status in progress, and a
	// Request with Source, Destination, Size, ChunkSize (the harness's) and
	// Chunks filled in. NewState builds one from a Requested.
	NewTransfer func(t *testing.T, id string, src io.ReadSeeker, size int64) domain.State
	// Received opens what the destination holds for st after Complete
	// returned d. Nil when the transport keeps no bytes to read back (the
	// null transport): the suite then checks everything but the bytes.
	Received func(t *testing.T, st domain.State, d transport.Delivery) io.ReadCloser
	// DeleteSource removes st's source object. Nil when the transport never
	// reads its source (the null transport): the suite then leaves out the
	// missing-source cases.
	DeleteSource func(t *testing.T, st domain.State)
	// Features says what the transport's protocol offers. Declare each
	// feature: a false one skips the cases that need it.
	Features Features
}

// Features are the behaviours of the contract that a protocol may be unable
// to offer. The zero Features offers none of them; a transport that can
// offer one declares it true so that the suite holds it to it.
type Features struct {
	// IdempotentFirstChunk says that chunk 1 can be sent again, at any
	// time, and leave the same result, as every later chunk can. It is false
	// when the first chunk creates and names the destination object: MESH
	// makes a new message of every first chunk (and a later chunk cannot go
	// before it, since it needs the message id that the first chunk's
	// response carries). The advance handler never re-sends chunk 1 once
	// ChunkSent 1 is recorded; a crash between MESH's response and that
	// append leaves a second message (incomplete and never delivered for a
	// file of several chunks, delivered twice for a single-chunk one).
	IdempotentFirstChunk bool
	// EmptyFile says that a file of no bytes (one empty chunk) can be
	// delivered. It is false for MESH, which refuses a message without
	// data (HTTP 417, error "02": data file is missing), a final
	// domain.KindInvalid failure of the transfer.
	EmptyFile bool
}

// needs skips t unless the transport offers the feature (ok), saying why.
func needs(t *testing.T, ok bool, feature, why string) {
	t.Helper()
	if !ok {
		t.Skipf("the transport declares Features{%s: false}: this case %s", feature, why)
	}
}

// NewState returns the state of a transfer just requested with r, exactly
// as the aggregate folds it (Chunks computed from Size and ChunkSize). It
// fails the test if the domain refuses r.
func NewState(t testing.TB, id string, r domain.Requested) domain.State {
	t.Helper()
	evs, err := domain.Decide(domain.State{}, domain.Request{Requested: r}, time.Now().UTC())
	if err != nil {
		t.Fatalf("request %s: %v", id, err)
	}
	for i := range evs {
		evs[i].TransferID = id
	}
	return domain.Fold(domain.State{}, evs...)
}

var seq atomic.Uint64

// Run runs the transport contract against h. Every case uses a fresh
// transfer and a fresh source payload.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Transport == nil || h.NewTransfer == nil || h.ChunkSize <= 0 {
		t.Fatal("transporttest: Harness needs Transport, NewTransfer and a positive ChunkSize")
	}
	if h.Received == nil {
		t.Log("transporttest: the harness cannot read deliveries back; byte checks are left out")
	}
	if h.DeleteSource == nil {
		t.Log("transporttest: the transport reads no source; missing-source cases are left out")
	}
	cs := h.ChunkSize
	several := 2*cs + cs/2 + 7 // three chunks, the last one short

	t.Run("delivers a file of several chunks intact", func(t *testing.T) {
		x := h.start(t, several)
		if x.st.Request.Chunks < 3 {
			t.Fatalf("the transfer has %d chunks, want at least 3", x.st.Request.Chunks)
		}
		x.sendAll(t)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("delivers a file of exactly two full chunks", func(t *testing.T) {
		x := h.start(t, 2*cs)
		x.sendAll(t)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("delivers a single-chunk file", func(t *testing.T) {
		x := h.start(t, cs/3+1)
		x.sendAll(t)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("delivers an empty file", func(t *testing.T) {
		needs(t, h.Features.EmptyFile, "EmptyFile", "delivers an empty file")
		x := h.start(t, 0)
		if x.st.Request.Chunks != 1 {
			t.Fatalf("an empty file has %d chunks, want 1", x.st.Request.Chunks)
		}
		x.sendAll(t)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("re-sending a chunk leaves the same result", func(t *testing.T) {
		x := h.start(t, several)
		x.send(t, 1, 2, 2, 3)
		x.send(t, 2)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("re-sending every chunk leaves the same result", func(t *testing.T) {
		needs(t, h.Features.IdempotentFirstChunk, "IdempotentFirstChunk", "re-sends chunk 1")
		x := h.start(t, several)
		x.sendAll(t)
		x.sendAll(t)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("re-sending every chunk after the first leaves the same result", func(t *testing.T) {
		x := h.start(t, several)
		x.sendAll(t)
		for i := 2; i <= x.st.Request.Chunks; i++ {
			x.send(t, i)
		}
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("re-sending chunks out of order leaves the same result", func(t *testing.T) {
		needs(t, h.Features.IdempotentFirstChunk, "IdempotentFirstChunk", "re-sends chunk 1")
		x := h.start(t, several)
		x.send(t, 3, 1, 2, 1)
		x.checkDelivered(t, x.complete(t))
	})
	t.Run("completing twice gives the same delivery", func(t *testing.T) {
		x := h.start(t, several)
		x.sendAll(t)
		first := x.complete(t)
		second := x.complete(t)
		if second != first {
			t.Errorf("second Complete = %+v, want %+v as the first", second, first)
		}
		x.checkDelivered(t, second)
	})
	t.Run("completing an empty file twice gives the same delivery", func(t *testing.T) {
		needs(t, h.Features.EmptyFile, "EmptyFile", "delivers an empty file")
		x := h.start(t, 0)
		x.sendAll(t)
		first := x.complete(t)
		if second := x.complete(t); second != first {
			t.Errorf("second Complete = %+v, want %+v as the first", second, first)
		}
		x.checkDelivered(t, first)
	})
	if h.DeleteSource != nil {
		for _, c := range []struct {
			name string
			size int64
		}{{"several chunks", several}, {"empty", 0}} {
			t.Run("a missing source fails for good at SendChunk ("+c.name+")", func(t *testing.T) {
				x := h.start(t, c.size)
				h.DeleteSource(t, x.st)
				// A transport may read the source only when it sends
				// (whole-file HTTPS reads it all at the last chunk): some
				// SendChunk must fail, and none be recorded after it.
				var err error
				for i := 1; i <= x.st.Request.Chunks && err == nil; i++ {
					var sent transport.Sent
					if sent, err = h.Transport.SendChunk(context.Background(), x.st, x.st.Request.Chunk(i)); err == nil {
						x.apply(t, domain.RecordChunk{Index: i, Bytes: sent.Bytes, Ref: sent.Ref})
					}
				}
				if err == nil {
					t.Fatal("every SendChunk of a deleted source succeeded")
				}
				var de *domain.Error
				if !errors.As(err, &de) {
					t.Fatalf("SendChunk error %v (%T) is not a *domain.Error", err, err)
				}
				if de.Kind != domain.KindNotFound && de.Kind != domain.KindInvalid {
					t.Errorf("SendChunk error kind = %s (%v), want %s or %s", de.Kind, err, domain.KindNotFound, domain.KindInvalid)
				}
				if de.Kind.Retryable() {
					t.Errorf("SendChunk error %v is retryable, want it final", err)
				}
			})
		}
	}
}

// transfer is one case's transfer: its state and how its payload was made.
type transfer struct {
	h    Harness
	st   domain.State
	seed uint64
	sent map[int]string // chunk index → ref of its latest send
}

// start stores a fresh payload of size bytes and begins its transfer.
func (h Harness) start(t *testing.T, size int64) *transfer {
	t.Helper()
	n := seq.Add(1)
	id := fmt.Sprintf("tt%d-%d", time.Now().UnixNano(), n)
	x := &transfer{h: h, seed: n, sent: map[int]string{}}
	x.st = h.NewTransfer(t, id, Payload(x.seed, size), size)
	r := x.st.Request
	if x.st.ID != id || r.Size != size || r.ChunkSize != h.ChunkSize || r.Chunks != domain.ChunkCount(size, h.ChunkSize) {
		t.Fatalf("NewTransfer returned id %q size %d chunk size %d chunks %d; want %q %d %d %d",
			x.st.ID, r.Size, r.ChunkSize, r.Chunks, id, size, h.ChunkSize, domain.ChunkCount(size, h.ChunkSize))
	}
	ref, err := h.Transport.Begin(context.Background(), x.st)
	checkErr(t, "Begin", err)
	x.apply(t, domain.Start{Ref: ref})
	return x
}

// send sends the chunks with the given indices in that order. After each
// send it records, in order, every chunk sent so far and not yet recorded,
// as the advance handler would.
func (x *transfer) send(t *testing.T, indices ...int) {
	t.Helper()
	for _, i := range indices {
		c := x.st.Request.Chunk(i)
		sent, err := x.h.Transport.SendChunk(context.Background(), x.st, c)
		checkErr(t, fmt.Sprintf("SendChunk %d", i), err)
		if sent.Bytes != c.Length {
			t.Fatalf("SendChunk %d reported %d bytes, the chunk has %d", i, sent.Bytes, c.Length)
		}
		x.sent[i] = sent.Ref
		for {
			next := x.st.ChunksSent + 1
			ref, ok := x.sent[next]
			if !ok || next > x.st.Request.Chunks {
				break
			}
			x.apply(t, domain.RecordChunk{Index: next, Bytes: x.st.Request.Chunk(next).Length, Ref: ref})
		}
	}
}

func (x *transfer) sendAll(t *testing.T) {
	t.Helper()
	for i := 1; i <= x.st.Request.Chunks; i++ {
		x.send(t, i)
	}
}

// complete calls Complete on a transfer whose every chunk is recorded.
func (x *transfer) complete(t *testing.T) transport.Delivery {
	t.Helper()
	if x.st.ChunksSent != x.st.Request.Chunks {
		t.Fatalf("complete with %d of %d chunks recorded", x.st.ChunksSent, x.st.Request.Chunks)
	}
	d, err := x.h.Transport.Complete(context.Background(), x.st)
	checkErr(t, "Complete", err)
	if d.Location == "" {
		t.Error("Complete returned an empty Location")
	}
	return d
}

// checkDelivered checks the destination holds exactly the source's bytes.
func (x *transfer) checkDelivered(t *testing.T, d transport.Delivery) {
	t.Helper()
	if x.h.Received == nil {
		return
	}
	rc := x.h.Received(t, x.st, d)
	defer func() {
		if err := rc.Close(); err != nil {
			t.Errorf("closing the delivered file: %v", err)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("reading the delivered file at %s: %v", d.Location, err)
	}
	if n != x.st.Request.Size {
		t.Errorf("delivered %d bytes at %s, want %d", n, d.Location, x.st.Request.Size)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), PayloadSHA256(x.seed, x.st.Request.Size); got != want {
		t.Errorf("delivered sha256 %s at %s, want %s", got, d.Location, want)
	}
}

func (x *transfer) apply(t *testing.T, c domain.Command) {
	t.Helper()
	evs, err := domain.Decide(x.st, c, time.Now().UTC())
	if err != nil {
		t.Fatalf("decide %T: %v", c, err)
	}
	x.st = domain.Fold(x.st, evs...)
}

// checkErr fails the test on err, and says so if err breaks the rule that
// transports return only *domain.Error.
func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s: %v (%T is not a *domain.Error)", what, err, err)
	}
	t.Fatalf("%s: %v", what, err)
}
