//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
)

// payloadFile writes the bytes stack.upload sends for key and size to a
// local file, for a reference client to send the same file.
func payloadFile(b *testing.B, key string, size int64) string {
	b.Helper()
	name := filepath.Join(b.TempDir(), "payload")
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, io.LimitReader(&prng{r: rand.NewPCG(uint64(size), uint64(len(key)))}, size)); err != nil {
		b.Fatal(err)
	}
	return name
}

// s3ReadTime is how long reading the uploaded object from the emulator
// takes: all of it when rng is "", else that range ("bytes=A-B"). ferry
// reads its source from there and a direct client from local disk, so the
// figures stand beside the ratios. moto serves a range by reading the whole
// object, a cost S3 does not charge, which each chunk read on its own pays.
func s3ReadTime(b *testing.B, key, rng string) time.Duration {
	b.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(stack.res.UploadBucket), Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	start := time.Now()
	out, err := stack.s3.GetObject(context.Background(), in)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(io.Discard, out.Body); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// stepTimes reports where a delivery's time went, from its events: from
// Requested to the first chunk, the mean time per chunk step, and from the
// last chunk to Delivered.
func stepTimes(b *testing.B, id string) {
	b.Helper()
	evs := stack.events(b, id)
	var requested, first, last, done time.Time
	chunks := 0
	var gaps []int64
	for _, ev := range evs {
		switch ev.Payload.(type) {
		case domain.Requested:
			requested = ev.At
		case domain.ChunkSent:
			if !last.IsZero() {
				gaps = append(gaps, ev.At.Sub(last).Milliseconds())
			}
			if first.IsZero() {
				first = ev.At
			}
			last = ev.At
			chunks++
		case domain.Delivered:
			done = ev.At
		}
	}
	if chunks > 1 {
		b.ReportMetric(float64(last.Sub(first).Milliseconds())/float64(chunks-1), "ms/chunk-step")
	}
	b.Logf("gaps between chunk steps (ms): %v", gaps)
	b.Logf("Requested→first chunk %s, %d chunks in %s, last chunk→Delivered %s",
		first.Sub(requested).Round(time.Millisecond), chunks, last.Sub(first).Round(time.Millisecond), done.Sub(last).Round(time.Millisecond))
}

// BenchmarkSFTPSend sends 256 MiB in 8 MiB chunks through ferry local to
// the local sshd and, as the reference in the same run, puts the same file
// to the same server with OpenSSH's own sftp client. It reports both
// times, their ratio, the time to read the file from the S3 emulator (ferry
// reads its source from there, the client from local disk) and ferry
// local's peak RSS.
func BenchmarkSFTPSend(b *testing.B) {
	const size, chunk = 256 * mib, 8 * mib // the sftp-peer route's chunk size
	const chunks = size / chunk
	p := stack.peers
	keyFile := filepath.Join(b.TempDir(), "id")
	if err := os.WriteFile(keyFile, p.sshd.UserKey, 0o600); err != nil {
		b.Fatal(err)
	}
	knownHosts := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(p.sshd.KnownHosts()+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		restartLocal(b)
		key := "outbound/sftp/" + uniq("bench") + ".bin"
		id, sum := stack.upload(b, key, size, map[string]string{"sender": "bench", "recipient": "partner"})
		uploaded := time.Now()
		b.StartTimer()
		stack.waitFor(b, id, 10*time.Minute, "delivered", delivered)
		b.StopTimer()
		ferry := time.Since(uploaded)
		rss := stack.localPeakRSS(b)
		stepTimes(b, id)
		if got := fileSHA256(b, filepath.Join(p.sftpDir, "bench", filepath.Base(key))); got != sum {
			b.Fatalf("delivered sha256 %s, want %s", got, sum)
		}

		local := payloadFile(b, key, size)
		batch := filepath.Join(b.TempDir(), "batch")
		dst := filepath.Join(p.sftpDir, "reference-"+filepath.Base(key))
		if err := os.WriteFile(batch, []byte("put "+local+" "+dst+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := exec.Command("sftp", "-q", "-b", batch, "-i", keyFile, "-P", strconv.Itoa(p.sshd.Port),
			"-o", "UserKnownHostsFile="+knownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			p.sshd.User+"@127.0.0.1").CombinedOutput()
		direct := time.Since(start)
		if err != nil {
			b.Fatalf("sftp put: %v\n%s", err, out)
		}
		if got := fileSHA256(b, dst); got != sum {
			b.Fatalf("sftp's copy sha256 %s, want %s", got, sum)
		}
		read := s3ReadTime(b, key, "")
		ranged := s3ReadTime(b, key, fmt.Sprintf("bytes=%d-%d", chunk, 2*chunk-1))
		b.ReportMetric(float64(ranged.Milliseconds()), "s3-range-read-ms")
		// What the ratio would be without the emulator's whole-object read
		// per range (32 chunks, each read once): an estimate, reported
		// beside the measured ratio, never instead of it.
		b.ReportMetric((ferry-chunks*ranged).Seconds()/direct.Seconds(), "ratio-less-range-cost")
		b.ReportMetric(ferry.Seconds(), "ferry-s")
		b.ReportMetric(direct.Seconds(), "sftp-s")
		b.ReportMetric(ferry.Seconds()/direct.Seconds(), "ratio")
		b.ReportMetric(read.Seconds(), "s3-read-s")
		b.ReportMetric(float64(rss)/mib, "peak-RSS-MiB")
		b.Logf("ferry %s (upload→Delivered), OpenSSH sftp put %s, ratio %.2f; reading the file from the S3 emulator takes %s whole, %s per 8 MiB range (%d ranges); ferry local peak RSS %d MiB",
			ferry.Round(time.Millisecond), direct.Round(time.Millisecond), ferry.Seconds()/direct.Seconds(), read.Round(time.Millisecond), ranged.Round(time.Millisecond), chunks, rss/mib)
	}
}

// BenchmarkHTTPSSend sends 256 MiB through ferry local to the HTTPS peer
// (one streamed request) and, as the reference, posts the same file to the
// same server with curl --data-binary.
func BenchmarkHTTPSSend(b *testing.B) {
	const size = 256 * mib
	p := stack.peers
	ca := os.Getenv("FERRY_TEST_HTTPS_CA")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		restartLocal(b)
		name := uniq("bench") + ".bin"
		id, sum := stack.upload(b, "outbound/https/"+name, size, map[string]string{"sender": "bench", "recipient": "lab", "filename": name})
		uploaded := time.Now()
		b.StartTimer()
		stack.waitFor(b, id, 10*time.Minute, "delivered", delivered)
		b.StopTimer()
		ferry := time.Since(uploaded)
		rss := stack.localPeakRSS(b)
		stepTimes(b, id)
		if got, _ := p.https.Received(name); got != sum {
			b.Fatalf("peer took sha256 %s, want %s", got, sum)
		}

		local := payloadFile(b, "outbound/https/"+name, size)
		ref := "reference-" + name
		start := time.Now()
		out, err := exec.Command("curl", "-sS", "--fail", "--cacert", ca, "-H", "X-API-Key: "+httpsAPIKey,
			"-H", "Content-Type: application/octet-stream", "-H", `Content-Disposition: attachment; filename="`+ref+`"`,
			"--data-binary", "@"+local, p.https.srv.URL+"/upload").CombinedOutput()
		direct := time.Since(start)
		if err != nil {
			b.Fatalf("curl: %v\n%s", err, out)
		}
		if got, _ := p.https.Received(ref); got != sum {
			b.Fatalf("curl's copy sha256 %s, want %s", got, sum)
		}
		read := s3ReadTime(b, "outbound/https/"+name, "")
		b.ReportMetric(ferry.Seconds(), "ferry-s")
		b.ReportMetric(direct.Seconds(), "curl-s")
		b.ReportMetric(ferry.Seconds()/direct.Seconds(), "ratio")
		b.ReportMetric(read.Seconds(), "s3-read-s")
		b.ReportMetric(float64(rss)/mib, "peak-RSS-MiB")
		b.Logf("ferry %s (upload→Delivered), curl --data-binary %s, ratio %.2f; reading the file from the S3 emulator alone takes %s; ferry local peak RSS %d MiB",
			ferry.Round(time.Millisecond), direct.Round(time.Millisecond), ferry.Seconds()/direct.Seconds(), read.Round(time.Millisecond), rss/mib)
	}
}
