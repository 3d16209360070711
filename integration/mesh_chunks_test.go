//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/transport/mesh"
	s3transport "github.com/ferryhq/ferry/transport/s3"
)

// peerSendToInbox has mesh-client, as X26ABC2, send data to ferry's inbox X26ABC3
// in chunks of at most chunk bytes, with the extra keyword arguments
// (Python source, e.g. `subject="x"`), and returns the message id.
func peerSendToInbox(t *testing.T, data []byte, chunk int, compress bool, kwargs string) string {
	t.Helper()
	py := map[bool]string{true: "True", false: "False"}[compress]
	return meshClient(t, mbPeer, fmt.Sprintf(`
print(client.send_message(%q, sys.stdin.buffer.read(), workflow_id=%q, max_chunk_size=%d, compress=%s, %s))
`, mbInbox, wfToUs, chunk, py, kwargs), data)
}

// chunkTestBytes returns n pseudo-random bytes and their hex sha256.
func chunkTestBytes(seed byte, n int) ([]byte, string) {
	data := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed, 6}).Read(data)
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// awaitInboundAcked waits for inbound transfer id to be acknowledged at its
// source, failing the test if it fails instead.
func awaitInboundAcked(t *testing.T, id string, timeout time.Duration) domain.State {
	t.Helper()
	st := stack.waitFor(t, id, timeout, "acknowledged", func(st domain.State) bool {
		return st.Status == domain.StatusAcknowledged || st.Status == domain.StatusFailed
	})
	if st.Status != domain.StatusAcknowledged {
		t.Fatalf("transfer %s: %+v\n%s", st.Status, st.LastFailure, stack.timeline(id))
	}
	return st
}

// checkInboundLanded checks that message msgID of want bytes (sha256 sum) landed
// as exactly one complete object in ferry's inbound folder, with its mex-*
// metadata, and left the inbox.
func checkInboundLanded(t *testing.T, msgID string, size int, sum string, meta map[string]string) *s3.HeadObjectOutput {
	t.Helper()
	ctx := context.Background()
	bucket, prefix := stack.res.MESHBucket, "inbound/"+mbInbox+"/"+msgID
	key := prefix + ".dat"
	if got := stack.objectSHA256(t, bucket, key); got != sum {
		t.Fatalf("s3://%s/%s sha256 = %s, want %s", bucket, key, got, sum)
	}
	head, err := stack.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if n := aws.ToInt64(head.ContentLength); n != int64(size) {
		t.Errorf("object has %d bytes, want %d", n, size)
	}
	for k, want := range meta {
		if v, err := url.QueryUnescape(head.Metadata[k]); err != nil || v != want {
			t.Errorf("object metadata %s = %q (decoded %q), want %q", k, head.Metadata[k], v, want)
		}
	}
	objs, err := stack.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Contents) != 1 {
		t.Errorf("%d objects under s3://%s/%s, want 1", len(objs.Contents), bucket, prefix)
	}
	ups, err := stack.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open under s3://%s/%s, want none", len(ups.Uploads), bucket, prefix)
	}
	inbox := meshClient(t, mbInbox, `print(json.dumps(client.list_messages()))`, nil)
	if strings.Contains(inbox, msgID) {
		t.Errorf("message %s is still in %s's inbox after ferry acknowledged it: %s", msgID, mbInbox, inbox)
	}
	return head
}

// forgetObserved removes, when the test ends, the events of transfers ids
// from the observer queue (where every event is published), once all have
// arrived: these transfers have many events, and a later test looking
// there for its own (awaitEvent) would otherwise wade through them all.
func forgetObserved(t *testing.T, ids ...string) {
	t.Cleanup(func() {
		ctx := context.Background()
		mine := map[string]bool{}
		want := 0
		for _, id := range ids {
			mine[id] = true
			evs, err := stack.store.Events(ctx, id, 0, 1000)
			if err != nil {
				t.Logf("observer cleanup: events of %s: %v", id, err)
				return
			}
			want += len(evs)
		}
		url := stack.queueURL(t, stack.res.ObserverQueue)
		deleted := 0
		for deadline := time.Now().Add(60 * time.Second); deleted < want && time.Now().Before(deadline); {
			out, err := stack.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 2})
			if err != nil {
				t.Logf("observer cleanup: %v", err)
				return
			}
			for _, m := range out.Messages {
				var ev struct {
					Detail schema.Detail `json:"detail"`
				}
				if json.Unmarshal([]byte(aws.ToString(m.Body)), &ev) != nil || !mine[ev.Detail.TransferID] {
					continue // another test's; it becomes visible again
				}
				if _, err := stack.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err == nil {
					deleted++
				}
			}
		}
		if deleted < want {
			t.Logf("observer cleanup: removed %d of %d events of %v", deleted, want, ids)
		}
	})
}

// inboundChunkEvents returns the transfer's ChunkSent events in order.
func inboundChunkEvents(t *testing.T, id string) []domain.ChunkSent {
	t.Helper()
	var sent []domain.ChunkSent
	for _, e := range stack.events(t, id) {
		if c, ok := e.Payload.(domain.ChunkSent); ok {
			sent = append(sent, c)
		}
	}
	return sent
}

// TestMESHReceiveSmallChunks: mesh-client sends in chunks smaller than
// S3's 5 MiB part minimum (1 MiB; one small chunk): the message lands byte
// for byte, with its metadata, and is acknowledged. Small chunks are held
// and gathered into parts of at least 5 MiB.
func TestMESHReceiveSmallChunks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		chunk    int
		compress bool
		chunks   int
		held     []int
	}{
		{"1 MiB chunks", 15 * mib / 2, mib, true, 8, []int{1, 2, 3, 4, 6, 7}},
		{"1 MiB chunks uncompressed", 15 * mib / 2, mib, false, 8, []int{1, 2, 3, 4, 6, 7}},
		{"one small chunk", 1000, mib, false, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, sum := chunkTestBytes(byte(tc.size), tc.size)
			local := uniq("small")
			msgID := peerSendToInbox(t, data, tc.chunk, tc.compress, fmt.Sprintf(`subject="small+chunks", local_id=%q, filename="small.csv"`, local))
			id := mesh.TransferID(mbInbox, msgID)
			forgetObserved(t, id)
			st := awaitInboundAcked(t, id, 90*time.Second)
			if st.Request.Chunks != tc.chunks || st.BytesSent != int64(tc.size) {
				t.Fatalf("chunks %d, bytes %d; want %d chunks of %d bytes in all", st.Request.Chunks, st.BytesSent, tc.chunks, tc.size)
			}
			checkInboundLanded(t, msgID, tc.size, sum, map[string]string{
				"mex-from": mbPeer, "mex-to": mbInbox, "mex-workflowid": wfToUs, "mex-localid": local,
				"mex-subject": "small+chunks", "mex-messageid": msgID, "mex-filename": "small.csv",
				s3transport.MetadataTransferID: id,
			})
			var indices, held []int
			for _, c := range inboundChunkEvents(t, id) {
				indices = append(indices, c.Index)
				if c.Held {
					held = append(held, c.Index)
				}
			}
			if want := indexRange(1, tc.chunks); !slices.Equal(indices, want) {
				t.Errorf("chunks recorded %v, want %v", indices, want)
			}
			if !slices.Equal(held, tc.held) {
				t.Errorf("held chunks %v, want %v", held, tc.held)
			}
		})
	}
}

// TestMESHReceiveSmallChunksKilled: ferry local is killed (SIGKILL) in the
// middle of downloading a message in 1 MiB chunks and started again; the
// message still lands as one complete, identical object, every chunk
// recorded once and no event repeated.
func TestMESHReceiveSmallChunksKilled(t *testing.T) {
	const chunks = 48
	// A notification in flight when ferry local dies stays invisible for
	// the queue's visibility timeout (15 minutes): let the intake queue
	// drain first (the objects earlier tests landed notify it), so that
	// only this transfer is cut short.
	waitQueueEmpty(t, stack.queueURL(t, stack.res.IntakeQueue))
	data, sum := chunkTestBytes(48, chunks*mib)
	msgID := peerSendToInbox(t, data, mib, false, fmt.Sprintf(`local_id=%q`, uniq("killed")))
	id := mesh.TransferID(mbInbox, msgID)
	forgetObserved(t, id)

	stack.waitFor(t, id, 60*time.Second, "under way", func(st domain.State) bool { return st.ChunksSent >= 3 })
	stack.stopLocal(syscall.SIGKILL) // waits out the killed process's SQS long poll
	mid, err := stack.store.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Status != domain.StatusInProgress || mid.ChunksSent >= chunks {
		t.Fatalf("transfer was %s with %d/%d chunks at the kill; the test proves nothing", mid.Status, mid.ChunksSent, chunks)
	}
	t.Logf("killed ferry local at v%d with %d/%d chunks recorded, %d held from chunk %d", mid.Version, mid.ChunksSent, chunks, mid.HeldBytes, mid.HeldFrom)
	if _, err := stack.startLocal(); err != nil {
		t.Fatal(err)
	}

	st := awaitInboundAcked(t, id, 120*time.Second)
	if st.BytesSent != int64(len(data)) {
		t.Fatalf("%d bytes recorded, want %d", st.BytesSent, len(data))
	}
	checkInboundLanded(t, msgID, len(data), sum, map[string]string{"mex-messageid": msgID, "mex-from": mbPeer})
	var indices []int
	for _, c := range inboundChunkEvents(t, id) {
		indices = append(indices, c.Index)
	}
	if want := indexRange(1, chunks); !slices.Equal(indices, want) {
		t.Fatalf("chunks recorded %v, want 1..%d once each", indices, chunks)
	}
	if got, want := eventTypes(stack.events(t, id)), wantTypes(chunks, domain.TypeDelivered, domain.TypeAcknowledged); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v (no event may be repeated)", got, want)
	}
}

// TestMESHReceiveLargeHeaders: a message whose mex-* headers, quote_plus
// encoded, are far over S3's 2 KB of user metadata (the longest subject,
// local id and partner id the sandbox accepts, of characters quote_plus
// triples) lands with metadata within 2 KB — the transfer id and the
// headers that identify the message kept, the dropped ones named — and is
// acknowledged; the transfer's Requested event keeps every header.
func TestMESHReceiveLargeHeaders(t *testing.T) {
	data, sum := chunkTestBytes(9, 3000)
	local := uniq("big-headers") + "/"
	local += strings.Repeat("/", 300-len(local))
	subject, partner := strings.Repeat("/", 500), strings.Repeat("+", 500)
	msgID := peerSendToInbox(t, data, mib, false, fmt.Sprintf(`subject=%q, local_id=%q, partner_id=%q, filename="big.csv"`, subject, local, partner))
	id := mesh.TransferID(mbInbox, msgID)
	forgetObserved(t, id)
	st := awaitInboundAcked(t, id, 60*time.Second)

	head := checkInboundLanded(t, msgID, len(data), sum, map[string]string{
		s3transport.MetadataTransferID: id, "mex-messageid": msgID, "mex-from": mbPeer, "mex-to": mbInbox,
		"mex-workflowid": wfToUs, "mex-messagetype": "DATA", "mex-filename": "big.csv",
	})
	if n := s3transport.MetadataSize(head.Metadata); n > s3transport.MaxUserMetadata {
		t.Errorf("object metadata is %d bytes, over S3's %d: %v", n, s3transport.MaxUserMetadata, head.Metadata)
	}
	dropped := strings.Split(head.Metadata[s3transport.MetadataDropped], ",")
	if !slices.Contains(dropped, "mex-subject") || !slices.Contains(dropped, "mex-partnerid") {
		t.Errorf("%s = %q, want it to name mex-subject and mex-partnerid", s3transport.MetadataDropped, head.Metadata[s3transport.MetadataDropped])
	}
	for _, k := range dropped {
		if _, ok := head.Metadata[k]; ok {
			t.Errorf("%s is listed as dropped but is in the metadata", k)
		}
	}
	for k, want := range map[string]string{"mex-subject": subject, "mex-localid": local, "mex-partnerid": partner} {
		if got := st.Request.Metadata[k]; got != want {
			t.Errorf("Requested metadata %s = %q, want %q", k, got, want)
		}
	}
}

// indexRange returns from..to.
func indexRange(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}
