package mesh

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// recorded is what a fake MESH saw of one request.
type recorded struct {
	method, path, query string
	header              http.Header
	body                []byte // as sent on the wire
	contentLength       int64
	transferEncoding    []string
}

// fakeMESH records requests and answers each with respond.
func fakeMESH(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b, r.ContentLength, r.TransferEncoding})
		mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), got...)
	}
}

func TestEveryRequestIsAuthenticatedV2(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {})
	c := testClient(t, srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	_ = c.Handshake(ctx)
	_ = c.Handshake(ctx)
	_, _ = c.Inbox(ctx, 0, "")
	nonces := map[string]bool{}
	for _, r := range requests() {
		if got := r.header.Get("Accept"); got != "application/vnd.mesh.v2+json" {
			t.Errorf("%s %s: Accept = %q", r.method, r.path, got)
		}
		auth := r.header.Get("Authorization")
		parts := strings.Split(strings.TrimPrefix(auth, "NHSMESH "), ":")
		if !strings.HasPrefix(auth, "NHSMESH ") || len(parts) != 5 {
			t.Fatalf("Authorization = %q", auth)
		}
		if want := AuthHeader("X26ABC1", testPassword, testSharedKey, parts[1], 1, testNow); auth != want {
			t.Errorf("Authorization = %q, want %q", auth, want)
		}
		if nonces[parts[1]] {
			t.Errorf("nonce %s reused", parts[1])
		}
		nonces[parts[1]] = true
		if !strings.HasPrefix(r.header.Get("User-Agent"), "ferry;ferry==test;") {
			t.Errorf("User-Agent = %q", r.header.Get("User-Agent"))
		}
		noSecrets(t, fmt.Sprint(r.header))
	}
}

func TestHandshakeRequest(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {})
	if err := testClient(t, srv.URL).Handshake(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	r := requests()[0]
	if r.method != "POST" || r.path != "/messageexchange/X26ABC1" {
		t.Errorf("request = %s %s, want POST /messageexchange/X26ABC1", r.method, r.path)
	}
	for _, h := range []string{"mex-ClientVersion", "mex-OSName", "mex-OSVersion", "mex-OSArchitecture"} {
		if r.header.Get(h) == "" {
			t.Errorf("handshake lacks %s", h)
		}
	}
	if got := r.header.Get("mex-ClientVersion"); got != "ferry==test" {
		t.Errorf("mex-ClientVersion = %q", got)
	}
}

func TestSendRequests(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		if strings.HasSuffix(r.URL.Path, "/outbox") {
			_, _ = io.WriteString(w, `{"message_id":"ABC123"}`)
		}
	})
	c := testClient(t, srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	m := Message{To: "x26abc2", WorkflowID: "FERRY_TEST", Subject: "a subject", LocalID: "local-1",
		FileName: "data.csv", Checksum: "sha256:abcd", Encrypted: true, Compressed: true}

	t.Run("first chunk of three", func(t *testing.T) {
		id, err := c.Send(ctx, m, 1, 3, strings.NewReader("chunk one"), false)
		if err != nil || id != "ABC123" {
			t.Fatalf("Send = %q, %v", id, err)
		}
		r := requests()[0]
		want := map[string]string{
			"mex-To": "X26ABC2", "mex-WorkflowID": "FERRY_TEST", "mex-Subject": "a subject", "mex-LocalID": "local-1",
			"mex-FileName": "data.csv", "mex-Content-Checksum": "sha256:abcd", "mex-Content-Encrypted": "Y",
			"mex-Content-Compressed": "Y", "mex-Chunk-Range": "1:3", "Content-Encoding": "",
		}
		for h, v := range want {
			if got := r.header.Get(h); got != v {
				t.Errorf("%s = %q, want %q", h, got, v)
			}
		}
		if r.method != "POST" || r.path != "/messageexchange/X26ABC1/outbox" {
			t.Errorf("request = %s %s", r.method, r.path)
		}
		if string(r.body) != "chunk one" || r.contentLength != 9 {
			t.Errorf("body = %q (length %d), want %q with its length", r.body, r.contentLength, "chunk one")
		}
	})
	t.Run("single chunk has no chunk range", func(t *testing.T) {
		if _, err := c.Send(ctx, Message{To: "X26ABC2", WorkflowID: "W"}, 1, 1, strings.NewReader("x"), false); err != nil {
			t.Fatal(err)
		}
		r := requests()[1]
		for _, h := range []string{"mex-Chunk-Range", "mex-Subject", "mex-Content-Encrypted", "mex-Content-Compressed"} {
			if v := r.header.Get(h); v != "" {
				t.Errorf("%s = %q, want none", h, v)
			}
		}
	})
	t.Run("later chunk, gzip", func(t *testing.T) {
		if err := c.SendChunk(ctx, "ABC123", 3, 3, strings.NewReader("chunk three"), true); err != nil {
			t.Fatal(err)
		}
		r := requests()[2]
		if r.path != "/messageexchange/X26ABC1/outbox/ABC123/3" || r.header.Get("mex-Chunk-Range") != "3:3" {
			t.Errorf("request = %s, mex-Chunk-Range %q", r.path, r.header.Get("mex-Chunk-Range"))
		}
		if r.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("Content-Encoding = %q, want gzip", r.header.Get("Content-Encoding"))
		}
		if got := gunzip(t, r.body); got != "chunk three" {
			t.Errorf("body gunzips to %q", got)
		}
		if r.contentLength != -1 || !reflect.DeepEqual(r.transferEncoding, []string{"chunked"}) {
			t.Errorf("length %d, transfer-encoding %v: want a chunked stream", r.contentLength, r.transferEncoding)
		}
	})
	t.Run("reader of unknown length streams chunked", func(t *testing.T) {
		if err := c.SendChunk(ctx, "ABC123", 2, 3, io.MultiReader(strings.NewReader("chunk "), strings.NewReader("two")), false); err != nil {
			t.Fatal(err)
		}
		r := requests()[3]
		if string(r.body) != "chunk two" || r.contentLength != -1 {
			t.Errorf("body %q, length %d", r.body, r.contentLength)
		}
	})
	t.Run("file sends its remaining length", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "chunk")
		if err := os.WriteFile(path, []byte("skip:file body"), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, _ = f.Seek(5, io.SeekStart)
		if err := c.SendChunk(ctx, "ABC123", 2, 3, f, false); err != nil {
			t.Fatal(err)
		}
		r := requests()[4]
		if string(r.body) != "file body" || r.contentLength != 9 {
			t.Errorf("body %q, length %d", r.body, r.contentLength)
		}
	})
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(out)
}

// pattern yields n bytes of a compressible but non-trivial pattern without
// holding them.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := min(int64(len(b)), p.n-p.off)
	for i := range k {
		x := p.off + i
		b[i] = byte(x*7 + x/4096)
	}
	p.off += k
	return int(k), nil
}

// TestGzipStreamsWithoutBuffering proves the compressed body reaches the
// server before the source has been read to its end: the source blocks
// half way until the server has received compressed bytes.
func TestGzipStreamsWithoutBuffering(t *testing.T) {
	const size = 16 << 20
	serverGotData := make(chan struct{})
	var once sync.Once
	sum := make(chan [32]byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(&notify{r: r.Body, first: func() { once.Do(func() { close(serverGotData) }) }})
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		h := sha256.New()
		if _, err := io.Copy(h, zr); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		sum <- s
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	src := &gate{r: &pattern{n: size}, at: size / 2, open: serverGotData}
	err := testClient(t, srv.URL).SendChunk(ctxTimeout(t, 30*time.Second), "ABC", 2, 2, src, true)
	if err != nil {
		t.Fatalf("SendChunk: %v", err)
	}
	want := sha256.New()
	_, _ = io.Copy(want, &pattern{n: size})
	if got := <-sum; !bytes.Equal(got[:], want.Sum(nil)) {
		t.Error("server received different bytes")
	}
}

// gate reads r, but blocks at byte at until open is closed (or 10s pass,
// which fails the read: the body was being buffered).
type gate struct {
	r    io.Reader
	at   int64
	off  int64
	open chan struct{}
}

func (g *gate) Read(b []byte) (int, error) {
	if g.off >= g.at {
		select {
		case <-g.open:
		case <-time.After(10 * time.Second):
			return 0, errors.New("server saw nothing before half the body was read: the body is buffered")
		}
	} else if rest := g.at - g.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	n, err := g.r.Read(b)
	g.off += int64(n)
	return n, err
}

type notify struct {
	r     io.Reader
	first func()
}

func (n *notify) Read(b []byte) (int, error) {
	k, err := n.r.Read(b)
	if k > 0 {
		n.first()
	}
	return k, err
}

// TestSendStopsReadingBodyOnReturn: when MESH refuses a chunk without
// reading it, Send returns and never touches the body again.
func TestSendStopsReadingBodyOnReturn(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%t", gz), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusForbidden)
				_, _ = io.WriteString(w, bodyInvalidToken)
			}))
			defer srv.Close()
			src := &counting{r: &pattern{n: 1 << 30}}
			_, err := testClient(t, srv.URL).Send(ctxTimeout(t, 10*time.Second), Message{To: "X26ABC2", WorkflowID: "W"}, 1, 1, src, gz)
			if domain.KindOf(err) != domain.KindUnauthorized && domain.KindOf(err) != domain.KindUnavailable {
				t.Fatalf("err = %v", err)
			}
			before := src.reads.Load()
			time.Sleep(100 * time.Millisecond)
			if after := src.reads.Load(); after != before {
				t.Errorf("body read %d more times after Send returned", after-before)
			}
		})
	}
}

type counting struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *counting) Read(b []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(b)
}

func TestSendReportsBodyReadError(t *testing.T) {
	srv, _ := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	broken := &domain.Error{Kind: domain.KindUnavailable, Message: "s3 get part 2"}
	for _, gz := range []bool{false, true} {
		err := testClient(t, srv.URL).SendChunk(ctxTimeout(t, 5*time.Second), "ABC", 2, 2,
			io.MultiReader(strings.NewReader("some"), &failing{broken}), gz)
		wantError(t, err, domain.KindUnavailable, "", "reading the body to send", "s3 get part 2")
		if !errors.Is(err, broken) {
			t.Errorf("gzip=%t: error %v does not wrap the source error", gz, err)
		}
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

func TestDownload(t *testing.T) {
	payload := bytes.Repeat([]byte("ferry moves files; "), 5000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(payload)
	_ = zw.Close()

	// Headers as mesh-sandbox sends them for chunk 2 of 3 asked for with
	// Accept-Encoding: gzip.
	sandboxHeaders := map[string]string{
		"mex-from": "X26ABC1", "mex-to": "X26ABC2", "mex-workflowid": "FERRY_TEST", "mex-chunk-range": "2:3",
		"mex-total-chunks": "3", "mex-addresstype": "ALL", "mex-localid": "local-1", "mex-filename": "data.csv",
		"mex-subject": "a subject", "mex-version": "1.0", "mex-messagetype": "DATA", "mex-messageid": "ABC123",
		"mex-statuscode": "00", "mex-statusevent": "TRANSFER", "mex-statusdescription": "Transferred to recipient mailbox",
		"mex-statussuccess": "SUCCESS", "mex-statustimestamp": "20261124203003", "mex-content-checksum": "sha256:abcd",
		"mex-content-encrypted": "Y", "mex-content-compressed": "Y", "content-encoding": "gzip",
		"content-type": "application/octet-stream",
	}
	var sawAcceptEncoding string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAcceptEncoding = r.Header.Get("Accept-Encoding")
		if r.URL.Path != "/messageexchange/X26ABC1/inbox/ABC123/2" {
			http.NotFound(w, r)
			return
		}
		for k, v := range sandboxHeaders {
			w.Header().Set(k, v)
		}
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(gz.Bytes())
	}))
	defer srv.Close()

	d, err := testClient(t, srv.URL).Download(ctxTimeout(t, 5*time.Second), "ABC123", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Body.Close()
	got, err := io.ReadAll(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("body is %d bytes, want the %d original bytes", len(got), len(payload))
	}
	if sawAcceptEncoding != "gzip" {
		t.Errorf("Accept-Encoding = %q, want gzip", sawAcceptEncoding)
	}
	if d.Chunk != 2 || d.Total != 3 || d.ContentEncoding != "gzip" {
		t.Errorf("chunk %d of %d, encoding %q", d.Chunk, d.Total, d.ContentEncoding)
	}
	h := d.Headers
	want := MessageHeaders{
		MessageID: "ABC123", From: "X26ABC1", To: "X26ABC2", WorkflowID: "FERRY_TEST", Subject: "a subject",
		LocalID: "local-1", FileName: "data.csv", MessageType: "DATA", StatusCode: "00", StatusEvent: "TRANSFER",
		StatusDescription: "Transferred to recipient mailbox", StatusSuccess: "SUCCESS", StatusTimestamp: "20261124203003",
		Checksum: "sha256:abcd", ContentCompressed: true, ContentEncrypted: true, All: h.All,
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("headers =\n%+v\nwant\n%+v", h, want)
	}
	mex := 0
	for k, v := range sandboxHeaders {
		if strings.HasPrefix(k, "mex-") {
			mex++
			if h.All[k] != v {
				t.Errorf("All[%q] = %q, want %q", k, h.All[k], v)
			}
		}
	}
	if len(h.All) != mex {
		t.Errorf("All has %d entries, want the %d mex-* headers: %v", len(h.All), mex, h.All)
	}
}

func TestDownloadReport(t *testing.T) {
	// A non-delivery report as mesh-sandbox serves it: empty body, "1:0".
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range map[string]string{
			"mex-to": "X26ABC1", "mex-workflowid": "W", "mex-chunk-range": "1:0", "mex-total-chunks": "0",
			"mex-messagetype": "REPORT", "mex-messageid": "REP1", "mex-linkedmsgid": "ABC123", "mex-statuscode": "14",
			"mex-statusevent": "SEND", "mex-statusdescription": "Message not collected by recipient after 5 days",
			"mex-statussuccess": "ERROR", "content-length": "0",
		} {
			w.Header().Set(k, v)
		}
	}))
	defer srv.Close()
	d, err := testClient(t, srv.URL).Download(ctxTimeout(t, 5*time.Second), "REP1", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	if err != nil || len(b) != 0 {
		t.Errorf("body %q, %v; want empty", b, err)
	}
	h := d.Headers
	if h.MessageType != MessageTypeReport || h.LinkedMsgID != "ABC123" || h.StatusCode != "14" || h.StatusEvent != "SEND" || h.From != "" {
		t.Errorf("report headers = %+v", h)
	}
	if d.Chunk != 1 || d.Total != 1 {
		t.Errorf("chunk %d of %d, want 1 of 1", d.Chunk, d.Total)
	}
}

func TestChunkRange(t *testing.T) {
	tests := []struct {
		name             string
		header           map[string]string
		requested        int
		wantChunk, total int
	}{
		{"absent", nil, 1, 1, 1},
		{"range", map[string]string{"mex-Chunk-Range": "2:5"}, 2, 2, 5},
		{"spaces", map[string]string{"mex-Chunk-Range": " 3 : 4 "}, 3, 3, 4},
		{"total only", map[string]string{"mex-Total-Chunks": "4"}, 1, 1, 4},
		{"report", map[string]string{"mex-Chunk-Range": "1:0"}, 1, 1, 1},
		{"garbage", map[string]string{"mex-Chunk-Range": "x:y"}, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			c, total := chunkRange(h, tt.requested)
			if c != tt.wantChunk || total != tt.total {
				t.Errorf("chunkRange = %d:%d, want %d:%d", c, total, tt.wantChunk, tt.total)
			}
		})
	}
}

func TestInboxAndTrack(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/messageexchange/X26ABC1/inbox":
			_, _ = io.WriteString(w, `{"messages":["A","B"],"links":{"self":"/messageexchange/X26ABC1/inbox?max_results=10",`+
				`"next":"/messageexchange/X26ABC1/inbox?max_results=10&continue_from=eyJtZXNzYWdlX2lkIjogIkIifQ%3D%3D"},"approx_inbox_count":12}`)
		case "/messageexchange/X26ABC1/outbox/tracking":
			_, _ = io.WriteString(w, `{"message_id":"4708906A","local_id":"l","workflow_id":"W","filename":"4708906A.dat",`+
				`"expiry_time":"2026-11-29T20:30:03.940733","upload_timestamp":"2026-11-24T20:30:03.940767","recipient":"X26ABC2",`+
				`"recipient_name":"TESTMB2","recipient_ods_code":"X26","recipient_org_code":"X26","recipient_org_name":"",`+
				`"status_success":true,"status":"acknowledged"}`)
		}
	})
	c := testClient(t, srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	page, err := c.Inbox(ctx, 3, "prev")
	if err != nil {
		t.Fatal(err)
	}
	want := InboxPage{MessageIDs: []string{"A", "B"}, ContinueFrom: "eyJtZXNzYWdlX2lkIjogIkIifQ==", ApproxCount: 12}
	if !reflect.DeepEqual(page, want) {
		t.Errorf("page = %+v, want %+v", page, want)
	}
	if q := requests()[0].query; q != "continue_from=prev&max_results=10" {
		t.Errorf("query = %q (page size clamps to MESH's minimum of 10)", q)
	}
	tr, err := c.Track(ctx, "4708906A")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Status != StatusAcknowledged || !tr.StatusSuccess || tr.Recipient != "X26ABC2" || tr.LocalID != "l" ||
		!tr.UploadTimestamp.Equal(time.Date(2026, 11, 24, 20, 30, 3, 940767000, time.UTC)) {
		t.Errorf("tracking = %+v", tr)
	}
	if q := requests()[1].query; q != "messageID=4708906A" {
		t.Errorf("tracking query = %q", q)
	}
}

func TestShouldCompress(t *testing.T) {
	on := CompressOptions{Threshold: 100}
	tests := []struct {
		name     string
		meta     map[string]string
		encoding string
		size     int64
		opt      CompressOptions
		want     bool
	}{
		{"below threshold", nil, "", 99, on, false},
		{"at threshold", nil, "", 100, on, true},
		{"above threshold", nil, "", 1 << 30, on, true},
		{"zero threshold compresses everything", nil, "", 0, CompressOptions{}, true},
		{"configured never", nil, "", 1 << 30, CompressOptions{Threshold: 100, Never: true}, false},
		{"already compressed", map[string]string{"mex-content-compressed": "Y"}, "", 1 << 30, on, false},
		{"already compressed, key in any case", map[string]string{"Mex-Content-Compressed": "true"}, "", 1 << 30, on, false},
		{"compressed flag false", map[string]string{"mex-content-compressed": "N"}, "", 1 << 30, on, true},
		{"object has a Content-Encoding", nil, "gzip", 1 << 30, on, false},
		{"explicit compress beats the threshold", map[string]string{"mex-content-compress": "Y"}, "", 10, on, true},
		{"explicit compress beats Content-Encoding", map[string]string{"MEX-CONTENT-COMPRESS": "yes"}, "br", 10, on, true},
		{"explicit no beats the threshold", map[string]string{"mex-content-compress": "n"}, "", 1 << 30, on, false},
		{"explicit compress does not beat never (as in the seed)", map[string]string{"mex-content-compress": "Y"}, "", 1 << 30,
			CompressOptions{Threshold: 100, Never: true}, false},
		{"explicit compress does not beat already compressed (as in the seed)",
			map[string]string{"mex-content-compress": "Y", "mex-content-compressed": "Y"}, "", 1 << 30, on, false},
		{"quote_plus-encoded value", map[string]string{"mex-content-compress": "%20true+"}, "", 10, on, true},
		{"unrecognised override counts as false", map[string]string{"mex-content-compress": "maybe"}, "", 1 << 30, on, false},
		{"unrecognised compressed flag counts as false", map[string]string{"mex-content-compressed": "maybe"}, "", 1 << 30, on, true},
		{"unrelated metadata", map[string]string{"mex-subject": "hello+world"}, "", 1 << 30, on, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShouldCompress(tt.meta, tt.encoding, tt.size, tt.opt); got != tt.want {
				t.Errorf("ShouldCompress = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Run("reports every problem at once", func(t *testing.T) {
		err := ClientConfig{URL: "ftp://user:pw@host/?q=1", Mailbox: "A:B", ClientCertPEM: []byte("x"), CACertPEM: []byte("nope"), Timeout: -1}.Validate()
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{"scheme", "credentials", "query", "Mailbox", "Password is required",
			"SharedKey is required", "CACertPEM", "ClientCertPEM is set without ClientKeyPEM", "Timeout"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("kind = %s", domain.KindOf(err))
		}
		noSecrets(t, err.Error())
	})
	t.Run("New refuses an invalid config", func(t *testing.T) {
		_, err := New(ClientConfig{URL: "https://mesh.example", Mailbox: "X26ABC1", Password: testPassword})
		wantError(t, err, domain.KindInvalid, "", "SharedKey is required")
	})
	t.Run("bad key pair does not echo the key", func(t *testing.T) {
		err := ClientConfig{URL: "https://mesh.example", Mailbox: "X", Password: "p", SharedKey: "k",
			ClientCertPEM: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
			ClientKeyPEM:  []byte("-----BEGIN PRIVATE KEY-----\nsekrit-shared-key\n-----END PRIVATE KEY-----\n")}.Validate()
		wantError(t, err, domain.KindInvalid, "", "client certificate and key")
	})
	t.Run("defaults", func(t *testing.T) {
		c := ClientConfig{}.WithDefaults()
		if c.Timeout != DefaultTimeout || c.Now == nil || c.ClientVersion != DefaultClientVersion {
			t.Errorf("defaults = %v", c)
		}
	})
}

func TestConfigNeverRevealsSecrets(t *testing.T) {
	cfg := ClientConfig{URL: "https://mesh.example", Mailbox: "X26ABC1", Password: testPassword, SharedKey: testSharedKey,
		ClientCertPEM: []byte("CERT"), ClientKeyPEM: []byte("-----BEGIN PRIVATE KEY-----\nsekrit-shared-key\n")}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg)
	js, _ := json.Marshal(cfg)
	c := testClient(t, "https://mesh.example")
	for _, s := range []string{
		cfg.String(), fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s %q %d %x", cfg, cfg, cfg, cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v", &cfg), string(js), logged.String(),
		c.String(), fmt.Sprintf("%v %+v %#v", c, c, c),
	} {
		noSecrets(t, s)
	}
	if !strings.Contains(cfg.String(), "X26ABC1") || !strings.Contains(cfg.String(), "[redacted]") {
		t.Errorf("String() = %s", cfg)
	}
}

func TestClientVerifiesWithConfiguredCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := certPEM(srv.Certificate().Raw)
	err := testClient(t, srv.URL, func(c *ClientConfig) { c.CACertPEM = ca }).Handshake(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Errorf("with the server's CA: %v", err)
	}
	err = testClient(t, srv.URL, func(c *ClientConfig) { c.InsecureSkipVerify = true }).Handshake(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Errorf("with InsecureSkipVerify: %v", err)
	}
}
