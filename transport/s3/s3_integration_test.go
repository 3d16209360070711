//go:build integration

package s3transport_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	s3transport "github.com/ferryhq/ferry/transport/s3"
	"github.com/ferryhq/ferry/transport/transporttest"
)

const chunkSize = 5 * domain.MiB

// emulator returns a client for the S3 emulator at FERRY_AWS_ENDPOINT
// (moto server).
func emulator(t *testing.T) *s3.Client {
	t.Helper()
	ep := os.Getenv("FERRY_AWS_ENDPOINT")
	if ep == "" {
		t.Fatal("FERRY_AWS_ENDPOINT is not set: start moto (moto_server -H 127.0.0.1 -p 6300) and set it to its URL")
	}
	return newClient(ep, 3)
}

// newBucket creates a uniquely named bucket, emptied and removed when the
// test ends.
func newBucket(t *testing.T, c *s3.Client, versioned bool) string {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "ferry-test-" + hex.EncodeToString(b)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	if versioned {
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			t.Fatalf("version bucket %s: %v", name, err)
		}
	}
	t.Cleanup(func() { removeBucket(t, c, name) })
	return name
}

func removeBucket(t *testing.T, c *s3.Client, name string) {
	ctx := context.Background()
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(name)})
	if err == nil {
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(name), Key: u.Key, UploadId: u.UploadId})
		}
	}
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	if err == nil {
		for _, v := range vs.Versions {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range vs.DeleteMarkers {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: m.Key, VersionId: m.VersionId})
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Logf("remove bucket %s: %v", name, err)
	}
}

// env is a source bucket and a destination bucket on the emulator.
type env struct {
	c        *s3.Client
	tr       *s3transport.Transport
	src, dst string
}

func newEnv(t *testing.T, versioned bool) *env {
	t.Helper()
	c := emulator(t)
	return &env{c: c, tr: s3transport.New(c), src: newBucket(t, c, versioned), dst: newBucket(t, c, false)}
}

// put stores body as the source key and returns its version id and ETag.
func (e *env) put(t *testing.T, key string, body io.ReadSeeker, size int64) (version, etag string) {
	t.Helper()
	out, err := e.c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.src), Key: aws.String(key), Body: body, ContentLength: aws.Int64(size),
	})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", e.src, key, err)
	}
	return aws.ToString(out.VersionId), aws.ToString(out.ETag)
}

// transfer puts a source of size bytes and returns its transfer, not begun.
// The source key holds characters that need escaping in x-amz-copy-source.
func (e *env) transfer(t *testing.T, id string, body io.ReadSeeker, size int64) domain.State {
	t.Helper()
	key := "in/" + id + "/Q1 report ñ+?#%&=;" + id + ".bin"
	_, etag := e.put(t, key, body, size)
	return transporttest.NewState(t, id, domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: e.src, Key: key, ETag: etag},
		Destination: domain.Destination{Type: "s3", Bucket: e.dst, Prefix: "out/"},
		Size:        size,
		ChunkSize:   chunkSize,
	})
}

// open opens the object a Delivery names.
func (e *env) open(t *testing.T, d transport.Delivery) io.ReadCloser {
	t.Helper()
	bucket, key, ok := strings.Cut(strings.TrimPrefix(d.Location, "s3://"), "/")
	if !ok || !strings.HasPrefix(d.Location, "s3://") {
		t.Fatalf("Location %q is not s3://bucket/key", d.Location)
	}
	out, err := e.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", d.Location, err)
	}
	return out.Body
}

func TestContract(t *testing.T) {
	e := newEnv(t, false)
	transporttest.Run(t, transporttest.Harness{
		Transport:   e.tr,
		ChunkSize:   chunkSize,
		Features:    transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
		NewTransfer: e.transfer,
		Received: func(t *testing.T, _ domain.State, d transport.Delivery) io.ReadCloser {
			return e.open(t, d)
		},
		DeleteSource: func(t *testing.T, st domain.State) {
			_, err := e.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{
				Bucket: aws.String(st.Request.Source.Bucket), Key: aws.String(st.Request.Source.Key),
			})
			if err != nil {
				t.Fatalf("delete source: %v", err)
			}
		},
	})
}

// begin begins st's upload and returns st with its Ref set.
func (e *env) begin(t *testing.T, st domain.State) domain.State {
	t.Helper()
	ref, err := e.tr.Begin(context.Background(), st)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	st.Ref, st.Started = ref, true
	return st
}

// send begins st if need be, sends the given chunks (all when none are
// given) and returns the state with its Ref set and every chunk counted as
// sent.
func (e *env) send(t *testing.T, st domain.State, chunks ...int) domain.State {
	t.Helper()
	ctx := context.Background()
	if st.Ref == "" {
		st = e.begin(t, st)
	}
	if len(chunks) == 0 {
		for i := 1; i <= st.Request.Chunks; i++ {
			chunks = append(chunks, i)
		}
	}
	for _, i := range chunks {
		if _, err := e.tr.SendChunk(ctx, st, st.Request.Chunk(i)); err != nil {
			t.Fatalf("SendChunk %d: %v", i, err)
		}
	}
	st.ChunksSent = st.Request.Chunks
	return st
}

func sha(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer func() { _ = r.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestDeliveredObject(t *testing.T) {
	e := newEnv(t, false)
	st := e.transfer(t, "01META", transporttest.Payload(7, 6*domain.MiB), 6*domain.MiB)
	st.Request.Filename = "../../etc/Q1 résumé.pdf"
	st = e.send(t, st)
	d, err := e.tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if want := "s3://" + e.dst + "/out/Q1_r_sum_.pdf"; d.Location != want {
		t.Errorf("Location = %q, want %q", d.Location, want)
	}
	h, err := e.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.dst), Key: aws.String("out/Q1_r_sum_.pdf")})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Metadata[s3transport.MetadataTransferID]; got != "01META" {
		t.Errorf("metadata %s = %q (all: %v), want %q", s3transport.MetadataTransferID, got, h.Metadata, "01META")
	}
	if got := aws.ToString(h.ETag); got != d.Ref {
		t.Errorf("object ETag %q, Delivery.Ref %q; want them equal", got, d.Ref)
	}
}

func TestVersionedSource(t *testing.T) {
	e := newEnv(t, true)
	const size = 7 * domain.MiB
	key := "in/versioned.bin"
	v1, _ := e.put(t, key, transporttest.Payload(1, size), size)
	v2, _ := e.put(t, key, transporttest.Payload(2, size), size)
	if v1 == "" || v1 == v2 {
		t.Fatalf("the source bucket returned versions %q and %q, want two different ids", v1, v2)
	}
	st := transporttest.NewState(t, "01VER", domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: e.src, Key: key, VersionID: v1},
		Destination: domain.Destination{Type: "s3", Bucket: e.dst},
		Size:        size,
		ChunkSize:   chunkSize,
	})
	st = e.send(t, st)
	d, err := e.tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha(t, e.open(t, d)), transporttest.PayloadSHA256(1, size); got != want {
		t.Errorf("delivered sha256 %s, want %s (the named version's, not the latest)", got, want)
	}
}

func TestCompleteChecksParts(t *testing.T) {
	e := newEnv(t, false)
	const size = 2*chunkSize + 100
	t.Run("a missing part", func(t *testing.T) {
		st := e.transfer(t, "01GAP", transporttest.Payload(3, size), size)
		st = e.send(t, st, 1, 3)
		_, err := e.tr.Complete(context.Background(), st)
		wantKind(t, err, domain.KindInvalid, "")
	})
	t.Run("a source that shrank mid-transfer", func(t *testing.T) {
		st := e.transfer(t, "01SHRINK", transporttest.Payload(4, size), size)
		st.Request.Source.ETag = "" // without the ETag guard only the part sizes can tell
		st = e.send(t, st, 1)
		e.put(t, st.Request.Source.Key, transporttest.Payload(5, chunkSize+10), chunkSize+10)
		ctx := context.Background()
		var err error
		for i := 2; i <= st.Request.Chunks && err == nil; i++ {
			_, err = e.tr.SendChunk(ctx, st, st.Request.Chunk(i))
		}
		if err == nil {
			_, err = e.tr.Complete(ctx, st)
		}
		if err == nil {
			t.Fatal("a transfer whose source shrank was delivered")
		}
		if domain.KindOf(err).Retryable() || domain.KindOf(err) == domain.KindInternal {
			t.Errorf("error %v: kind %s, want a final, classified kind", err, domain.KindOf(err))
		}
	})
}

func TestCompleteAgain(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	deliver := func(t *testing.T, id string) (domain.State, transport.Delivery) {
		t.Helper()
		st := e.send(t, e.transfer(t, id, transporttest.Payload(6, 100), 100))
		d, err := e.tr.Complete(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return st, d
	}
	t.Run("when another object replaced the delivery", func(t *testing.T) {
		st, _ := deliver(t, "01AGAIN1")
		_, err := e.c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(e.dst), Key: aws.String(s3transport.Key(st)), Body: bytes.NewReader(make([]byte, 100)),
			Metadata: map[string]string{s3transport.MetadataTransferID: "someone-else"},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.tr.Complete(ctx, st)
		wantKind(t, err, domain.KindInvalid, "NoSuchUpload")
	})
	t.Run("when the delivery was deleted", func(t *testing.T) {
		st, _ := deliver(t, "01AGAIN2")
		if _, err := e.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.dst), Key: aws.String(s3transport.Key(st))}); err != nil {
			t.Fatal(err)
		}
		_, err := e.tr.Complete(ctx, st)
		wantKind(t, err, domain.KindNotFound, "NoSuchUpload")
	})
}

func TestMissingBuckets(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	st := e.transfer(t, "01NOB", transporttest.Payload(8, 100), 100)
	t.Run("destination", func(t *testing.T) {
		st := st
		st.Request.Destination.Bucket = "ferry-test-no-such-bucket"
		_, err := e.tr.Begin(ctx, st)
		wantKind(t, err, domain.KindNotFound, "NoSuchBucket")
	})
	t.Run("source", func(t *testing.T) {
		st := e.begin(t, st)
		st.Request.Source.Bucket = "ferry-test-no-such-bucket"
		_, err := e.tr.SendChunk(ctx, st, st.Request.Chunk(1))
		wantKind(t, err, domain.KindNotFound, "NoSuchBucket")
	})
}
