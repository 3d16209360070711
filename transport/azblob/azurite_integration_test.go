//go:build integration

package azblob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/azblob"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// Azurite's well-known development account and its documented public key
// (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azurite is an Azurite blob service the test started, on a loopback port,
// keeping its data in dir.
type azurite struct {
	port int
	dir  string
	cmd  *exec.Cmd
	log  *syncBuffer
}

// URL is the dev account's service URL.
func (a *azurite) URL() string { return "http://127.0.0.1:" + strconv.Itoa(a.port) + "/" + devAccount }

// azuriteBin finds azurite-blob as scripts/install-test-peers.sh installs it, in the
// repository's .cache/azurite.
func azuriteBin(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	bin := filepath.Join(dir, ".cache", "azurite", "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Azurite is not installed at %s: run scripts/install-test-peers.sh (or set FERRY_AZURITE_BLOB to a running Azurite's http://127.0.0.1:PORT/devstoreaccount1)", bin)
	}
	return bin
}

// startAzurite starts Azurite on a free loopback port with a fresh data
// directory, and stops it when the test ends.
func startAzurite(t *testing.T) *azurite {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	a := &azurite{port: port, dir: t.TempDir()}
	a.start(t)
	t.Cleanup(func() { a.stop(t.Logf) })
	return a
}

// start runs Azurite on a's port and directory and waits until it listens.
func (a *azurite) start(t *testing.T) {
	t.Helper()
	a.log = &syncBuffer{}
	a.cmd = exec.Command(azuriteBin(t), "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(a.port),
		"--location", a.dir, "--skipApiVersionCheck", "--loose", "--silent")
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start Azurite: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(a.port), time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			a.stop(t.Logf)
			t.Fatalf("Azurite did not listen on port %d within 30s: %s", a.port, a.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops Azurite gracefully and waits for it to exit. On SIGINT
// Azurite saves its metadata and says "successfully closed", but its
// process may linger for seconds after; it is killed once it has said so.
func (a *azurite) stop(logf func(format string, args ...any)) {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(done) }()
	deadline := time.After(15 * time.Second)
wait:
	for !strings.Contains(a.log.String(), "successfully closed") {
		select {
		case <-done:
			break wait
		case <-deadline:
			logf("Azurite did not close within 15s; killing it: %s", a.log)
			break wait
		case <-time.After(50 * time.Millisecond):
		}
	}
	_ = a.cmd.Process.Kill()
	<-done
	a.cmd = nil
}

// syncBuffer is a bytes.Buffer safe for Azurite's output and the test to
// use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	sharedOnce sync.Once
	sharedURL  string
)

// serviceURL returns the Azurite to test against: FERRY_AZURITE_BLOB when
// set (scripts/test-integration.sh starts one), otherwise one this test
// binary starts from .cache/azurite and keeps for its other tests.
func serviceURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("FERRY_AZURITE_BLOB"); u != "" {
		return u
	}
	sharedOnce.Do(func() {
		a := &azurite{}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a.port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		a.dir, err = os.MkdirTemp("", "ferry-azurite-")
		if err != nil {
			t.Fatal(err)
		}
		a.start(t)
		stopShared = func() { a.stop(log.Printf); _ = os.RemoveAll(a.dir) }
		sharedURL = a.URL()
	})
	if sharedURL == "" {
		t.Fatal("Azurite did not start")
	}
	return sharedURL
}

var stopShared = func() {}

func TestMain(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

// secrets resolves references from a map: ferry's own interface, filled by
// the test.
type secrets map[string]string

func (s secrets) Resolve(_ context.Context, ref string) ([]byte, error) {
	v, ok := s[ref]
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "secret %s does not exist", ref)
	}
	return []byte(v), nil
}

// source is a transport.Source over payloads held in the test, by transfer
// id.
type source struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *source) put(id string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[id] = b
}

func (s *source) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *source) OpenChunk(_ context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	s.mu.Lock()
	b, ok := s.m[t.ID]
	s.mu.Unlock()
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "source of %s does not exist", t.ID)
	}
	return io.NopCloser(io.NewSectionReader(bytes.NewReader(b), c.Offset, c.Length)), nil
}

// env is a fresh container on an Azurite, a transport with endpoints into
// it, and the source the transport reads.
type env struct {
	url       string
	container string
	cc        *container.Client
	src       *source
	tr        *azblob.Transport
	endpoints map[string]azblob.Endpoint
}

// newEnv makes a uniquely named container on the Azurite at url and a
// transport with the endpoints "dev" (the container, prefix "out/"),
// "wrong-key" (a key Azurite does not know) and "no-container".
func newEnv(t *testing.T, url string) *env {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	e := &env{url: url, container: "ferry-test-" + hex.EncodeToString(b), src: &source{}}
	cred, err := blob.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	e.cc, err = container.NewClientWithSharedKeyCredential(url+"/"+e.container, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cc.Create(context.Background(), nil); err != nil {
		t.Fatalf("create container %s on %s: %v", e.container, url, err)
	}
	raw := map[string]json.RawMessage{
		"dev":          json.RawMessage(`{"serviceURL": "` + url + `", "account": "devstoreaccount1", "container": "` + e.container + `", "prefix": "out/", "sharedKey": "secret:dev-key", "timeout": "30s"}`),
		"wrong-key":    json.RawMessage(`{"serviceURL": "` + url + `", "account": "devstoreaccount1", "container": "` + e.container + `", "sharedKey": "secret:wrong-key", "timeout": "30s"}`),
		"no-container": json.RawMessage(`{"serviceURL": "` + url + `", "account": "devstoreaccount1", "container": "ferry-no-such-container", "sharedKey": "secret:dev-key", "timeout": "30s"}`),
	}
	e.endpoints, err = azblob.ParseEndpoints(raw)
	if err != nil {
		t.Fatal(err)
	}
	sec := secrets{"secret:dev-key": devKey, "secret:wrong-key": "d3Jvbmcga2V5IGZvciBkZXZzdG9yZWFjY291bnQx"}
	e.tr = azblob.New(e.endpoints, sec, e.src)
	return e
}

// transfer stores body as a source and returns its transfer to endpoint,
// not begun.
func (e *env) transfer(t *testing.T, id, endpoint string, body io.Reader, size, chunkSize int64) domain.State {
	t.Helper()
	b, err := io.ReadAll(body)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("read payload: %d bytes, %v; want %d", len(b), err, size)
	}
	e.src.put(id, b)
	return transporttest.NewState(t, id, domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "in", Key: "in/" + id + "/Q1 report " + id + ".bin"},
		Destination: domain.Destination{Type: "azblob", Endpoint: endpoint},
		Size:        size,
		ChunkSize:   chunkSize,
	})
}

// open opens the blob a Delivery names.
func (e *env) open(t *testing.T, d transport.Delivery) io.ReadCloser {
	t.Helper()
	want := "azblob://" + devAccount + "/" + e.container + "/"
	name, ok := strings.CutPrefix(d.Location, want)
	if !ok {
		t.Fatalf("Location %q does not begin %q", d.Location, want)
	}
	out, err := e.cc.NewBlobClient(name).DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("download %s: %v", d.Location, err)
	}
	return out.Body
}
