//go:build integration

package sftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/sftp"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// env is a transport delivering to a fresh sshd's directory out, reading
// its sources from local files.
type env struct {
	d   *server
	out string
	src *fileSource
	ep  sftp.Endpoint
	sec secrets
	tr  *sftp.Transport
}

// newEnv starts sshd and a transport whose endpoint "test" logs in with
// the authorised key; edit changes the endpoint (nil: none).
func newEnv(t *testing.T, edit func(*sftp.Endpoint, secrets)) *env {
	t.Helper()
	d := startSSHD(t)
	e := &env{d: d, out: filepath.Join(t.TempDir(), "out"), src: &fileSource{dir: t.TempDir()}}
	if err := os.MkdirAll(e.out, 0o755); err != nil {
		t.Fatal(err)
	}
	sec := secrets{"secret:key": d.UserKey}
	e.ep = sftp.Endpoint{
		Host: "127.0.0.1", Port: d.Port, User: d.User, Directory: e.out,
		PrivateKey: "secret:key", KnownHosts: []string{d.KnownHosts()},
		Timeout: domain.Duration(5 * time.Second),
	}
	if edit != nil {
		edit(&e.ep, sec)
	}
	e.ep = e.ep.WithDefaults()
	if err := e.ep.Validate(); err != nil {
		t.Fatalf("endpoint: %v", err)
	}
	e.sec = sec
	e.tr = sftp.New(map[string]sftp.Endpoint{"test": e.ep}, sec, e.src)
	t.Cleanup(func() { _ = e.tr.Close() })
	return e
}

// transfer stores body as a new source and returns its transfer's state.
func (e *env) transfer(t *testing.T, id string, body io.Reader, size, chunkSize int64) domain.State {
	t.Helper()
	f, err := os.Create(filepath.Join(e.src.dir, id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, body); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return transporttest.NewState(t, id, domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "local", Key: "in/" + id + "/Q1 report ñ " + id + ".bin"},
		Destination: domain.Destination{Type: "sftp", Endpoint: "test"},
		Size:        size,
		ChunkSize:   chunkSize,
	})
}

// open opens the local file a Delivery names (sshd serves the local file
// system).
func (e *env) open(t *testing.T, d transport.Delivery) io.ReadCloser {
	t.Helper()
	u, err := url.Parse(d.Location)
	if err != nil || u.Scheme != "sftp" || u.Host != e.d.Addr() || u.User.Username() != e.d.User {
		t.Fatalf("Location %q is not sftp://%s@%s/…", d.Location, e.d.User, e.d.Addr())
	}
	f, err := os.Open(u.Path)
	if err != nil {
		t.Fatalf("open %s: %v", d.Location, err)
	}
	return f
}

// fileSource is a transport.Source reading each transfer's payload from
// the file named by its id; onRead, when set, is called after every read
// with the chunk and how much of it was read so far.
type fileSource struct {
	dir string

	mu     sync.Mutex
	opened []int
	onRead func(c domain.Chunk, read int64)
}

func (s *fileSource) OpenChunk(_ context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(s.dir, t.ID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, domain.Errorf(domain.KindNotFound, "source of %s is gone", t.ID)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.opened = append(s.opened, c.Index)
	hook := s.onRead
	s.mu.Unlock()
	return &chunkReader{r: io.NewSectionReader(f, c.Offset, c.Length), f: f, c: c, hook: hook}, nil
}

func (s *fileSource) chunksOpened() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.opened...)
}

type chunkReader struct {
	r    io.Reader
	f    *os.File
	c    domain.Chunk
	read int64
	hook func(domain.Chunk, int64)
}

func (r *chunkReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.read += int64(n)
	if r.hook != nil {
		r.hook(r.c, r.read)
	}
	return n, err
}

func (r *chunkReader) Close() error { return r.f.Close() }

func TestContract(t *testing.T) {
	e := newEnv(t, nil)
	const chunkSize = 256 << 10
	transporttest.Run(t, transporttest.Harness{
		Transport: e.tr,
		ChunkSize: chunkSize,
		NewTransfer: func(t *testing.T, id string, src io.ReadSeeker, size int64) domain.State {
			return e.transfer(t, id, src, size, chunkSize)
		},
		Received: func(t *testing.T, _ domain.State, d transport.Delivery) io.ReadCloser { return e.open(t, d) },
		DeleteSource: func(t *testing.T, st domain.State) {
			if err := os.Remove(filepath.Join(e.src.dir, st.ID)); err != nil {
				t.Fatal(err)
			}
		},
		// Every chunk, the first included, is written at its offset into
		// the same temporary file; an empty file is an empty chunk 1.
		Features: transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
	})
	// The missing-source cases leave their temporary files: the advance
	// handler removes them with Abort when a transfer fails for good.
}

// deliver sends st's chunks from..to.
func deliver(t *testing.T, tr transport.Transport, st domain.State, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		c := st.Request.Chunk(i)
		sent, err := tr.SendChunk(context.Background(), st, c)
		if err != nil {
			t.Fatalf("SendChunk %d: %v", i, err)
		}
		if sent.Bytes != c.Length {
			t.Fatalf("SendChunk %d sent %d bytes, want %d", i, sent.Bytes, c.Length)
		}
	}
}

func begin(t *testing.T, tr transport.Transport, st domain.State) {
	t.Helper()
	if _, err := tr.Begin(context.Background(), st); err != nil {
		t.Fatalf("Begin: %v", err)
	}
}

func complete(t *testing.T, tr transport.Transport, st domain.State) transport.Delivery {
	t.Helper()
	d, err := tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	return d
}

// checkSame fails unless the delivered file has seed's payload of size
// bytes.
func checkSame(t *testing.T, e *env, d transport.Delivery, seed uint64, size int64) {
	t.Helper()
	rc := e.open(t, d)
	defer func() { _ = rc.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), transporttest.PayloadSHA256(seed, size); n != size || got != want {
		t.Errorf("delivered %d bytes, sha256 %s; want %d, %s", n, got, size, want)
	}
}

// assertNoTemp fails if dir holds a temporary file.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".part") {
			t.Errorf("temporary file %s is left in %s", en.Name(), dir)
		}
	}
}

func wantKind(t *testing.T, what string, err error, want domain.Kind) *domain.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want a %s error", what, want)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("%s: %v (%T) is not a *domain.Error", what, err, err)
	}
	if de.Kind != want {
		t.Fatalf("%s: kind %s (%v), want %s", what, de.Kind, err, want)
	}
	return de
}

func TestLargeFileArrivesIntact(t *testing.T) {
	e := newEnv(t, nil)
	const size, chunkSize = 64 << 20, 8 << 20
	st := e.transfer(t, "large", transporttest.Payload(1, size), size, chunkSize)
	if st.Request.Chunks != 8 {
		t.Fatalf("%d chunks, want 8", st.Request.Chunks)
	}
	start := time.Now()
	begin(t, e.tr, st)
	deliver(t, e.tr, st, 1, st.Request.Chunks)
	d := complete(t, e.tr, st)
	took := time.Since(start)
	t.Logf("64 MiB in 8 chunks over loopback: %v (%.0f MiB/s)", took.Round(time.Millisecond), 64/took.Seconds())
	checkSame(t, e, d, 1, size)
	assertNoTemp(t, e.out)
}

func TestServerKilledMidTransferResumes(t *testing.T) {
	e := newEnv(t, nil)
	const size, chunkSize = 16 << 20, 2 << 20
	st := e.transfer(t, "resume", transporttest.Payload(2, size), size, chunkSize)
	begin(t, e.tr, st)
	deliver(t, e.tr, st, 1, 3)

	// Kill the server while chunk 4 is being written, 512 KiB in.
	var once sync.Once
	e.src.mu.Lock()
	e.src.onRead = func(c domain.Chunk, read int64) {
		if c.Index == 4 && read >= 512<<10 {
			once.Do(e.d.stop)
		}
	}
	e.src.mu.Unlock()
	// The write on the cached connection fails; only because that failure
	// is KindUnavailable does the transport try once more on a new
	// connection, which is refused: KindUnavailable again.
	_, err := e.tr.SendChunk(context.Background(), st, st.Request.Chunk(4))
	de := wantKind(t, "SendChunk 4 with the server killed", err, domain.KindUnavailable)
	t.Logf("SendChunk 4: %v", de)
	_, err = e.tr.SendChunk(context.Background(), st, st.Request.Chunk(4))
	wantKind(t, "SendChunk 4 with the server down", err, domain.KindUnavailable)
	_, err = e.tr.Complete(context.Background(), st)
	wantKind(t, "Complete with the server down", err, domain.KindUnavailable)

	e.d.start() // same host key, same port
	before := len(e.src.chunksOpened())
	deliver(t, e.tr, st, 4, st.Request.Chunks)
	if got := e.src.chunksOpened()[before:]; got[0] != 4 || len(got) != st.Request.Chunks-3 {
		t.Errorf("after the restart the source was read for chunks %v, want 4..%d once each", got, st.Request.Chunks)
	}
	d := complete(t, e.tr, st)
	checkSame(t, e, d, 2, size)
	entries, err := os.ReadDir(e.out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != sftp.FileName(st) {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("the directory holds %v, want just %s", names, sftp.FileName(st))
	}
	if again := complete(t, e.tr, st); again != d {
		t.Errorf("Complete again = %+v, want %+v", again, d)
	}
}

func TestWrongHostKeyFailsForGood(t *testing.T) {
	var other string
	e := newEnv(t, func(ep *sftp.Endpoint, _ secrets) {
		pub, _ := newKey(t)
		other = "127.0.0.1 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		ep.KnownHosts = []string{other}
	})
	st := e.transfer(t, "hostkey", transporttest.Payload(3, 10), 10, 1<<20)
	start := time.Now()
	_, err := e.tr.Begin(context.Background(), st)
	de := wantKind(t, "Begin against an unpinned host key", err, domain.KindInvalid)
	if de.Kind.Retryable() {
		t.Errorf("%v is retryable", err)
	}
	if fp := ssh.FingerprintSHA256(e.d.HostKey); !strings.Contains(err.Error(), fp) {
		t.Errorf("error %q does not name the server's fingerprint %s", err, fp)
	}
	t.Logf("Begin: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	_, err = e.tr.SendChunk(context.Background(), st, st.Request.Chunk(1))
	wantKind(t, "SendChunk against an unpinned host key", err, domain.KindInvalid)
}

func TestWrongPrivateKeyFailsForGood(t *testing.T) {
	e := newEnv(t, func(_ *sftp.Endpoint, sec secrets) {
		_, wrong := newKey(t)
		sec["secret:key"] = wrong
	})
	st := e.transfer(t, "userkey", transporttest.Payload(4, 10), 10, 1<<20)
	_, err := e.tr.Begin(context.Background(), st)
	wantKind(t, "Begin with a key the server does not authorise", err, domain.KindUnauthorized)
	t.Logf("Begin: %v", err)
}

func TestMkdirCreatesNestedDirectories(t *testing.T) {
	var dir string
	e := newEnv(t, func(ep *sftp.Endpoint, _ secrets) {
		dir = filepath.Join(ep.Directory, "a", "b", "c")
		ep.Directory, ep.Mkdir = dir, true
	})
	const size = 3<<20 + 5
	st := e.transfer(t, "mkdir", transporttest.Payload(5, size), size, 1<<20)
	begin(t, e.tr, st)
	begin(t, e.tr, st) // repeated: the directory exists
	deliver(t, e.tr, st, 1, st.Request.Chunks)
	d := complete(t, e.tr, st)
	if want := filepath.Join(dir, sftp.FileName(st)); !strings.HasSuffix(d.Location, want) {
		t.Errorf("Location %s, want it to end in %s", d.Location, want)
	}
	checkSame(t, e, d, 5, size)
}

func TestMissingDirectoryWithoutMkdir(t *testing.T) {
	e := newEnv(t, func(ep *sftp.Endpoint, _ secrets) { ep.Directory = filepath.Join(ep.Directory, "missing") })
	st := e.transfer(t, "nodir", transporttest.Payload(6, 10), 10, 1<<20)
	_, err := e.tr.Begin(context.Background(), st)
	wantKind(t, "Begin into a missing directory", err, domain.KindNotFound)
}

func TestAbortRemovesTheTemporaryFile(t *testing.T) {
	e := newEnv(t, nil)
	const size = 3 << 20
	st := e.transfer(t, "abort", transporttest.Payload(7, size), size, 1<<20)
	begin(t, e.tr, st)
	deliver(t, e.tr, st, 1, 1)
	if _, err := os.Stat(filepath.Join(e.out, sftp.TempName(st))); err != nil {
		t.Fatalf("no temporary file after chunk 1: %v", err)
	}
	for i := range 2 {
		if err := e.tr.Abort(context.Background(), st); err != nil {
			t.Fatalf("Abort %d: %v", i+1, err)
		}
	}
	assertNoTemp(t, e.out)
	_, err := e.tr.SendChunk(context.Background(), st, st.Request.Chunk(2))
	wantKind(t, "SendChunk 2 after Abort", err, domain.KindNotFound)
	_, err = e.tr.Complete(context.Background(), st)
	wantKind(t, "Complete after Abort", err, domain.KindNotFound)
}

func TestCompleteReplacesAnExistingFile(t *testing.T) {
	for _, plain := range []bool{false, true} {
		name := "posix-rename"
		if plain {
			name = "plain rename"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil)
			const size = 1<<20 + 3
			st := e.transfer(t, "replace", transporttest.Payload(8, size), size, 1<<20)
			writeFile(t, filepath.Join(e.out, sftp.FileName(st)), []byte("an older delivery"), 0o644)
			begin(t, e.tr, st)
			if plain {
				sftp.UsePlainRename(e.tr)
			}
			deliver(t, e.tr, st, 1, st.Request.Chunks)
			d := complete(t, e.tr, st)
			checkSame(t, e, d, 8, size)
			if again := complete(t, e.tr, st); again != d {
				t.Errorf("Complete again = %+v, want %+v", again, d)
			}
			assertNoTemp(t, e.out)
		})
	}
}

func TestConcurrentTransfersShareTheEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	const size, n = 4<<20 + 11, 4
	var wg sync.WaitGroup
	sts := make([]domain.State, n)
	for i := range n {
		sts[i] = e.transfer(t, "concurrent-"+string(rune('a'+i)), transporttest.Payload(uint64(10+i), size), size, 1<<20)
	}
	ds := make([]transport.Delivery, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := sts[i]
			if _, err := e.tr.Begin(context.Background(), st); err != nil {
				errs[i] = err
				return
			}
			for j := 1; j <= st.Request.Chunks; j++ {
				if _, err := e.tr.SendChunk(context.Background(), st, st.Request.Chunk(j)); err != nil {
					errs[i] = err
					return
				}
			}
			ds[i], errs[i] = e.tr.Complete(context.Background(), st)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("transfer %d: %v", i, errs[i])
		}
		checkSame(t, e, ds[i], uint64(10+i), size)
	}
}

func TestCancelledContextStopsAWrite(t *testing.T) {
	e := newEnv(t, nil)
	const size, chunkSize = 8 << 20, 4 << 20
	st := e.transfer(t, "cancel", transporttest.Payload(9, size), size, chunkSize)
	begin(t, e.tr, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.src.mu.Lock()
	e.src.onRead = func(c domain.Chunk, read int64) {
		if read >= 1<<20 {
			cancel()
		}
	}
	e.src.mu.Unlock()
	start := time.Now()
	_, err := e.tr.SendChunk(ctx, st, st.Request.Chunk(1))
	wantKind(t, "SendChunk with its context cancelled", err, domain.KindUnavailable)
	t.Logf("SendChunk: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	e.src.mu.Lock()
	e.src.onRead = nil
	e.src.mu.Unlock()
	// The next call connects again and the transfer carries on.
	deliver(t, e.tr, st, 1, st.Request.Chunks)
	checkSame(t, e, complete(t, e.tr, st), 9, size)
}

// partsSource is a source that chose its chunks (a MESH message): chunk i
// is parts[i-1], whatever the plan says.
type partsSource [][]byte

func (p partsSource) OpenChunk(_ context.Context, _ domain.State, c domain.Chunk) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(p[c.Index-1])), nil
}

func TestSourceChunkedTransfer(t *testing.T) {
	e := newEnv(t, nil)
	all, err := io.ReadAll(transporttest.Payload(20, 300_005))
	if err != nil {
		t.Fatal(err)
	}
	parts := partsSource{all[:200_000], all[200_000:300_000], all[300_000:]}
	tr := sftp.New(map[string]sftp.Endpoint{"test": e.ep}, e.sec, parts)
	t.Cleanup(func() { _ = tr.Close() })
	st := transporttest.NewState(t, "chunked", domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: "X26ABC", MessageID: "M1"},
		Destination: domain.Destination{Type: "sftp", Endpoint: "test"},
		Size:        int64(len(all)),
		Chunks:      len(parts),
	})
	apply := func(c domain.Command) {
		t.Helper()
		evs, err := domain.Decide(st, c, time.Now().UTC())
		if err != nil {
			t.Fatalf("decide %T: %v", c, err)
		}
		st = domain.Fold(st, evs...)
	}
	ref, err := tr.Begin(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	apply(domain.Start{Ref: ref})
	for i := 1; i <= len(parts); i++ {
		sent, err := tr.SendChunk(context.Background(), st, st.Request.Chunk(i))
		if err != nil {
			t.Fatalf("SendChunk %d: %v", i, err)
		}
		if sent.Bytes != int64(len(parts[i-1])) {
			t.Fatalf("SendChunk %d sent %d bytes, want %d", i, sent.Bytes, len(parts[i-1]))
		}
		if i == 2 { // sent again before it is recorded: the same bytes, the same place
			if _, err := tr.SendChunk(context.Background(), st, st.Request.Chunk(i)); err != nil {
				t.Fatalf("SendChunk %d again: %v", i, err)
			}
		}
		apply(domain.RecordChunk{Index: i, Bytes: sent.Bytes})
	}
	_, err = tr.SendChunk(context.Background(), st, domain.Chunk{Index: 2, Offset: -1, Length: -1})
	wantKind(t, "SendChunk of a source-chunked chunk already recorded", err, domain.KindInvalid)
	d, err := tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	rc := e.open(t, d)
	defer func() { _ = rc.Close() }()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Errorf("delivered %d bytes, want the %d sent", len(got), len(all))
	}
	if want := "/" + sftp.FileName(st); !strings.HasSuffix(d.Location, want) || sftp.FileName(st) != "chunked" {
		t.Errorf("Location %s, want it named after the transfer id", d.Location)
	}
}

func TestEncryptedPrivateKey(t *testing.T) {
	for _, tc := range []struct {
		name       string
		passphrase string // "" : none configured
		want       domain.Kind
	}{
		{"with its passphrase", "correct horse", ""},
		{"with a wrong passphrase", "wrong", domain.KindInvalid},
		{"without a passphrase", "", domain.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(ep *sftp.Endpoint, sec secrets) {
				if tc.passphrase != "" {
					ep.Passphrase = "secret:pp"
					sec["secret:pp"] = []byte(tc.passphrase)
				}
			})
			e.sec["secret:key"] = e.d.encrypted(t, "correct horse")
			st := e.transfer(t, "encrypted", transporttest.Payload(21, 10), 10, 1<<20)
			_, err := e.tr.Begin(context.Background(), st)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Begin: %v", err)
				}
				return
			}
			wantKind(t, "Begin", err, tc.want)
			if strings.Contains(err.Error(), tc.passphrase) && tc.passphrase != "" || strings.Contains(err.Error(), "correct horse") {
				t.Errorf("error %q echoes a passphrase", err)
			}
			t.Logf("Begin: %v", err)
		})
	}
}

func TestMissingSecretFailsForGood(t *testing.T) {
	e := newEnv(t, nil)
	delete(e.sec, "secret:key")
	st := e.transfer(t, "nosecret", transporttest.Payload(22, 10), 10, 1<<20)
	_, err := e.tr.Begin(context.Background(), st)
	wantKind(t, "Begin without the key's secret", err, domain.KindNotFound)
	if want := "privateKey secret:key: secret secret:key does not exist"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
