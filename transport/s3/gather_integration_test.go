//go:build integration

package s3transport_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	s3transport "github.com/ferryhq/ferry/transport/s3"
	"github.com/ferryhq/ferry/transport/transporttest"
)

const mib = domain.MiB

// chunkedSource serves a message of the given chunk lengths, as a MESH
// sender cut it: chunk i is the next lengths[i-1] bytes of
// transporttest.Payload(seed, total), streamed. It counts the bytes it
// serves per chunk.
type chunkedSource struct {
	seed    uint64
	lengths []int64

	mu     sync.Mutex
	served map[int]int64
	// grow, when set, makes chunk grow serve that many bytes more.
	grow int
}

var _ transport.Source = (*chunkedSource)(nil)

func (s *chunkedSource) total() int64 {
	var n int64
	for _, l := range s.lengths {
		n += l
	}
	return n
}

func (s *chunkedSource) OpenChunk(_ context.Context, _ domain.State, c domain.Chunk) (io.ReadCloser, error) {
	if c.Index < 1 || c.Index > len(s.lengths) {
		return nil, domain.Errorf(domain.KindNotFound, "no chunk %d", c.Index)
	}
	var off int64
	for _, l := range s.lengths[:c.Index-1] {
		off += l
	}
	n := s.lengths[c.Index-1]
	s.mu.Lock()
	if s.served == nil {
		s.served = map[int]int64{}
	}
	s.served[c.Index] += n
	if s.grow == c.Index {
		n++
	}
	s.mu.Unlock()
	p := transporttest.Payload(s.seed, s.total()+1)
	if _, err := p.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.NopCloser(io.LimitReader(p, n)), nil
}

// gatherEnv is a destination bucket and a transport whose "mesh" source is src.
type gatherEnv struct {
	c   *s3.Client
	tr  *s3transport.Transport
	dst string
	src *chunkedSource
}

func newGatherEnv(t *testing.T, seed uint64, lengths ...int64) *gatherEnv {
	t.Helper()
	c := emulator(t)
	src := &chunkedSource{seed: seed, lengths: lengths}
	return &gatherEnv{c: c, tr: s3transport.New(c).WithSource("mesh", src), dst: newBucket(t, c, false), src: src}
}

// inbound returns the state of an inbound MESH transfer of the source's
// chunks, begun.
func (e *gatherEnv) inbound(t *testing.T, id string) domain.State {
	t.Helper()
	st := transporttest.NewState(t, id, domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: "X26ABC3", MessageID: id},
		Destination: domain.Destination{Type: "s3", Bucket: e.dst, Prefix: "inbound/"},
		Filename:    id + ".dat",
		Chunks:      len(e.src.lengths),
		Metadata:    map[string]string{"mex-messageid": id},
	})
	return e.record(t, st, domain.Start{Ref: e.begin(t, st)})
}

func (e *gatherEnv) begin(t *testing.T, st domain.State) string {
	t.Helper()
	ref, err := e.tr.Begin(context.Background(), st)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return ref
}

// record decides c on st and returns the state after it.
func (e *gatherEnv) record(t *testing.T, st domain.State, c domain.Command) domain.State {
	t.Helper()
	evs, err := domain.Decide(st, c, time.Now().UTC())
	if err != nil {
		t.Fatalf("decide %#v at v%d: %v", c, st.Version, err)
	}
	return domain.Fold(st, evs...)
}

// send sends the next chunk and records it.
func (e *gatherEnv) send(t *testing.T, st domain.State) (domain.State, transport.Sent) {
	t.Helper()
	a := domain.Next(st)
	if a.Kind != domain.ActSendChunk {
		t.Fatalf("next action at v%d is %v, want send-chunk", st.Version, a.Kind)
	}
	sent, err := e.tr.SendChunk(context.Background(), st, a.Chunk)
	if err != nil {
		t.Fatalf("SendChunk %d: %v", a.Chunk.Index, err)
	}
	if want := e.src.lengths[a.Chunk.Index-1]; sent.Bytes != want {
		t.Fatalf("chunk %d: Sent.Bytes = %d, want %d", a.Chunk.Index, sent.Bytes, want)
	}
	return e.record(t, st, domain.RecordChunk{Index: a.Chunk.Index, Bytes: sent.Bytes, Ref: sent.Ref, Held: sent.Held}), sent
}

// parts lists the upload's part numbers and sizes.
func (e *gatherEnv) parts(t *testing.T, st domain.State) [][2]int64 {
	t.Helper()
	out, err := e.c.ListParts(context.Background(), &s3.ListPartsInput{
		Bucket: aws.String(e.dst), Key: aws.String(s3transport.Key(st)), UploadId: aws.String(st.Ref),
	})
	if err != nil {
		t.Fatalf("ListParts: %v", err)
	}
	var got [][2]int64
	for _, p := range out.Parts {
		got = append(got, [2]int64{int64(aws.ToInt32(p.PartNumber)), aws.ToInt64(p.Size)})
	}
	return got
}

// TestSourceChunkedGathersSmallChunks: whatever chunk sizes the sender
// chose, the object is the message, byte for byte; chunks that would make a
// part under 5 MiB are held and uploaded with the next, as one part numbered
// after the first of them, and what is read again per part is under 5 MiB.
func TestSourceChunkedGathersSmallChunks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lengths []int64
		held    []int      // chunks held
		parts   [][2]int64 // part number, size
	}{
		{"1 MiB chunks", []int64{mib, mib, mib, mib, mib, mib, mib, mib / 2},
			[]int{1, 2, 3, 4, 6, 7}, [][2]int64{{1, 5 * mib}, {6, 5 * mib / 2}}},
		{"one small chunk", []int64{1000}, nil, [][2]int64{{1, 1000}}},
		{"one empty chunk", []int64{0}, nil, [][2]int64{{1, 0}}},
		{"chunks of 5 MiB and more are parts of their own", []int64{5 * mib, 6 * mib, 10}, nil,
			[][2]int64{{1, 5 * mib}, {2, 6 * mib}, {3, 10}}},
		{"mixed sizes", []int64{6 * mib, mib, 0, 4 * mib, 3 * mib, 2 * mib, mib, 7},
			[]int{2, 3, 5, 7}, [][2]int64{{1, 6 * mib}, {2, 5 * mib}, {5, 5 * mib}, {7, mib + 7}}},
		{"a held run just under 5 MiB", []int64{5*mib - 1, 1, 5*mib - 1, 2}, []int{1, 3}, [][2]int64{{1, 5 * mib}, {3, 5*mib + 1}}},
		{"small chunks then a large one", []int64{mib, 2 * mib, 8 * mib, mib}, []int{1, 2}, [][2]int64{{1, 11 * mib}, {4, mib}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newGatherEnv(t, uint64(len(tc.lengths)), tc.lengths...)
			id := fmt.Sprintf("01GATHER%d", len(tc.lengths))
			st := e.inbound(t, id)
			var held []int
			for st.ChunksSent < st.Request.Chunks {
				var sent transport.Sent
				st, sent = e.send(t, st)
				if sent.Held {
					held = append(held, st.ChunksSent)
				}
			}
			if !slices.Equal(held, tc.held) {
				t.Errorf("held chunks %v, want %v", held, tc.held)
			}
			if got := e.parts(t, st); !slices.Equal(got, tc.parts) {
				t.Errorf("parts (number, size) = %v, want %v", got, tc.parts)
			}
			d, err := e.tr.Complete(context.Background(), st)
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if got, want := sha(t, openLocation(t, e.c, d)), transporttest.PayloadSHA256(e.src.seed, e.src.total()); got != want {
				t.Errorf("object sha256 %s, want the message's %s", got, want)
			}
			for i, l := range tc.lengths {
				if n := e.src.served[i+1]; n < l || n > 2*l || (n > l && !slices.Contains(tc.held, i+1)) {
					t.Errorf("chunk %d of %d bytes was read for %d bytes; want once, or twice if held", i+1, l, n)
				}
			}
		})
	}
}

// TestSourceChunkedRepeatedSteps: a step repeated after a crash (the part
// uploaded but the chunk not recorded) uploads the same part again, and the
// object is still the message.
func TestSourceChunkedRepeatedSteps(t *testing.T) {
	e := newGatherEnv(t, 42, mib, mib, mib, mib, 2*mib, mib)
	ctx := context.Background()
	st := e.inbound(t, "01REPEAT")
	for st.ChunksSent < st.Request.Chunks {
		a := domain.Next(st)
		// Every step twice: the first outcome is lost, as in a crash.
		first, err := e.tr.SendChunk(ctx, st, a.Chunk)
		if err != nil {
			t.Fatalf("SendChunk %d: %v", a.Chunk.Index, err)
		}
		var sent transport.Sent
		st, sent = e.send(t, st)
		if sent.Held != first.Held || sent.Bytes != first.Bytes {
			t.Fatalf("chunk %d: repeated step gave %+v, first %+v", a.Chunk.Index, sent, first)
		}
	}
	if got, want := e.parts(t, st), [][2]int64{{1, 6 * mib}, {6, mib}}; !slices.Equal(got, want) {
		t.Errorf("parts = %v, want %v", got, want)
	}
	d, err := e.tr.Complete(ctx, st)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got, want := sha(t, openLocation(t, e.c, d)), transporttest.PayloadSHA256(42, 7*mib); got != want {
		t.Errorf("object sha256 %s, want %s", got, want)
	}
}

// TestSourceChunkedHeldChunkChanged: a held chunk that reads back longer
// than when it was received is a conflict, not a corrupt part.
func TestSourceChunkedHeldChunkChanged(t *testing.T) {
	e := newGatherEnv(t, 7, mib, 5*mib, 1)
	st := e.inbound(t, "01CHANGED")
	st, _ = e.send(t, st)
	e.src.grow = 1
	_, err := e.tr.SendChunk(context.Background(), st, domain.Next(st).Chunk)
	wantKind(t, err, domain.KindConflict, "")
}

// TestCompleteGatheredParts: Complete refuses a source-chunked upload
// whose parts do not hold the bytes received, or with chunks still held.
func TestCompleteGatheredParts(t *testing.T) {
	ctx := context.Background()
	t.Run("fewer bytes than received", func(t *testing.T) {
		e := newGatherEnv(t, 8, 5*mib, 10)
		st := e.inbound(t, "01SHORT")
		st, _ = e.send(t, st)
		st, _ = e.send(t, st)
		st.BytesSent++
		_, err := e.tr.Complete(ctx, st)
		wantKind(t, err, domain.KindInvalid, "")
	})
	t.Run("chunks still held", func(t *testing.T) {
		e := newGatherEnv(t, 9, mib, mib)
		st := e.inbound(t, "01HELD")
		st, _ = e.send(t, st)
		st.ChunksSent = st.Request.Chunks // as if the last had been recorded without storing the held one
		_, err := e.tr.Complete(ctx, st)
		wantKind(t, err, domain.KindInvalid, "")
	})
}

// openLocation opens the object a Delivery names.
func openLocation(t *testing.T, c *s3.Client, d transport.Delivery) io.ReadCloser {
	t.Helper()
	return (&env{c: c}).open(t, d)
}
