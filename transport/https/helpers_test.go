package https

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// mapSecrets resolves references from a map: ferry's own interface, so a
// map is the real thing for a test.
type mapSecrets map[string]string

func (m mapSecrets) Resolve(_ context.Context, ref string) ([]byte, error) {
	v, ok := m[ref]
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "secret %s does not exist", ref)
	}
	return []byte(v), nil
}

// memSource serves transfers' payloads from memory, or generates them
// (Payload(seed, size)) without storing them.
type memSource struct {
	mu    sync.Mutex
	files map[string][]byte
	gen   map[string][2]int64 // id → seed, size
	// split gives a source-chunked transfer's chunk lengths, as a MESH
	// sender chooses them.
	split map[string][]int64
	opens int
}

func newMemSource() *memSource {
	return &memSource{files: map[string][]byte{}, gen: map[string][2]int64{}, split: map[string][]int64{}}
}

func (s *memSource) put(id string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[id] = b
}

func (s *memSource) generate(id string, seed uint64, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen[id] = [2]int64{int64(seed), size}
}

func (s *memSource) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, id)
	delete(s.gen, id)
}

func (s *memSource) OpenChunk(_ context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if g, ok := s.gen[t.Request.Source.Key]; ok {
		p := transporttest.Payload(uint64(g[0]), g[1])
		if _, err := p.Seek(c.Offset, io.SeekStart); err != nil {
			return nil, err
		}
		return io.NopCloser(io.LimitReader(p, c.Length)), nil
	}
	b, ok := s.files[t.Request.Source.Key]
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "source %s does not exist", t.Request.Source.Key)
	}
	if c.Length < 0 { // source-chunked
		lengths := s.split[t.Request.Source.Key]
		if c.Index > len(lengths) {
			return nil, domain.Errorf(domain.KindNotFound, "source %s has no chunk %d", t.Request.Source.Key, c.Index)
		}
		c.Offset, c.Length = 0, lengths[c.Index-1]
		for _, n := range lengths[:c.Index-1] {
			c.Offset += n
		}
	}
	// a file replaced by a shorter one reads short, as a ranged GET would
	end := min(c.Offset+c.Length, int64(len(b)))
	start := min(c.Offset, end)
	return io.NopCloser(bytes.NewReader(b[start:end])), nil
}

// received is one request the receiver took.
type received struct {
	Method string
	Header http.Header
	Body   []byte
}

// receiver is a real HTTPS peer: it stores what it is sent per transfer
// (X-Ferry-Transfer-Id), a whole body replacing what it held, a
// Content-Range writing its range. Check, when set, may refuse a request
// before its body is read, by writing a response and returning false.
type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	reqs  []received
	check func(w http.ResponseWriter, r *http.Request) bool
	// mux serves other paths (a token endpoint); "/upload" is the receiver.
	mux *http.ServeMux
}

// newReceiver starts a TLS server; configure, when given, may change its
// TLS settings before it starts.
func newReceiver(t *testing.T, configure func(*httptest.Server)) *receiver {
	t.Helper()
	rc := &receiver{files: map[string][]byte{}, mux: http.NewServeMux()}
	rc.mux.HandleFunc("/upload", rc.upload)
	rc.srv = httptest.NewUnstartedServer(rc.mux)
	if configure != nil {
		configure(rc.srv)
	}
	rc.srv.StartTLS()
	t.Cleanup(rc.srv.Close)
	return rc
}

// caPEM is the PEM of the server's certificate, for an endpoint's caBundle.
func (rc *receiver) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rc.srv.Certificate().Raw}))
}

func (rc *receiver) url() string { return rc.srv.URL + "/upload" }

func (rc *receiver) upload(w http.ResponseWriter, r *http.Request) {
	if rc.check != nil && !rc.check(w, r) {
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{Method: r.Method, Header: r.Header.Clone()})
		rc.mu.Unlock()
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Header.Get(HeaderTransferID)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs = append(rc.reqs, received{Method: r.Method, Header: r.Header.Clone(), Body: body})
	if cr := r.Header.Get("Content-Range"); cr != "" {
		var first, last, total int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil || last-first+1 != int64(len(body)) || last >= total {
			http.Error(w, "bad Content-Range "+cr, http.StatusBadRequest)
			return
		}
		f := rc.files[id]
		if int64(len(f)) != total {
			f = make([]byte, total)
		}
		copy(f[first:], body)
		rc.files[id] = f
	} else {
		rc.files[id] = body
	}
	w.Header().Set("ETag", strconv.Quote(id))
	w.WriteHeader(http.StatusCreated)
}

func (rc *receiver) file(id string) []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.files[id]
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// fixture is a transport with one endpoint "ep" at a receiver.
type fixture struct {
	rc      *receiver
	src     *memSource
	secrets mapSecrets
	tr      *Transport
	ep      Endpoint
}

// newFixture parses raw (JSON of the endpoint, where a string beginning
// URL/ begins with the receiver's URL) and builds a transport trusting the
// receiver through the caBundle secret.
func newFixture(t *testing.T, rc *receiver, raw string, secrets mapSecrets) *fixture {
	t.Helper()
	if secrets == nil {
		secrets = mapSecrets{}
	}
	secrets["secret:ca"] = rc.caPEM()
	raw = strings.ReplaceAll(raw, `"URL/`, `"`+rc.srv.URL+`/`)
	eps, err := ParseEndpoints(map[string]json.RawMessage{"ep": json.RawMessage(raw)})
	if err != nil {
		t.Fatalf("ParseEndpoints: %v", err)
	}
	src := newMemSource()
	return &fixture{rc: rc, src: src, secrets: secrets, tr: New(eps, secrets, src), ep: eps["ep"]}
}

var ids struct {
	sync.Mutex
	n int
}

func newID(prefix string) string {
	ids.Lock()
	defer ids.Unlock()
	ids.n++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), ids.n)
}

// transfer makes a transfer of payload with chunks of chunkSize.
func (f *fixture) transfer(t *testing.T, payload []byte, chunkSize int64) domain.State {
	t.Helper()
	id := newID("t")
	f.src.put(id, payload)
	return newState(t, id, int64(len(payload)), chunkSize)
}

func newState(t *testing.T, id string, size, chunkSize int64) domain.State {
	t.Helper()
	return transporttest.NewState(t, id, domain.Requested{
		Source:      domain.Source{Kind: "mem", Key: id},
		Destination: domain.Destination{Type: "https", Endpoint: "ep"},
		Filename:    id + ".bin",
		Size:        size,
		ChunkSize:   chunkSize,
	})
}

// deliver runs a transfer as the advance handler would: Begin, every
// chunk, Complete. It returns the first error.
func deliver(ctx context.Context, tr transport.Transport, st domain.State) (transport.Delivery, error) {
	ref, err := tr.Begin(ctx, st)
	if err != nil {
		return transport.Delivery{}, err
	}
	st = apply(st, domain.Start{Ref: ref})
	for i := 1; i <= st.Request.Chunks; i++ {
		sent, err := tr.SendChunk(ctx, st, st.Request.Chunk(i))
		if err != nil {
			return transport.Delivery{}, err
		}
		st = apply(st, domain.RecordChunk{Index: i, Bytes: sent.Bytes, Ref: sent.Ref})
	}
	return tr.Complete(ctx, st)
}

func apply(st domain.State, c domain.Command) domain.State {
	evs, err := domain.Decide(st, c, time.Now().UTC())
	if err != nil {
		panic(err)
	}
	return domain.Fold(st, evs...)
}

// payload returns n deterministic bytes.
func payload(seed uint64, n int64) []byte {
	b, err := io.ReadAll(transporttest.Payload(seed, n))
	if err != nil {
		panic(err)
	}
	return b
}
