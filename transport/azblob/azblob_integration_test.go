//go:build integration

package azblob_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/azblob"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// chunkSize is the contract's chunk size: over the 1 MiB the transport
// keeps in memory, so full chunks are spooled to a file and short ones not.
const chunkSize = 2 * domain.MiB

func TestContract(t *testing.T) {
	e := newEnv(t, serviceURL(t))
	transporttest.Run(t, transporttest.Harness{
		Transport: e.tr,
		ChunkSize: chunkSize,
		// Any block can be staged again at any time, and a block blob may
		// be empty (an empty block list).
		Features: transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
		NewTransfer: func(t *testing.T, id string, src io.ReadSeeker, size int64) domain.State {
			return e.transfer(t, id, "dev", src, size, chunkSize)
		},
		Received: func(t *testing.T, _ domain.State, d transport.Delivery) io.ReadCloser {
			return e.open(t, d)
		},
		DeleteSource: func(t *testing.T, st domain.State) { e.src.remove(st.ID) },
	})
}

// sendChunks sends chunks from..to of st and returns st with them recorded.
func sendChunks(t *testing.T, tr transport.Transport, st domain.State, from, to int) domain.State {
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
		if i > st.ChunksSent {
			st.ChunksSent, st.BytesSent = i, st.BytesSent+c.Length
		}
	}
	return st
}

func begin(t *testing.T, tr transport.Transport, st domain.State) domain.State {
	t.Helper()
	ref, err := tr.Begin(context.Background(), st)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	st.Started, st.Ref = true, ref
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

// checkBlob checks the delivery holds the payload of seed and size, in
// exactly chunks committed blocks and none uncommitted, and is the only
// blob in the container.
func (e *env) checkBlob(t *testing.T, d transport.Delivery, seed uint64, size int64, chunks int) {
	t.Helper()
	if got, want := sha(t, e.open(t, d)), transporttest.PayloadSHA256(seed, size); got != want {
		t.Errorf("delivered sha256 %s, want %s", got, want)
	}
	name := strings.TrimPrefix(d.Location, "azblob://"+devAccount+"/"+e.container+"/")
	bl, err := e.cc.NewBlockBlobClient(name).GetBlockList(context.Background(), blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatalf("block list of %s: %v", name, err)
	}
	if len(bl.CommittedBlocks) != chunks || len(bl.UncommittedBlocks) != 0 {
		t.Errorf("%s has %d committed and %d uncommitted blocks, want %d and 0", name, len(bl.CommittedBlocks), len(bl.UncommittedBlocks), chunks)
	}
	var blobs []string
	p := e.cc.NewListBlobsFlatPager(nil)
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list blobs: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			blobs = append(blobs, *b.Name)
		}
	}
	if len(blobs) != 1 || blobs[0] != name {
		t.Errorf("the container holds %q, want just %q", blobs, name)
	}
}

func TestSeveralChunksMakeOneBlob(t *testing.T) {
	e := newEnv(t, serviceURL(t))
	const cs, size = 4 * domain.MiB, 5*4*domain.MiB + 12345
	st := e.transfer(t, "01SEVERAL", "dev", transporttest.Payload(11, size), size, cs)
	if st.Request.Chunks != 6 {
		t.Fatalf("%d chunks, want 6", st.Request.Chunks)
	}
	st = sendChunks(t, e.tr, begin(t, e.tr, st), 1, 6)
	d, err := e.tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	want := "azblob://" + devAccount + "/" + e.container + "/out/Q1_report_01SEVERAL.bin"
	if d.Location != want || d.Ref == "" {
		t.Errorf("Delivery = %+v, want Location %q and an ETag", d, want)
	}
	e.checkBlob(t, d, 11, size, 6)
	p, err := e.cc.NewBlobClient("out/Q1_report_01SEVERAL.bin").GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.ETag == nil || string(*p.ETag) != d.Ref {
		t.Errorf("blob ETag %v, Delivery.Ref %q; want them equal", p.ETag, d.Ref)
	}
}

func TestResumeAfterAzuriteRestart(t *testing.T) {
	a := startAzurite(t) // its own: the test stops it
	e := newEnv(t, a.URL())
	const cs, size = 4 * domain.MiB, 5*4*domain.MiB + 999
	st := e.transfer(t, "01RESUME", "dev", transporttest.Payload(12, size), size, cs)
	st = sendChunks(t, e.tr, begin(t, e.tr, st), 1, 3)

	a.stop(t.Logf)
	_, err := e.tr.SendChunk(context.Background(), st, st.Request.Chunk(4))
	if err == nil {
		t.Fatal("SendChunk with Azurite stopped succeeded")
	}
	if k := domain.KindOf(err); k != domain.KindUnavailable {
		t.Fatalf("SendChunk with Azurite stopped: kind %s (%v), want %s", k, err, domain.KindUnavailable)
	}
	t.Logf("with Azurite stopped: %v", err)

	a.start(t) // same port, same data directory
	st = sendChunks(t, e.tr, st, 4, st.Request.Chunks)
	d, err := e.tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatalf("Complete after the restart: %v", err)
	}
	e.checkBlob(t, d, 12, size, st.Request.Chunks)
}

func TestResendingAChunkLeavesTheSameBlob(t *testing.T) {
	e := newEnv(t, serviceURL(t))
	const cs, size = 2 * domain.MiB, 3*2*domain.MiB + 1
	st := e.transfer(t, "01RESEND", "dev", transporttest.Payload(13, size), size, cs)
	st = sendChunks(t, e.tr, begin(t, e.tr, st), 1, 4)
	st = sendChunks(t, e.tr, st, 2, 2)
	st = sendChunks(t, e.tr, st, 4, 4)
	first, err := e.tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	e.checkBlob(t, first, 13, size, 4)
	again, err := e.tr.Complete(context.Background(), st)
	if err != nil {
		t.Fatalf("Complete again: %v", err)
	}
	if again != first {
		t.Errorf("Complete again = %+v, want %+v", again, first)
	}
	e.checkBlob(t, again, 13, size, 4)
}

func TestWrongSharedKeyFailsForGood(t *testing.T) {
	e := newEnv(t, serviceURL(t))
	st := e.transfer(t, "01WRONGKEY", "wrong-key", transporttest.Payload(14, 100), 100, chunkSize)
	st = begin(t, e.tr, st)
	_, err := e.tr.SendChunk(context.Background(), st, st.Request.Chunk(1))
	if k := domain.KindOf(err); err == nil || k != domain.KindUnauthorized || k.Retryable() {
		t.Fatalf("SendChunk with a wrong key: %v (kind %s), want a final %s", err, k, domain.KindUnauthorized)
	}
	// Azure says AuthenticationFailed; Azurite says AuthorizationFailure.
	if code := domain.CodeOf(err); code != "AuthenticationFailed" && code != "AuthorizationFailure" {
		t.Errorf("code %q (%v), want AuthenticationFailed or AuthorizationFailure", code, err)
	}
}

func TestMissingContainerFailsForGood(t *testing.T) {
	e := newEnv(t, serviceURL(t))
	for _, size := range []int64{100, 0} {
		st := e.transfer(t, fmt.Sprintf("01NOCONT%d", size), "no-container", transporttest.Payload(15, size), size, chunkSize)
		st = begin(t, e.tr, st)
		_, err := e.tr.SendChunk(context.Background(), st, st.Request.Chunk(1))
		if size == 0 {
			// An empty chunk stages nothing: Complete meets the container.
			if err != nil {
				t.Fatalf("SendChunk of an empty file: %v", err)
			}
			st.ChunksSent = 1
			_, err = e.tr.Complete(context.Background(), st)
		}
		if k := domain.KindOf(err); err == nil || k != domain.KindNotFound {
			t.Fatalf("size %d: %v (kind %s), want %s", size, err, k, domain.KindNotFound)
		}
		if !strings.Contains(err.Error(), "ferry-no-such-container") || domain.CodeOf(err) != "ContainerNotFound" {
			t.Errorf("size %d: error %q (code %q) does not name the container ferry-no-such-container and ContainerNotFound", size, err, domain.CodeOf(err))
		}
	}
}

func TestSAS(t *testing.T) {
	e := newEnv(t, serviceURL(t))
	cred, err := blob.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	token := func(p sas.ContainerPermissions) string {
		q, err := sas.BlobSignatureValues{
			Protocol:      sas.ProtocolHTTPSandHTTP,
			ExpiryTime:    time.Now().Add(time.Hour).UTC(),
			Permissions:   p.String(),
			ContainerName: e.container,
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return q.Encode()
	}
	endpoint := func(ref string) json.RawMessage {
		return json.RawMessage(`{"serviceURL": "` + e.url + `", "account": "devstoreaccount1", "container": "` + e.container + `", "sas": "` + ref + `"}`)
	}
	eps, err := azblob.ParseEndpoints(map[string]json.RawMessage{"sas": endpoint("secret:sas"), "read-only": endpoint("ssm:/sas/read-only")})
	if err != nil {
		t.Fatal(err)
	}
	tr := azblob.New(eps, secrets{
		"secret:sas":         "?" + token(sas.ContainerPermissions{Read: true, Write: true}),
		"ssm:/sas/read-only": token(sas.ContainerPermissions{Read: true}),
	}, e.src)

	t.Run("read and write deliver", func(t *testing.T) {
		const size = chunkSize + 10
		st := e.transfer(t, "01SAS", "sas", transporttest.Payload(16, size), size, chunkSize)
		st = sendChunks(t, tr, begin(t, tr, st), 1, 2)
		d, err := tr.Complete(context.Background(), st)
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
		if got, want := sha(t, e.open(t, d)), transporttest.PayloadSHA256(16, size); got != want {
			t.Errorf("delivered sha256 %s, want %s", got, want)
		}
		if again, err := tr.Complete(context.Background(), st); err != nil || again != d {
			t.Errorf("Complete again = %+v, %v; want %+v", again, err, d)
		}
	})
	t.Run("read only fails for good", func(t *testing.T) {
		st := e.transfer(t, "01SASRO", "read-only", transporttest.Payload(17, 100), 100, chunkSize)
		_, err := tr.SendChunk(context.Background(), begin(t, tr, st), st.Request.Chunk(1))
		if k := domain.KindOf(err); err == nil || k != domain.KindUnauthorized {
			t.Fatalf("SendChunk with a read-only SAS: %v (kind %s), want %s", err, k, domain.KindUnauthorized)
		}
		if strings.Contains(err.Error(), "sig=") {
			t.Errorf("error %q holds the SAS", err)
		}
	})
}
