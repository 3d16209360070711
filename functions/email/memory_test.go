package email

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/internal/testkit/mailtest"
)

// streamS3 serves one generated message, never held whole, and keeps only
// the sha256 of what is uploaded: what is in memory is the handler's.
type streamS3 struct {
	*fakeS3
	size    int64
	message func() io.Reader
	mu      sync.Mutex
	sums    map[string]hash.Hash // upload id → running sha256
	done    map[string]string    // key → sha256 of the completed object
}

func (s *streamS3) HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(s.size), ETag: aws.String(`"big"`), VersionId: aws.String("1")}, nil
}

func (s *streamS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return &s3.GetObjectOutput{Body: io.NopCloser(s.message())}, nil
}

func (s *streamS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := *in.Key
	s.sums[id] = sha256.New()
	return &s3.CreateMultipartUploadOutput{UploadId: &id}, nil
}

func (s *streamS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	s.mu.Lock()
	h := s.sums[*in.UploadId]
	s.mu.Unlock()
	if _, err := io.Copy(h, in.Body); err != nil {
		return nil, err
	}
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprint(*in.PartNumber))}, nil
}

func (s *streamS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done[*in.Key] = hex.EncodeToString(s.sums[*in.UploadId].Sum(nil))
	return &s3.CompleteMultipartUploadOutput{VersionId: aws.String("1"), ETag: aws.String(`"done"`)}, nil
}

// generated is n deterministic pseudo-random bytes.
func generated(n int64) io.Reader {
	r := rand.New(rand.NewPCG(1, 3))
	return io.LimitReader(readerFunc(func(b []byte) (int, error) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return len(b), nil
	}), n)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// TestBoundedMemory: a 30 MB attachment (40 MB of base64) is read twice
// and stored, with the heap in use staying far below the attachment's
// size.
func TestBoundedMemory(t *testing.T) {
	const attachment = 30_000_000 // 30 MB: with base64, just under SES's 40 MiB
	head := "From: ann@lab.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	tail := "\r\n--b--\r\n"
	message := func() io.Reader {
		pr, pw := io.Pipe()
		go func() {
			enc := mailtest.Base64(pw)
			_, err := io.Copy(enc, generated(attachment))
			if err == nil {
				err = enc.Close()
			}
			pw.CloseWithError(err)
		}()
		return io.MultiReader(strings.NewReader(head), pr, strings.NewReader(tail))
	}
	var size int64
	if n, err := io.Copy(io.Discard, message()); err != nil {
		t.Fatal(err)
	} else {
		size = n
	}
	f := newFixture()
	big := &streamS3{fakeS3: f.s3, size: size, message: message, sums: map[string]hash.Hash{}, done: map[string]string{}}
	f.h.Objects, f.h.PartSize = big, DefaultPartSize

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f.handle(t, f.receive("ses-big", "", "ann@lab.example", []string{"files@in.example"}))
	close(stop)
	<-sampled

	got := f.requested(t)
	if len(got) != 1 || got[0].Size != attachment {
		t.Fatalf("transfers %+v, want one of %d bytes", got, attachment)
	}
	h := sha256.New()
	if _, err := io.Copy(h, generated(attachment)); err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(h.Sum(nil)); big.done[got[0].Source.Key] != want || got[0].SHA256 != want {
		t.Errorf("stored sha256 %s (recorded %s), want %s", big.done[got[0].Source.Key], got[0].SHA256, want)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by at most %d MiB for a %d MiB attachment", grew>>20, attachment>>20)
	if grew > 3*DefaultPartSize {
		t.Errorf("heap in use grew by %d MiB, more than three %d MiB parts", grew>>20, DefaultPartSize>>20)
	}
}
