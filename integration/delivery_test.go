//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/ferryhq/ferry/domain"
)

// TestSFTPDelivery: 64 MiB in 8 chunks through ferry local to OpenSSH's
// sshd arrives identical, named by the route's template ({sender}/
// {filename}), and no temporary file is left.
func TestSFTPDelivery(t *testing.T) {
	sender := uniq("org")
	key := "outbound/sftp/" + uniq("scan") + ".dcm"
	id, sum := stack.upload(t, key, 64<<20, map[string]string{"sender": sender, "recipient": "partner"})
	st := stack.waitFor(t, id, 2*time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
	if st.Request.Chunks != 8 {
		t.Errorf("%d chunks, want 8", st.Request.Chunks)
	}
	dir := filepath.Join(stack.peers.sftpDir, sender)
	if got := fileSHA256(t, filepath.Join(dir, filepath.Base(key))); got != sum {
		t.Errorf("delivered sha256 %s, want %s", got, sum)
	}
	if !strings.HasSuffix(st.Location, "/"+sender+"/"+filepath.Base(key)) || !strings.HasPrefix(st.Location, "sftp://") {
		t.Errorf("location %q", st.Location)
	}
	assertNoTempFiles(t, stack.peers.sftpDir)
}

// TestSFTPPeerDownThenReplay: with sshd down every attempt fails as
// unavailable; after the route's 3 attempts the transfer is FAILED for
// good, every attempt in its history. Once sshd is back, a replay
// delivers it, and nothing temporary is left.
func TestSFTPPeerDownThenReplay(t *testing.T) {
	stack.peers.sshd.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = stack.peers.sshd.Start()
		}
	})
	key := "outbound/sftp/" + uniq("down") + ".csv"
	id, sum := stack.upload(t, key, 3<<20, map[string]string{"sender": "org-down", "recipient": "partner"})
	st := stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
	var failed []domain.Failed
	for _, ev := range stack.events(t, id) {
		if f, ok := ev.Payload.(domain.Failed); ok {
			failed = append(failed, f)
		}
	}
	if len(failed) != 3 || !failed[0].Retryable || !failed[1].Retryable || failed[2].Retryable || failed[2].Kind != domain.KindUnavailable {
		t.Fatalf("failures = %+v, want 3 attempts, the last final\n%s", failed, stack.timeline(id))
	}
	if st.LastFailure.Attempt != 3 {
		t.Errorf("last attempt %d, want 3", st.LastFailure.Attempt)
	}
	// The failing-for-good alarm's metric counts the last failure only.
	if n := stack.metricPoints(t, "TransfersFailed", id, 1); n != 1 {
		t.Errorf("TransfersFailed logged %d times for %s, want once", n, id)
	}

	if err := stack.peers.sshd.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	if out, code := stack.ferry(t, "replay", id, "--reason", "sshd is back"); code != 0 {
		t.Fatalf("ferry replay: exit %d\n%s", code, out)
	}
	stack.waitFor(t, id, time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
	if got := fileSHA256(t, filepath.Join(stack.peers.sftpDir, "org-down", filepath.Base(key))); got != sum {
		t.Errorf("delivered sha256 %s, want %s", got, sum)
	}
	assertNoTempFiles(t, stack.peers.sftpDir)
}

// TestHTTPSDelivery: a file of 3 chunks goes to the HTTPS peer in one
// streamed request with the route's API key, verified against the
// route's CA bundle.
func TestHTTPSDelivery(t *testing.T) {
	name := uniq("lab-results") + ".csv"
	id, sum := stack.upload(t, "outbound/https/"+name, 12<<20, map[string]string{"sender": "org-a", "recipient": "lab", "filename": name})
	stack.waitFor(t, id, time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
	got, requests := stack.peers.https.Received(name)
	if got != sum || requests != 1 {
		t.Errorf("peer took sha256 %s in %d requests, want %s in 1", got, requests, sum)
	}
}

// TestHTTPSStatuses: a 400 fails the transfer at once; 503, 503, 200
// delivers it on the third attempt, the backoff in its events.
func TestHTTPSStatuses(t *testing.T) {
	t.Run("400 is final at once", func(t *testing.T) {
		name := uniq("bad") + ".csv"
		stack.peers.https.Script(name, http.StatusBadRequest)
		id, _ := stack.upload(t, "outbound/https/"+name, 1000, map[string]string{"sender": "org-a", "recipient": "lab", "filename": name})
		st := stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
		f := st.LastFailure
		if f.Attempt != 1 || f.Retryable || f.Code != "400" || !strings.Contains(f.Message, "scripted 400") {
			t.Errorf("failure = %+v, want attempt 1, final, code 400 with the body's excerpt", f)
		}
		if _, requests := stack.peers.https.Received(name); requests != 1 {
			t.Errorf("%d requests, want 1", requests)
		}
	})
	t.Run("503 twice then delivered", func(t *testing.T) {
		name := uniq("flaky") + ".csv"
		stack.peers.https.Script(name, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
		id, sum := stack.upload(t, "outbound/https/"+name, 1000, map[string]string{"sender": "org-a", "recipient": "lab", "filename": name})
		stack.waitFor(t, id, time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
		if got, requests := stack.peers.https.Received(name); got != sum || requests != 3 {
			t.Errorf("peer took %s in %d requests, want %s on the third", got, requests, sum)
		}
		evs := stack.events(t, id)
		want := []domain.EventType{domain.TypeRequested, domain.TypeStarted, domain.TypeFailed, domain.TypeRetried, domain.TypeFailed, domain.TypeRetried, domain.TypeChunkSent, domain.TypeDelivered}
		if got := eventTypes(evs); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		for i, ev := range evs {
			f, ok := ev.Payload.(domain.Failed)
			if !ok {
				continue
			}
			if f.Code != "503" || !f.Retryable || f.NextAttemptAt.Sub(ev.At) < 800*time.Millisecond {
				t.Errorf("Failed %+v at %v: want a retryable 503 at least the jittered 1s backoff ahead", f, ev.At)
			}
			if retried := evs[i+1]; retried.At.Before(f.NextAttemptAt) {
				t.Errorf("retried at %v, before the backoff's %v", retried.At, f.NextAttemptAt)
			}
		}
	})
}

func fileSHA256(t testing.TB, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// assertNoTempFiles fails the test if a temporary upload is left under dir.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(d.Name(), ".part") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// TestAzblobDelivery: a file of 4 chunks goes to a block blob on Azurite,
// one block per chunk, named by the route's template, identical.
func TestAzblobDelivery(t *testing.T) {
	id, sum := stack.upload(t, "outbound/azblob/"+uniq("results")+".json", 14<<20, map[string]string{"sender": "org-a", "recipient": "lake"})
	st := stack.waitFor(t, id, time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
	name := "in/lake/" + id + ".json"
	if want := "azblob://" + azuriteAccount + "/" + blobContainer + "/" + name; st.Location != want {
		t.Errorf("location %q, want %q", st.Location, want)
	}
	ctx := context.Background()
	bc := stack.peers.blobs.NewBlockBlobClient(name)
	list, err := bc.GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.CommittedBlocks) != 4 || len(list.UncommittedBlocks) != 0 {
		t.Errorf("%d committed and %d uncommitted blocks, want 4 and 0", len(list.CommittedBlocks), len(list.UncommittedBlocks))
	}
	out, err := bc.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		t.Errorf("blob sha256 %s, want %s", got, sum)
	}
}

// TestSFTPPeerStoppedMidTransfer: sshd is killed after two of 16 chunks;
// the attempt fails as retryable, the retry resumes at the first
// unrecorded chunk once sshd is back, and one identical file arrives with
// no temporary file left.
func TestSFTPPeerStoppedMidTransfer(t *testing.T) {
	p := stack.peers
	key := "outbound/sftp/" + uniq("mid") + ".bin"
	id, sum := stack.upload(t, key, 128<<20, map[string]string{"sender": "org-mid", "recipient": "partner"})
	stack.waitFor(t, id, time.Minute, "two chunks sent", func(st domain.State) bool { return st.ChunksSent >= 2 })
	p.sshd.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = p.sshd.Start()
		}
	})
	st := stack.waitFor(t, id, time.Minute, "retrying", func(st domain.State) bool { return st.Status == domain.StatusRetrying })
	if st.Status == domain.StatusDelivered || st.ChunksSent == st.Request.Chunks {
		t.Fatalf("the transfer finished before sshd stopped; the test proves nothing:\n%s", stack.timeline(id))
	}
	sentBefore := st.ChunksSent
	if err := p.sshd.Start(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	stack.waitFor(t, id, 2*time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
	if got := fileSHA256(t, filepath.Join(p.sftpDir, "org-mid", filepath.Base(key))); got != sum {
		t.Errorf("delivered sha256 %s, want %s", got, sum)
	}
	// Every chunk is recorded once: the retry went on from chunk
	// sentBefore+1 rather than starting again.
	seen := map[int]int{}
	for _, ev := range stack.events(t, id) {
		if c, ok := ev.Payload.(domain.ChunkSent); ok {
			seen[c.Index]++
		}
	}
	for i := 1; i <= 16; i++ {
		if seen[i] != 1 {
			t.Errorf("chunk %d recorded %d times, want once (sshd stopped after %d)", i, seen[i], sentBefore)
		}
	}
	assertNoTempFiles(t, p.sftpDir)
}
