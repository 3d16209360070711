package https

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/transporttest"
)

const contractChunkSize = 64 << 10

// TestContract runs the transport contract against a real HTTPS receiver
// in both modes. The receiver replaces what it holds for a transfer on a
// repeated whole request and rewrites the range of a repeated ranged one,
// as a receiver that honours X-Ferry-Transfer-Id / Idempotency-Key does:
// so every chunk, the first too, is idempotent.
func TestContract(t *testing.T) {
	for _, mode := range []string{ModeWhole, ModeRanged} {
		t.Run(mode, func(t *testing.T) {
			rc := newReceiver(t, nil)
			f := newFixture(t, rc, `{"url": "URL/upload", "mode": "`+mode+`", "caBundle": "secret:ca"}`, nil)
			transporttest.Run(t, transporttest.Harness{
				Transport: f.tr,
				ChunkSize: contractChunkSize,
				NewTransfer: func(t *testing.T, id string, src io.ReadSeeker, size int64) domain.State {
					t.Helper()
					b, err := io.ReadAll(src)
					if err != nil {
						t.Fatal(err)
					}
					f.src.put(id, b)
					return newState(t, id, size, contractChunkSize)
				},
				Received: func(t *testing.T, st domain.State, d transport.Delivery) io.ReadCloser {
					t.Helper()
					if d.Location != rc.url() {
						t.Errorf("Location = %q, want %q", d.Location, rc.url())
					}
					return io.NopCloser(bytes.NewReader(rc.file(st.ID)))
				},
				DeleteSource: func(t *testing.T, st domain.State) { f.src.delete(st.ID) },
				Features:     transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
			})
		})
	}
}

// TestChunksArriveIntact sends 4 chunks of 1 MiB and a tail in each mode:
// the receiver holds the same bytes, in one request in whole mode and one
// per chunk in ranged mode.
func TestChunksArriveIntact(t *testing.T) {
	const chunk = 1 << 20
	data := payload(42, 4*chunk+12345)
	want := sha256.Sum256(data)
	for _, tc := range []struct {
		mode     string
		requests int
	}{{ModeWhole, 1}, {ModeRanged, 5}} {
		t.Run(tc.mode, func(t *testing.T) {
			rc := newReceiver(t, nil)
			f := newFixture(t, rc, `{"url": "URL/upload", "method": "PUT", "mode": "`+tc.mode+`", "caBundle": "secret:ca"}`, nil)
			st := f.transfer(t, data, chunk)
			if st.Request.Chunks != 5 {
				t.Fatalf("%d chunks, want 5", st.Request.Chunks)
			}
			d, err := deliver(context.Background(), f.tr, st)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(rc.file(st.ID)); got != want {
				t.Errorf("received sha256 %x, want %x", got, want)
			}
			reqs := rc.requests()
			if len(reqs) != tc.requests {
				t.Errorf("the receiver saw %d requests, want %d", len(reqs), tc.requests)
			}
			for _, r := range reqs {
				if r.Method != http.MethodPut {
					t.Errorf("method %s, want PUT", r.Method)
				}
				if got := r.Header.Get("Content-Disposition"); got != `attachment; filename=`+st.ID+`.bin` {
					t.Errorf("Content-Disposition %q", got)
				}
			}
			if tc.mode == ModeRanged {
				if got, want := reqs[1].Header.Get("Content-Range"), "bytes 1048576-2097151/4206649"; got != want {
					t.Errorf("chunk 2's Content-Range = %q, want %q", got, want)
				}
				if got, want := reqs[1].Header.Get("Idempotency-Key"), st.ID+"/2"; got != want {
					t.Errorf("chunk 2's Idempotency-Key = %q, want %q", got, want)
				}
			}
			if d.Location != rc.url() {
				t.Errorf("Location %q, want %q", d.Location, rc.url())
			}
		})
	}
}

// TestSingleChunkRef: a one-chunk transfer's delivery carries the
// receiver's reference (its ETag here), in either mode one request
// without Content-Range.
func TestSingleChunkRef(t *testing.T) {
	for _, mode := range []string{ModeWhole, ModeRanged} {
		t.Run(mode, func(t *testing.T) {
			rc := newReceiver(t, nil)
			f := newFixture(t, rc, `{"url": "URL/upload?code=k", "mode": "`+mode+`", "caBundle": "secret:ca"}`, nil)
			st := f.transfer(t, []byte("hello"), 1<<20)
			d, err := deliver(context.Background(), f.tr, st)
			if err != nil {
				t.Fatal(err)
			}
			if want := (transport.Delivery{Ref: `"` + st.ID + `"`, Location: rc.url()}); d != want {
				t.Errorf("delivery %+v, want %+v (no query in Location)", d, want)
			}
			reqs := rc.requests()
			if len(reqs) != 1 || reqs[0].Header.Get("Content-Range") != "" {
				t.Errorf("requests %d, Content-Range %q; want one without", len(reqs), reqs[0].Header.Get("Content-Range"))
			}
		})
	}
}

// TestWholeModeEarlyChunksSendNothing: in whole mode chunks before the last
// only check the source; a retry of the last sends the whole file again.
func TestWholeModeEarlyChunksSendNothing(t *testing.T) {
	rc := newReceiver(t, nil)
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca"}`, nil)
	st := f.transfer(t, payload(3, 3000), 1000)
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		sent, err := f.tr.SendChunk(ctx, st, st.Request.Chunk(i))
		if err != nil || sent != (transport.Sent{Bytes: 1000}) {
			t.Fatalf("SendChunk %d = %+v, %v; want {Bytes: 1000}", i, sent, err)
		}
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("%d requests before the last chunk, want 0", n)
	}
	for range 2 {
		if _, err := f.tr.SendChunk(ctx, st, st.Request.Chunk(3)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rc.requests()); n != 2 {
		t.Errorf("%d requests after sending the last chunk twice, want 2", n)
	}
	if !bytes.Equal(rc.file(st.ID), payload(3, 3000)) {
		t.Error("the receiver's file differs from the source")
	}
}

// TestStatuses checks how the receiver's answers are classified end to end.
func TestStatuses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		follow    bool
		kind      domain.Kind // "" for success
		inMessage []string
		after     time.Duration
	}{
		{name: "400 is final with the status and an excerpt", status: 400, body: "bad\x00 file\r\nline two", kind: domain.KindInvalid, inMessage: []string{"400 Bad Request", "bad file line two"}},
		{name: "401 is unauthorized", status: 401, kind: domain.KindUnauthorized},
		{name: "503 is retryable", status: 503, kind: domain.KindUnavailable, inMessage: []string{"503"}},
		{name: "429 with Retry-After 7 is retryable with a 7s hint", status: 429, header: map[string]string{"Retry-After": "7"}, kind: domain.KindUnavailable, after: 7 * time.Second},
		{name: "a redirect is final by default", status: 302, header: map[string]string{"Location": "/elsewhere"}, kind: domain.KindInvalid, inMessage: []string{"302", "/elsewhere", "not allowed"}},
		{name: "a redirect is followed when allowed", status: 307, header: map[string]string{"Location": "/upload"}, follow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			rc.check = func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Query().Get("answered") != "" {
					return true
				}
				for k, v := range tc.header {
					if k == "Location" {
						v += "?answered=1"
					}
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
				return false
			}
			follow := "false"
			if tc.follow {
				follow = "true"
			}
			f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "followRedirects": `+follow+`}`, nil)
			data := payload(9, 5000)
			st := f.transfer(t, data, 2000)
			_, err := deliver(context.Background(), f.tr, st)
			if tc.kind == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(rc.file(st.ID), data) {
					t.Error("the redirected request's body differs from the source")
				}
				return
			}
			var de *domain.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want a *domain.Error", err, err)
			}
			if de.Kind != tc.kind || de.Code != strconv.Itoa(tc.status) {
				t.Errorf("error %v: kind %s code %s, want %s %d", err, de.Kind, de.Code, tc.kind, tc.status)
			}
			for _, s := range tc.inMessage {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if got := domain.RetryAfterOf(err); got != tc.after {
				t.Errorf("RetryAfter %s, want %s", got, tc.after)
			}
		})
	}
}

// TestUntrustedServer: without the caBundle the receiver's certificate is
// not trusted and the request fails for good; TLS is never skipped.
func TestUntrustedServer(t *testing.T) {
	rc := newReceiver(t, nil)
	f := newFixture(t, rc, `{"url": "URL/upload"}`, nil)
	_, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("x"), 10))
	if k := domain.KindOf(err); k != domain.KindInvalid {
		t.Errorf("error %v: kind %s, want %s", err, k, domain.KindInvalid)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the receiver saw %d requests", n)
	}
}

// TestSourceChunked: a transfer whose source chose the chunks (a MESH
// message) goes in one request of unknown length in whole mode, each
// chunk reporting its length; a ranged endpoint refuses it at Begin.
func TestSourceChunked(t *testing.T) {
	lengths := []int64{1000, 10, 0, 4321}
	data := payload(11, 1000+10+4321)
	newTransfer := func(f *fixture) domain.State {
		id := newID("mesh")
		f.src.put(id, data)
		f.src.split[id] = lengths
		return transporttest.NewState(t, id, domain.Requested{
			Source:      domain.Source{Kind: "mem", Key: id},
			Destination: domain.Destination{Type: "https", Endpoint: "ep"},
			Chunks:      len(lengths),
		})
	}
	t.Run("whole", func(t *testing.T) {
		rc := newReceiver(t, nil)
		f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca"}`, nil)
		st := newTransfer(f)
		ctx := context.Background()
		ref, err := f.tr.Begin(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		st = apply(st, domain.Start{Ref: ref})
		for i, want := range lengths {
			sent, err := f.tr.SendChunk(ctx, st, st.Request.Chunk(i+1))
			if err != nil {
				t.Fatal(err)
			}
			if sent.Bytes != want {
				t.Errorf("chunk %d: %d bytes, want %d", i+1, sent.Bytes, want)
			}
			st = apply(st, domain.RecordChunk{Index: i + 1, Bytes: sent.Bytes, Ref: sent.Ref})
		}
		if _, err := f.tr.Complete(ctx, st); err != nil {
			t.Fatal(err)
		}
		reqs := rc.requests()
		if len(reqs) != 1 || !bytes.Equal(reqs[0].Body, data) {
			t.Fatalf("%d requests; want one with the message's bytes", len(reqs))
		}
	})
	t.Run("ranged", func(t *testing.T) {
		rc := newReceiver(t, nil)
		f := newFixture(t, rc, `{"url": "URL/upload", "mode": "ranged", "caBundle": "secret:ca"}`, nil)
		_, err := f.tr.Begin(context.Background(), newTransfer(f))
		if k := domain.KindOf(err); k != domain.KindInvalid {
			t.Errorf("Begin: %v, kind %s; want %s", err, k, domain.KindInvalid)
		}
	})
}

// TestSourceChangedLength: a planned chunk that reads shorter than planned
// fails the request with KindConflict instead of sending a short file.
func TestSourceChangedLength(t *testing.T) {
	rc := newReceiver(t, nil)
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca"}`, nil)
	st := f.transfer(t, payload(1, 3000), 1000)
	f.src.put(st.ID, payload(1, 2500)) // replaced by a shorter file
	_, err := deliver(context.Background(), f.tr, st)
	if k := domain.KindOf(err); k != domain.KindConflict {
		t.Errorf("error %v: kind %s, want %s", err, k, domain.KindConflict)
	}
	for _, r := range rc.requests() {
		if len(r.Body) != 0 {
			t.Errorf("the receiver stored %d bytes", len(r.Body))
		}
	}
}

func TestCheckRedirect(t *testing.T) {
	req := func(u string, h http.Header) *http.Request {
		r, err := http.NewRequest(http.MethodPost, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if h != nil {
			r.Header = h
		}
		return r
	}
	first := req("https://a.example/in", nil)
	for _, tc := range []struct {
		name    string
		follow  bool
		to      string
		via     int
		wantErr error
		kind    domain.Kind
		keepKey bool
	}{
		{name: "not followed by default", to: "https://a.example/x", via: 1, wantErr: http.ErrUseLastResponse},
		{name: "same host keeps the key", follow: true, to: "https://a.example/x", via: 1, keepKey: true},
		{name: "another host loses the key", follow: true, to: "https://b.example/x", via: 1},
		{name: "http is refused", follow: true, to: "http://a.example/x", via: 1, kind: domain.KindInvalid},
		{name: "too many", follow: true, to: "https://a.example/x", via: maxRedirects, kind: domain.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := req(tc.to, http.Header{"X-Key": {"k"}, "X-Plain": {"p"}})
			via := make([]*http.Request, tc.via)
			for i := range via {
				via[i] = first
			}
			err := checkRedirect(tc.follow, []string{"X-Key"})(next, via)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
				return
			case tc.kind != "":
				if k := domain.KindOf(err); k != tc.kind {
					t.Errorf("error %v: kind %s, want %s", err, k, tc.kind)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got := next.Header.Get("X-Key") != ""; got != tc.keepKey {
				t.Errorf("key kept = %t, want %t", got, tc.keepKey)
			}
			if next.Header.Get("X-Plain") == "" {
				t.Error("a plain header was dropped")
			}
		})
	}
}

func TestBeginRefuses(t *testing.T) {
	rc := newReceiver(t, nil)
	ok := `{"url": "URL/upload", "caBundle": "secret:ca"}`
	for _, tc := range []struct {
		name     string
		raw      string
		secrets  mapSecrets
		dest     domain.Destination
		kind     domain.Kind
		mentions string
	}{
		{"another destination type", ok, nil, domain.Destination{Type: "null"}, domain.KindInvalid, `"null" destination`},
		{"an unknown endpoint", ok, nil, domain.Destination{Type: "https", Endpoint: "nope"}, domain.KindInvalid, `endpoint "nope"`},
		{"a missing secret", `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "basic", "username": "u", "password": "secret:gone"}}`,
			nil, domain.Destination{Type: "https", Endpoint: "ep"}, domain.KindNotFound, "auth.password secret:gone"},
		{"a CA bundle that is not PEM", `{"url": "URL/upload", "caBundle": "secret:bad"}`, mapSecrets{"secret:bad": "junk"},
			domain.Destination{Type: "https", Endpoint: "ep"}, domain.KindInvalid, "caBundle secret:bad holds no PEM certificate"},
		{"a private key that is not a key", `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "jwt", "issuer": "i", "audience": "a", "privateKey": "secret:pk"}}`,
			mapSecrets{"secret:pk": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, domain.Destination{Type: "https", Endpoint: "ep"}, domain.KindInvalid, "not an RSA or EC private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, rc, tc.raw, tc.secrets)
			st := f.transfer(t, []byte("x"), 10)
			st.Request.Destination = tc.dest
			_, err := f.tr.Begin(context.Background(), st)
			if k := domain.KindOf(err); k != tc.kind || !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("Begin: %v (kind %s), want kind %s mentioning %q", err, k, tc.kind, tc.mentions)
			}
			if strings.Contains(err.Error(), "AAAA") || strings.Contains(err.Error(), "junk") {
				t.Errorf("Begin: %v shows a secret's value", err)
			}
		})
	}
}
