//go:build integration

// Package integration holds the end-to-end tests: they run against the
// local stack (moto server started by scripts/test-integration.sh, whose URL
// is in FERRY_AWS_ENDPOINT) and a real `ferry local` process (FERRY_BIN).
package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/local/esm"
	"github.com/ferryhq/ferry/internal/local/resources"
	"github.com/ferryhq/ferry/store"
)

// env is the shared test environment: one stack, one ferry local.
type env struct {
	endpoint string
	bin      string
	stateDir string
	routes   string
	peers    *peers
	res      resources.Resources

	awsCfg aws.Config
	s3     *s3.Client
	sqs    *sqs.Client
	store  *store.Store

	mu    sync.Mutex
	local *localProc
	// localArgs are more arguments for the next startLocal (e.g. a
	// benchmark's --cpuprofile).
	localArgs []string
}

var stack *env

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	endpoint, bin := os.Getenv("FERRY_AWS_ENDPOINT"), os.Getenv("FERRY_BIN")
	if endpoint == "" || bin == "" {
		return 0, fmt.Errorf("FERRY_AWS_ENDPOINT and FERRY_BIN must be set: run `make test-integration`")
	}
	stateDir, err := os.MkdirTemp("", "ferry-integration-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(stateDir)
	peers, routes, err := startPeers(stateDir)
	if err != nil {
		return 0, err
	}
	defer peers.stop()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithBaseEndpoint(endpoint),
	)
	if err != nil {
		return 0, err
	}
	stack = &env{
		endpoint: endpoint, bin: bin, stateDir: stateDir, routes: routes, peers: peers,
		res:    resources.Defaults(),
		awsCfg: cfg,
		s3:     s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		sqs:    sqs.NewFromConfig(cfg),
		store:  store.New(dynamodb.NewFromConfig(cfg), resources.Defaults().Table),
	}
	if _, err := stack.startLocal(); err != nil {
		return 0, err
	}
	code := m.Run()
	stack.stopLocal(syscall.SIGTERM)
	return code, nil
}

// localProc is a running `ferry local`.
type localProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	// api is the HTTP API's URL, live the WebSocket API's, console the web
	// console's, smtp the SMTP listener's address and smtpCert its STARTTLS
	// certificate's file, from the ready line.
	api, live, console, smtp, smtpCert string
}

// startLocal starts `ferry local` and waits until it says it is ready.
func (e *env) startLocal() (*localProc, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	logPath := filepath.Join(e.stateDir, fmt.Sprintf("ferry-local-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	seed, err := filepath.Abs("testdata/seed.json")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.bin, "local", "--routes", e.routes, "--seed", seed, "--state-dir", e.stateDir, "--api", "127.0.0.1:0", "--live", "127.0.0.1:0", "--smtp", "127.0.0.1:0", "--console", "127.0.0.1:0")
	cmd.Args = append(cmd.Args, e.localArgs...)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL="+e.endpoint,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"FERRY_S3_PATH_STYLE=true",
		// Hydra's client_credentials tokens name the client in sub: the
		// client's id is its party.
		"FERRY_OIDC_ISSUER="+e.peers.hydra.Issuer, "FERRY_OIDC_AUDIENCE="+oidcAudience, "FERRY_OIDC_PARTY_CLAIM=sub",
	)
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logf, pw)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &localProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		logf.Close()
		close(p.done)
	}()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "ferry local: ready "); ok {
				var r struct{ API, Live, Console, SMTP, SMTPCert string }
				_ = json.Unmarshal([]byte(line), &r)
				p.api, p.live, p.console, p.smtp, p.smtpCert = r.API, r.Live, r.Console, r.SMTP, r.SMTPCert
				ready <- true
				_, _ = io.Copy(io.Discard, pr)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("ferry local exited before it was ready:\n%s", out)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("ferry local not ready after 60s:\n%s", out)
	}
	e.local = p
	return p, nil
}

// stopLocal sends sig to ferry local and waits for it to exit.
func (e *env) stopLocal(sig syscall.Signal) {
	e.mu.Lock()
	p := e.local
	e.local = nil
	e.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if sig == syscall.SIGKILL {
		// A killed process may have left an SQS receive waiting in moto (a
		// long poll of esm.DefaultWaitTime); a message arriving meanwhile
		// (the s3:TestEvent a restarted ferry local causes when it
		// configures the buckets' notifications, or an upload) would go to
		// it and stay invisible for the receive's visibility timeout. Let
		// that poll end first.
		time.Sleep(esm.DefaultWaitTime + 2*time.Second)
	}
}

// upload streams size deterministic pseudo-random bytes to bucket/key with
// metadata, and returns the transfer id intake will give it and the
// payload's sha256.
func (e *env) upload(t testing.TB, key string, size int64, meta map[string]string) (id, sum string) {
	t.Helper()
	// Generate the payload on disk (hashing it on the way), then upload the
	// file: a seekable body streams without being held in memory.
	f, err := os.CreateTemp(t.TempDir(), "payload-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	src := io.LimitReader(&prng{r: rand.NewPCG(uint64(size), uint64(len(key)))}, size)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put, err := e.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(e.res.UploadBucket), Key: &key, Body: f,
		ContentLength: aws.Int64(size), Metadata: meta,
	})
	if err != nil {
		t.Fatalf("upload %s: %v", key, err)
	}
	head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.res.UploadBucket), Key: &key, VersionId: put.VersionId})
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return domain.ObjectTransferID(e.res.UploadBucket, key, aws.ToString(head.VersionId), aws.ToString(head.ETag), aws.ToTime(head.LastModified)),
		hex.EncodeToString(h.Sum(nil))
}

// objectSHA256 streams an object and returns its sha256.
func (e *env) objectSHA256(t testing.TB, bucket, key string) string {
	t.Helper()
	out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// metricPoints waits up to 30s for want data points of the embedded-format
// metric name about transfer id in ferry local's log, and returns how many
// it found.
func (e *env) metricPoints(t testing.TB, name, id string, want int) int {
	t.Helper()
	e.mu.Lock()
	logPath := e.local.log
	e.mu.Unlock()
	count := func() int {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for line := range strings.Lines(string(b)) {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["_aws"] == nil || rec["transfer"] != id {
				continue
			}
			if v, ok := rec[name].(float64); ok {
				n += int(v)
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	n := count()
	for n < want && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		n = count()
	}
	return n
}

// waitFor polls the transfer until cond holds, failing the test after
// timeout with the transfer's timeline.
func (e *env) waitFor(t testing.TB, id string, timeout time.Duration, what string, cond func(domain.State) bool) domain.State {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.store.Load(context.Background(), id)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("transfer %s: not %s after %s (state %+v, err %v)\n%s", id, what, timeout, st, err, e.timeline(id))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) events(t testing.TB, id string) []domain.Event {
	t.Helper()
	evs, err := e.store.Events(context.Background(), id, 0, 1000)
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	return evs
}

func (e *env) timeline(id string) string {
	evs, err := e.store.Events(context.Background(), id, 0, 1000)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  v%d %s %+v\n", ev.Seq, ev.Type(), ev.Payload)
	}
	return b.String()
}

func delivered(st domain.State) bool { return st.Status == domain.StatusDelivered }

// queueURL returns the URL of a queue by name.
func (e *env) queueURL(t *testing.T, name string) string {
	t.Helper()
	out, err := e.sqs.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: &name})
	if err != nil {
		t.Fatalf("queue %s: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// ferry runs the ferry CLI against the stack and returns its output and exit code.
func (e *env) ferry(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL="+e.endpoint,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"FERRY_S3_PATH_STYLE=true",
		// Hydra's client_credentials tokens name the client in sub: the
		// client's id is its party.
		"FERRY_OIDC_ISSUER="+e.peers.hydra.Issuer, "FERRY_OIDC_AUDIENCE="+oidcAudience, "FERRY_OIDC_PARTY_CLAIM=sub",
	)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ferry %v: %v", args, err)
	}
	return string(out), code
}

// uniq returns a name unique to this test run.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// prng is a fast deterministic byte stream.
type prng struct{ r *rand.PCG }

func (p *prng) Read(b []byte) (int, error) {
	for i := 0; i < len(b); i += 8 {
		v := p.r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return len(b), nil
}
