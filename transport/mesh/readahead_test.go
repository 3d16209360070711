package mesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
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

	mu    sync.Mutex
	opens []int // chunk indexes, in order
}

func (s *memSource) OpenChunk(_ context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	if s.hook != nil {
		if err := s.hook(t, c); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.opens = append(s.opens, c.Index)
	s.mu.Unlock()
	return io.NopCloser(bytes.NewReader(s.data[c.Offset : c.Offset+c.Length])), nil
}

func (s *memSource) opened() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.opens...)
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
	src := &memSource{data: data}
	// MESH answers chunk n only once chunk n+1 has been asked of the source:
	// reading ahead overlaps the send, or this test times out.
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := map[bool]int{true: 1, false: 2}[strings.HasSuffix(r.URL.Path, "/outbox")]
		if strings.HasSuffix(r.URL.Path, "/3") {
			chunk = 3
		}
		deadline := time.Now().Add(5 * time.Second)
		for chunk < 3 && len(src.opened()) < chunk+1 {
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

	if got := src.opened(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("source opened chunks %v, want 1, 2, 3 once each", got)
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
		if got := src.opened(); len(got) < 3 || got[2] != 2 {
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
