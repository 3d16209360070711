package mesh

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// Error bodies exactly as mesh-sandbox 1.0.137 answers them (captured from
// a running sandbox; see views/error.py and common/constants.py there).
const (
	bodyInvalidToken     = `{"detail":[{"event":"","code":"","msg":"Invalid Authentication Token"}]}`
	bodyNoAuthHeader     = `{"detail":[{"event":"","code":"","msg":"Error reading from Authorization header"}]}`
	bodyUnregistered     = `{"detail":[{"event":"SEND","code":"12","msg":"Unregistered to address"}]}`
	bodyMalformed        = `{"detail":[{"event":"TRANSFER","code":"06","msg":"MalformedControlFile"}]}`
	bodyMissingTo        = `{"detail":[{"type":"missing","loc":["header","mex-to"],"msg":"Field required"}]}`
	bodyBadEncoding      = `{"detail":[{"event":"SEND","code":"UnsupportedContentEncoding","msg":"Unsupported content encoding"}]}`
	bodyBadChunks        = `{"message_id":"4708906A3C7A425D87C313408F1759CA","detail":[{"event":"SEND","code":"InvalidHeaderChunks","msg":"Invalid chunk values sent in mex-Chunk-Range header"}]}`
	bodyMissingData      = `{"detail":[{"event":"COLLECT","code":"02","msg":"Data file is missing or inaccessible."}]}`
	bodyEncodingChanged  = `{"detail":[{"event":"","code":"","msg":"cannot change content encoding"}]}`
	bodyInternal         = `{"message":"An internal error occurred.\n\nPlease contact support."}`
	bodyNoSuchMessage    = `{"detail":[{"event":"RECEIVE","code":"20","msg":"Message does not exist"}]}`
	bodyGone             = `{"detail":[{"event":"SEND","code":"Message already accepted","msg":"Message no longer available for download"}]}`
	bodyNotFound         = `{"detail":[{"event":"","code":"","msg":"Not Found"}]}`
	bodyV1BadAccept      = `{"errorEvent":"","errorCode":"","errorDescription":"Accept header api format incorrect"}`
	bodyMaxResultsTooLow = `{"detail":[{"type":"greater_than_equal","loc":["query","max_results"],"msg":"Input should be greater than or equal to 10","input":"5","ctx":{"ge":10}}]}`
)

// call is one client operation, run against a server answering an error.
type call func(context.Context, *Client) error

var (
	handshake = func(ctx context.Context, c *Client) error { return c.Handshake(ctx) }
	send      = func(ctx context.Context, c *Client) error {
		_, err := c.Send(ctx, Message{To: "X26ABC2", WorkflowID: "W"}, 1, 1, strings.NewReader("data"), false)
		return err
	}
	sendChunk = func(ctx context.Context, c *Client) error {
		return c.SendChunk(ctx, "4708906A3C7A425D87C313408F1759CA", 2, 2, strings.NewReader("data"), true)
	}
	inbox    = func(ctx context.Context, c *Client) error { _, err := c.Inbox(ctx, 5, ""); return err }
	download = func(ctx context.Context, c *Client) error {
		_, err := c.Download(ctx, "4708906A3C7A425D87C313408F1759CA", 1)
		return err
	}
	ack   = func(ctx context.Context, c *Client) error { return c.Acknowledge(ctx, "NOPE") }
	track = func(ctx context.Context, c *Client) error { _, err := c.Track(ctx, "NOPE"); return err }
)

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		name      string
		call      call
		status    int
		body      string
		kind      domain.Kind
		code      string
		fragments []string
	}{
		{"wrong password", handshake, 403, bodyInvalidToken, domain.KindUnauthorized, "403",
			[]string{"mesh handshake X26ABC1", "authentication failed", "HTTP 403", "Invalid Authentication Token"}},
		{"missing token", inbox, 403, bodyNoAuthHeader, domain.KindUnauthorized, "403", []string{"authentication failed"}},
		{"unregistered recipient", send, 417, bodyUnregistered, domain.KindInvalid, "12",
			[]string{"mesh send from X26ABC1 to X26ABC2", "HTTP 417", "Unregistered to address"}},
		{"malformed headers", send, 400, bodyMalformed, domain.KindInvalid, "06", []string{"HTTP 400", "MalformedControlFile"}},
		{"missing mex-To (request validation)", send, 400, bodyMissingTo, domain.KindInvalid, "400", []string{"header mex-to: Field required"}},
		{"unsupported content encoding", send, 422, bodyBadEncoding, domain.KindInvalid, "UnsupportedContentEncoding", []string{"HTTP 422"}},
		{"empty body", send, 417, bodyMissingData, domain.KindInvalid, "02", []string{"Data file is missing"}},
		{"bad chunk range", sendChunk, 417, bodyBadChunks, domain.KindInvalid, "InvalidHeaderChunks", []string{"chunk 2/2"}},
		{"changed content encoding", sendChunk, 417, bodyEncodingChanged, domain.KindInvalid, "417", []string{"cannot change content encoding"}},
		{"chunk beyond the total", sendChunk, 406, bodyInternal, domain.KindInvalid, "406", []string{"HTTP 406"}},
		{"already finalised", sendChunk, 423, bodyInternal, domain.KindConflict, "423", []string{"already finalised", "HTTP 423"}},
		{"unknown message", download, 404, bodyNoSuchMessage, domain.KindNotFound, "20", []string{"HTTP 404", "Message does not exist"}},
		{"not yet uploaded or expired", download, 410, bodyGone, domain.KindNotFound, "Message already accepted", []string{"gone", "HTTP 410"}},
		{"acknowledge unknown", ack, 404, bodyNoSuchMessage, domain.KindNotFound, "20", nil},
		{"track unknown", track, 404, bodyNotFound, domain.KindNotFound, "404", []string{"Not Found"}},
		{"v1 error shape", inbox, 400, bodyV1BadAccept, domain.KindInvalid, "400", []string{"Accept header api format incorrect"}},
		{"page size out of range", inbox, 400, bodyMaxResultsTooLow, domain.KindInvalid, "400", []string{"query max_results"}},
		{"throttled", inbox, 429, "", domain.KindUnavailable, "429", []string{"throttled", "HTTP 429"}},
		{"request timeout", inbox, 408, "", domain.KindUnavailable, "408", nil},
		{"internal server error", send, 500, bodyInternal, domain.KindUnavailable, "500", []string{"server error", "HTTP 500"}},
		{"gateway HTML", download, 503, "<html><body>Service Unavailable</body></html>", domain.KindUnavailable, "503", []string{"HTTP 503"}},
		{"redirect not followed", track, 302, "", domain.KindInternal, "302", []string{"unexpected response"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if tt.status == 302 {
					w.Header().Set("Location", "https://elsewhere.example/")
				}
				w.Header().Set("Content-Type", "application/vnd.mesh.v2+json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := tt.call(ctxTimeout(t, 5*time.Second), testClient(t, srv.URL))
			wantError(t, err, tt.kind, tt.code, tt.fragments...)
			if got, want := domain.KindOf(err).Retryable(), tt.kind == domain.KindUnavailable; got != want {
				t.Errorf("retryable = %t, want %t", got, want)
			}
		})
	}
}

func TestNetworkErrors(t *testing.T) {
	t.Run("connection refused is unavailable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		err = testClient(t, "http://"+addr).Handshake(ctxTimeout(t, 5*time.Second))
		wantError(t, err, domain.KindUnavailable, "", "mesh handshake X26ABC1")
	})
	t.Run("deadline is unavailable", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer srv.Close()
		_, err := testClient(t, srv.URL).Inbox(ctxTimeout(t, 100*time.Millisecond), 0, "")
		wantError(t, err, domain.KindUnavailable, "")
	})
	t.Run("response header timeout is unavailable", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer srv.Close()
		c := testClient(t, srv.URL, func(c *ClientConfig) { c.Timeout = 100 * time.Millisecond })
		_, err := c.Inbox(context.Background(), 0, "")
		wantError(t, err, domain.KindUnavailable, "")
	})
	t.Run("untrusted server certificate is unauthorized", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer srv.Close()
		err := testClient(t, srv.URL).Handshake(ctxTimeout(t, 5*time.Second))
		wantError(t, err, domain.KindUnauthorized, "")
	})
	t.Run("TLS to a plain HTTP peer is invalid", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer srv.Close()
		err := testClient(t, strings.Replace(srv.URL, "http://", "https://", 1)).Handshake(ctxTimeout(t, 5*time.Second))
		wantError(t, err, domain.KindInvalid, "")
	})
	t.Run("connection broken mid-download is unavailable", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "only part of it")
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
		}))
		defer srv.Close()
		d, err := testClient(t, srv.URL).Download(ctxTimeout(t, 5*time.Second), "ABC", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Body.Close()
		_, err = io.ReadAll(d.Body)
		wantError(t, err, domain.KindUnavailable, "", "mesh download ABC chunk 1: reading body")
	})
	t.Run("corrupt gzip is invalid", func(t *testing.T) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(bytes.Repeat([]byte("ferry "), 1000))
		_ = zw.Close()
		b := buf.Bytes()
		b[len(b)-5] ^= 0xff // break the CRC
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(b)
		}))
		defer srv.Close()
		d, err := testClient(t, srv.URL).Download(ctxTimeout(t, 5*time.Second), "ABC", 1)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Body.Close()
		_, err = io.ReadAll(d.Body)
		wantError(t, err, domain.KindInvalid, "")
	})
}

func TestLocalValidationErrors(t *testing.T) {
	c := testClient(t, "http://127.0.0.1:1")
	ctx := context.Background()
	tests := []struct {
		name string
		err  error
	}{
		{"send without recipient", func() error {
			_, err := c.Send(ctx, Message{WorkflowID: "W"}, 1, 1, strings.NewReader("x"), false)
			return err
		}()},
		{"send without workflow", func() error {
			_, err := c.Send(ctx, Message{To: "X26ABC2"}, 1, 1, strings.NewReader("x"), false)
			return err
		}()},
		{"send with control characters", func() error {
			_, err := c.Send(ctx, Message{To: "X26ABC2", WorkflowID: "W", Subject: "a\nb"}, 1, 1, strings.NewReader("x"), false)
			return err
		}()},
		{"send chunk 2", func() error {
			_, err := c.Send(ctx, Message{To: "X26ABC2", WorkflowID: "W"}, 2, 3, strings.NewReader("x"), false)
			return err
		}()},
		{"send chunk 1 with SendChunk", c.SendChunk(ctx, "ID", 1, 3, strings.NewReader("x"), false)},
		{"send chunk beyond total", c.SendChunk(ctx, "ID", 4, 3, strings.NewReader("x"), false)},
		{"message id with a slash", c.Acknowledge(ctx, "../X26ABC2")},
		{"download chunk 0", func() error { _, err := c.Download(ctx, "ID", 0); return err }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantError(t, tt.err, domain.KindInvalid, "") })
	}
}
