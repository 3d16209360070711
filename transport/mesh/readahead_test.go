package mesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// memSource serves chunks of data and records each OpenChunk; hook, when
// set, runs first (outside the lock) and may fail the open.
type memSource struct {
	data []byte
	hook func(t domain.State, c domain.Chunk) error

	mu     sync.Mutex
	opens  []int          // chunk indexes, in order
	ranges []domain.Chunk // what each open asked for
	readTo int64          // the end of the furthest byte read
	open   int            // reads not yet closed
}

func (s *memSource) OpenChunk(_ context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	if s.hook != nil {
		if err := s.hook(t, c); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.opens = append(s.opens, c.Index)
	s.ranges = append(s.ranges, c)
	s.open++
	s.mu.Unlock()
	return &tracked{s: s, r: bytes.NewReader(s.data[c.Offset : c.Offset+c.Length]), pos: c.Offset}, nil
}

// stillOpen returns how many reads have not been closed.
func (s *memSource) stillOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

func (s *memSource) opened() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.opens...)
}

func (s *memSource) readUpTo() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readTo
}

// tracked records how far into the file a source read has got, and its
// closing.
type tracked struct {
	s      *memSource
	r      io.Reader
	pos    int64
	closed bool
}

func (t *tracked) Close() error {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.s.open--
	}
	return nil
}

func (t *tracked) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.pos += int64(n)
	t.s.mu.Lock()
	t.s.readTo = max(t.s.readTo, t.pos)
	t.s.mu.Unlock()
	return n, err
}

func threeChunks(id string, data []byte) domain.State {
	n := int64(len(data) / 3)
	return domain.State{ID: id, Request: domain.Requested{
		Source: domain.Source{Kind: "s3", Bucket: "b", Key: id, ETag: `"e1"`},
		Sender: "X26ABC1", Recipient: "X26ABC2", Workflow: "W",
		Size: int64(len(data)), ChunkSize: n, Chunks: 3,
	}}
}

func acceptAll(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusAccepted)
	if strings.HasSuffix(r.URL.Path, "/outbox") {
		_, _ = io.WriteString(w, `{"message_id":"MSG1"}`)
	}
}

// sendAll sends every chunk of t as advance does, in order.
func sendAll(t *testing.T, o *Outbound, st domain.State) {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	for i := 1; i <= st.Request.Chunks; i++ {
		sent, err := o.SendChunk(ctx, st, st.Request.Chunk(i))
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		st.Ref = sent.Ref
	}
}

func TestOutboundReadsTheNextChunkAheadWhileSending(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*4096)
	n := int64(len(data) / 3)
	src := &memSource{data: data}
	// MESH answers chunk k only once chunk k+1 has been read from the
	// source: reading ahead overlaps the send, or this test times out.
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := map[bool]int{true: 1, false: 2}[strings.HasSuffix(r.URL.Path, "/outbox")]
		if strings.HasSuffix(r.URL.Path, "/3") {
			chunk = 3
		}
		deadline := time.Now().Add(5 * time.Second)
		for chunk < 3 && src.readUpTo() < int64(chunk+1)*n {
			if time.Now().After(deadline) {
				t.Errorf("chunk %d in flight and chunk %d not read ahead", chunk, chunk+1)
				break
			}
			time.Sleep(time.Millisecond)
		}
		acceptAll(w, r)
	})
	o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src}
	sendAll(t, o, threeChunks("T1", data))

	// Chunk 1 is streamed; chunks 2 and 3 come from one read spanning both.
	want := []domain.Chunk{{Index: 1, Offset: 0, Length: n}, {Index: 2, Offset: n, Length: 2 * n}}
	if got := src.ranges; !slices.Equal(got, want) {
		t.Errorf("source reads %v, want %v", got, want)
	}
	reqs := requests()
	var got []byte
	for i, r := range reqs {
		got = append(got, r.body...)
		if i > 0 && r.contentLength != int64(len(data)/3) {
			t.Errorf("chunk %d sent with length %d, want its Content-Length %d", i+1, r.contentLength, len(data)/3)
		}
	}
	if !bytes.Equal(got, data) {
		t.Errorf("MESH received %d bytes, not the file's %d", len(got), len(data))
	}
	if n := len(o.slots); n != 0 {
		t.Errorf("%d read-ahead slots still held after the transfer", n)
	}
	if n := src.stillOpen(); n != 0 {
		t.Errorf("%d source reads left open after the transfer", n)
	}
}

func TestOutboundReadAheadIsBounded(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 3*1024)
	src := &memSource{data: data}
	srv, _ := fakeMESH(t, acceptAll)
	o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src, ReadAhead: 1}
	ctx := ctxTimeout(t, 5*time.Second)
	for _, id := range []string{"A", "B", "C"} {
		st := threeChunks(id, data)
		if _, err := o.SendChunk(ctx, st, st.Request.Chunk(1)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the read ahead finish
	ahead := 0
	for _, c := range src.opened() {
		if c == 2 {
			ahead++
		}
	}
	if ahead != 1 || len(o.slots) != 1 {
		t.Errorf("%d chunks read ahead for three transfers (%d slots held), want 1 with ReadAhead 1", ahead, len(o.slots))
	}

	t.Run("chunks too large for memory are streamed", func(t *testing.T) {
		src := &memSource{data: make([]byte, 3*(MaxReadAheadChunk+1))}
		o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src}
		st := threeChunks("E", src.data)
		if _, err := o.SendChunk(ctx, st, st.Request.Chunk(1)); err != nil {
			t.Fatal(err)
		}
		if got := src.opened(); len(got) != 1 || len(o.slots) != 0 {
			t.Errorf("opened %v with %d slots held, want chunk 1 only and no read ahead", got, len(o.slots))
		}
	})
	t.Run("off", func(t *testing.T) {
		src := &memSource{data: data}
		o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src, ReadAhead: -1}
		sendAll(t, o, threeChunks("D", data))
		if got := src.opened(); len(got) != 3 {
			t.Errorf("opened %v, want each chunk once, streamed", got)
		}
	})
}

func TestOutboundReadAheadOnlyServesTheSameBytes(t *testing.T) {
	data := bytes.Repeat([]byte("y"), 3*1024)
	srv, _ := fakeMESH(t, acceptAll)
	ctx := ctxTimeout(t, 5*time.Second)

	t.Run("source replaced: read again", func(t *testing.T) {
		src := &memSource{data: data}
		o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src}
		st := threeChunks("T2", data)
		sent, err := o.SendChunk(ctx, st, st.Request.Chunk(1))
		if err != nil {
			t.Fatal(err)
		}
		st.Ref = sent.Ref
		st.Request.Source.ETag = `"e2"`
		if _, err := o.SendChunk(ctx, st, st.Request.Chunk(2)); err != nil {
			t.Fatal(err)
		}
		if got := src.opened(); len(got) < 3 || !slices.Equal(got[:3], []int{1, 2, 2}) {
			t.Errorf("opened %v, want chunk 2 read again for the other version", got)
		}
	})
	t.Run("a failed read ahead is read again", func(t *testing.T) {
		failed := false
		src := &memSource{data: data}
		src.hook = func(_ domain.State, c domain.Chunk) error {
			if c.Index == 2 && !failed {
				failed = true
				return &domain.Error{Kind: domain.KindUnavailable, Message: "s3: read chunk 2", Err: errors.New("connection reset")}
			}
			return nil
		}
		o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src}
		sendAll(t, o, threeChunks("T3", data))
		if !failed {
			t.Fatal("the read ahead of chunk 2 was never tried")
		}
	})
}

func TestOutboundReadAheadSpansSeveralChunksPerRead(t *testing.T) {
	const chunks, n = 20, 1024
	data := bytes.Repeat([]byte("z"), chunks*n)
	src := &memSource{data: data}
	srv, requests := fakeMESH(t, acceptAll)
	o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src}
	st := threeChunks("T4", data)
	st.Request.ChunkSize, st.Request.Chunks = n, chunks
	sendAll(t, o, st)
	// Chunk 1 streamed, then reads of 8, 8 and the last 3 chunks.
	want := []domain.Chunk{{Index: 1, Offset: 0, Length: n}, {Index: 2, Offset: n, Length: 8 * n},
		{Index: 10, Offset: 9 * n, Length: 8 * n}, {Index: 18, Offset: 17 * n, Length: 3 * n}}
	if got := src.ranges; !slices.Equal(got, want) {
		t.Errorf("source reads %v, want %v", got, want)
	}
	var got []byte
	for _, r := range requests() {
		got = append(got, r.body...)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("MESH received %d bytes, not the file's %d", len(got), len(data))
	}
	if n := src.stillOpen(); n != 0 {
		t.Errorf("%d source reads left open", n)
	}

	t.Run("a transfer that stops half way closes its read", func(t *testing.T) {
		src := &memSource{data: data}
		o := &Outbound{Clients: map[string]*Client{"X26ABC1": testClient(t, srv.URL)}, Source: src}
		st := threeChunks("T5", data)
		st.Request.ChunkSize, st.Request.Chunks = n, chunks
		ctx := ctxTimeout(t, 5*time.Second)
		for i := 1; i <= 3; i++ {
			sent, err := o.SendChunk(ctx, st, st.Request.Chunk(i))
			if err != nil {
				t.Fatal(err)
			}
			st.Ref = sent.Ref
		}
		// Chunk 4 is read ahead from an open read; a retry of chunk 3 drops it.
		if _, err := o.SendChunk(ctx, st, st.Request.Chunk(3)); err != nil {
			t.Fatal(err)
		}
		o.mu.Lock()
		a := o.ahead[st.ID]
		o.mu.Unlock()
		if a != nil {
			o.take(aheadKey{transfer: st.ID}) // what the 30s expiry does
		}
		deadline := time.Now().Add(2 * time.Second)
		for src.stillOpen() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := src.stillOpen(); n != 0 {
			t.Errorf("%d source reads left open after the read ahead was dropped", n)
		}
	})
}
