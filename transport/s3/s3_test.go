package s3transport_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	s3transport "github.com/ferryhq/ferry/transport/s3"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// newClient returns an S3 client for an emulator at endpoint: us-east-1,
// static test credentials, path-style addressing.
func newClient(endpoint string, maxAttempts int) *s3.Client {
	return s3.New(s3.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint:     aws.String(endpoint),
		UsePathStyle:     true,
		RetryMaxAttempts: maxAttempts,
	})
}

func state(t *testing.T, id string, size int64, src domain.Source) domain.State {
	t.Helper()
	st := transporttest.NewState(t, id, domain.Requested{
		Source:      src,
		Destination: domain.Destination{Type: "s3", Bucket: "dst", Prefix: "out/"},
		Filename:    "report.csv",
		Size:        size,
		ChunkSize:   5 * domain.MiB,
	})
	st.Ref = "upload-1"
	st.Started = true
	return st
}

func wantKind(t *testing.T, err error, kind domain.Kind, code string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *domain.Error", err, err)
	}
	if de.Kind != kind || (code != "" && de.Code != code) {
		t.Errorf("error %v: kind %s code %q, want kind %s code %q", err, de.Kind, de.Code, kind, code)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func TestNetworkErrorsAreUnavailable(t *testing.T) {
	tr := s3transport.New(newClient(closedPort(t), 1))
	st := state(t, "01NET", 12*domain.MiB, domain.Source{Kind: "s3", Bucket: "src", Key: "in/a"})
	_, err := tr.Begin(t.Context(), st)
	t.Run("Begin", func(t *testing.T) { wantKind(t, err, domain.KindUnavailable, "") })
	_, err = tr.SendChunk(t.Context(), st, st.Request.Chunk(2))
	t.Run("SendChunk", func(t *testing.T) { wantKind(t, err, domain.KindUnavailable, "") })
	_, err = tr.Complete(t.Context(), st)
	t.Run("Complete", func(t *testing.T) { wantKind(t, err, domain.KindUnavailable, "") })
}

// TestInvalidRequestsFailBeforeCallingS3 points at a closed port: a request
// that reached the network would fail as unavailable instead.
func TestInvalidRequestsFailBeforeCallingS3(t *testing.T) {
	tr := s3transport.New(newClient(closedPort(t), 1))
	src := domain.Source{Kind: "s3", Bucket: "src", Key: "in/a"}
	good := state(t, "01INV", 12*domain.MiB, src)
	tests := []struct {
		name string
		call func() error
	}{
		{"chunk beyond the plan", func() error {
			_, err := tr.SendChunk(t.Context(), good, domain.Chunk{Index: 4, Offset: 15 * domain.MiB, Length: 1})
			return err
		}},
		{"chunk not matching the plan", func() error {
			_, err := tr.SendChunk(t.Context(), good, domain.Chunk{Index: 2, Offset: 0, Length: 5 * domain.MiB})
			return err
		}},
		{"chunk before Begin", func() error {
			st := good
			st.Ref = ""
			_, err := tr.SendChunk(t.Context(), st, st.Request.Chunk(1))
			return err
		}},
		{"source not in S3", func() error {
			st := good
			st.Request.Source.Kind = "sftp"
			_, err := tr.SendChunk(t.Context(), st, st.Request.Chunk(1))
			return err
		}},
		{"destination not S3", func() error {
			st := good
			st.Request.Destination = domain.Destination{Type: "null"}
			_, err := tr.Begin(t.Context(), st)
			return err
		}},
		{"chunks smaller than S3's minimum part", func() error {
			st := transporttest.NewState(t, "01SMALL", domain.Requested{
				Source: src, Destination: domain.Destination{Type: "s3", Bucket: "dst"}, Size: 3 * domain.MiB, ChunkSize: domain.MiB,
			})
			_, err := tr.Begin(t.Context(), st)
			return err
		}},
		{"more chunks than S3 allows", func() error {
			st := good
			st.Request.Chunks = s3transport.MaxParts + 1
			_, err := tr.Begin(t.Context(), st)
			return err
		}},
		{"complete before Begin", func() error {
			st := good
			st.Ref = ""
			_, err := tr.Complete(t.Context(), st)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("got no error")
			}
			wantKind(t, err, domain.KindInvalid, "")
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name, filename, sourceKey, prefix, template, want string
	}{
		{"route's filename template", "report.csv", "in/x.bin", "out/", "{sender}/{transferId}{ext}", "out/X26ABC1/01ID.csv"},
		{"filename wins", "report.csv", "in/x.bin", "out/", "", "out/report.csv"},
		{"source base name when no filename", "", "in/2024/x y.bin", "out/", "", "out/x_y.bin"},
		{"traversal in filename", "../../etc/passwd", "in/x", "out/", "", "out/passwd"},
		{"traversal in source key", "", "in/../..", "", "", "01ID"},
		{"empty prefix", "a.txt", "k", "", "", "a.txt"},
		{"unicode filename", "données.csv", "k", "p/", "", "p/donn_es.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := domain.State{ID: "01ID", Request: domain.Requested{
				Filename:    tt.filename,
				Sender:      "X26ABC1",
				Source:      domain.Source{Kind: "s3", Bucket: "b", Key: tt.sourceKey},
				Destination: domain.Destination{Type: "s3", Bucket: "dst", Prefix: tt.prefix, Filename: tt.template},
			}}
			if got := s3transport.Key(st); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
			if got, want := s3transport.Location(st), "s3://dst/"+tt.want; got != want {
				t.Errorf("Location = %q, want %q", got, want)
			}
		})
	}
}

func TestCopySource(t *testing.T) {
	tests := []struct {
		name string
		src  domain.Source
		want string
	}{
		{"plain", domain.Source{Bucket: "b", Key: "in/a.bin"}, "b/in/a.bin"},
		{"reserved characters", domain.Source{Bucket: "b", Key: "in/a b+c?d#e%f&g=h"}, "b/in/a%20b%2Bc%3Fd%23e%25f%26g%3Dh"},
		{"unicode", domain.Source{Bucket: "b", Key: "ñ/é"}, "b/%C3%B1/%C3%A9"},
		{"version", domain.Source{Bucket: "b", Key: "k", VersionID: "3/L4kqtJl+cTn=="}, "b/k?versionId=3%2FL4kqtJl%2BcTn%3D%3D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s3transport.CopySource(tt.src); got != tt.want {
				t.Errorf("CopySource = %q, want %q", got, tt.want)
			}
		})
	}
}

// stub records the requests it gets and answers with a fixed status and body.
type stub struct {
	mu     sync.Mutex
	reqs   []*http.Request
	status int
	body   string
}

func (s *stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

// TestSendChunkCopyRequest checks the UploadPartCopy request S3 gets, and
// that a source replaced since its ETag was taken fails with KindConflict.
// moto ignores x-amz-copy-source-if-match, so a stub server stands in.
func TestSendChunkCopyRequest(t *testing.T) {
	s := &stub{status: http.StatusPreconditionFailed, body: `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>x-amz-copy-source-If-Match</Condition></Error>`}
	srv := httptest.NewServer(s)
	defer srv.Close()
	tr := s3transport.New(newClient(srv.URL, 1))
	src := domain.Source{Kind: "s3", Bucket: "src", Key: "in/a b+c.bin", VersionID: "v+1", ETag: `"abc123"`}
	st := state(t, "01COPY", 12*domain.MiB, src)

	_, err := tr.SendChunk(t.Context(), st, st.Request.Chunk(2))
	wantKind(t, err, domain.KindConflict, "PreconditionFailed")
	if domain.KindOf(err).Retryable() {
		t.Error("a replaced source is retryable, want it final")
	}
	if len(s.reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(s.reqs))
	}
	r := s.reqs[0]
	checks := []struct{ what, got, want string }{
		{"method", r.Method, http.MethodPut},
		{"path", r.URL.EscapedPath(), "/dst/out/report.csv"},
		{"partNumber", r.URL.Query().Get("partNumber"), "2"},
		{"uploadId", r.URL.Query().Get("uploadId"), "upload-1"},
		{"x-amz-copy-source", r.Header.Get("X-Amz-Copy-Source"), "src/in/a%20b%2Bc.bin?versionId=v%2B1"},
		{"x-amz-copy-source-range", r.Header.Get("X-Amz-Copy-Source-Range"), "bytes=5242880-10485759"},
		{"x-amz-copy-source-if-match", r.Header.Get("X-Amz-Copy-Source-If-Match"), `"abc123"`},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

// TestSendChunkWholeFileHasNoRange: S3 documents copy ranges only for
// sources over 5 MB, so a one-chunk file is copied whole.
func TestSendChunkWholeFileHasNoRange(t *testing.T) {
	s := &stub{status: http.StatusOK, body: `<CopyPartResult><ETag>"e1"</ETag></CopyPartResult>`}
	srv := httptest.NewServer(s)
	defer srv.Close()
	tr := s3transport.New(newClient(srv.URL, 1))
	st := state(t, "01ONE", 1000, domain.Source{Kind: "s3", Bucket: "src", Key: "k"})
	ref, err := tr.SendChunk(t.Context(), st, st.Request.Chunk(1))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Ref != `"e1"` || ref.Bytes != 1000 {
		t.Errorf("sent = %+v, want ref %q and 1000 bytes", ref, `"e1"`)
	}
	if got := s.reqs[0].Header.Get("X-Amz-Copy-Source-Range"); got != "" {
		t.Errorf("x-amz-copy-source-range = %q, want none", got)
	}
	if got := s.reqs[0].Header.Get("X-Amz-Copy-Source-If-Match"); got != "" {
		t.Errorf("x-amz-copy-source-if-match = %q, want none without a source ETag", got)
	}
}

func TestThrottlingIsUnavailable(t *testing.T) {
	s := &stub{status: http.StatusServiceUnavailable, body: `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`}
	srv := httptest.NewServer(s)
	defer srv.Close()
	tr := s3transport.New(newClient(srv.URL, 1))
	st := state(t, "01SLOW", 12*domain.MiB, domain.Source{Kind: "s3", Bucket: "src", Key: "k"})
	_, err := tr.Begin(t.Context(), st)
	wantKind(t, err, domain.KindUnavailable, "SlowDown")
	if !strings.Contains(err.Error(), "SlowDown") {
		t.Errorf("error %q does not name the S3 code", err)
	}
}
