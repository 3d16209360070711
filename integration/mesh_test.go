//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/meshpeer"
	"github.com/ferryhq/ferry/transport/mesh"
)

// The sandbox's test mailboxes, as the integration routes use them:
// ferry sends from X26ABC1 and polls X26ABC1 (for reports) and X26ABC3;
// X26ABC2 is left to NHS England's mesh-client, the independent peer; ferry
// holds a wrong password for X26ABC2.
const (
	mbFerry  = "X26ABC1"
	mbPeer   = "X26ABC2"
	mbInbox  = "X26ABC3"
	workflow = "TEST_WORKFLOW"     // X26ABC1 → X26ABC2
	wfToUs   = "TEST_WORKFLOW_ACK" // X26ABC2 → X26ABC1, X26ABC3
)

// meshClient runs a Python snippet with mesh_client.MeshClient bound to
// `client` for mailbox, over the sandbox's mutual TLS, and returns stdout.
func meshClient(t testing.TB, mailbox, script string, stdin []byte) string {
	t.Helper()
	root, tlsDir := os.Getenv("FERRY_ROOT"), os.Getenv("FERRY_TLS_DIR")
	if root == "" || tlsDir == "" || os.Getenv("FERRY_MESH_URL") == "" {
		t.Fatal("FERRY_ROOT, FERRY_TLS_DIR and FERRY_MESH_URL must be set: run `make test-integration`")
	}
	return meshpeer.Peer{
		Python: filepath.Join(root, ".cache/venv/bin/python"),
		URL:    os.Getenv("FERRY_MESH_URL"),
		CA:     filepath.Join(tlsDir, "ca.pem"),
		Cert:   filepath.Join(tlsDir, "client.pem"),
		Key:    filepath.Join(tlsDir, "client.key"),
	}.Run(t, mailbox, script, stdin)
}

// received is what mesh-client saw of a message.
type received struct {
	SHA256     string `json:"sha256"`
	Sender     string `json:"sender"`
	WorkflowID string `json:"workflow_id"`
	Subject    string `json:"subject"`
	LocalID    string `json:"local_id"`
	Filename   string `json:"filename"`
}

// peerReceive has mesh-client, as X26ABC2, read message id and acknowledge it.
func peerReceive(t *testing.T, id string) received {
	t.Helper()
	out := meshClient(t, mbPeer, fmt.Sprintf(`
msg = client.retrieve_message(%q)
body = msg.read()
print(json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "sender": msg.sender, "workflow_id": msg.workflow_id,
    "subject": msg.subject, "local_id": msg.local_id, "filename": msg.filename}))
msg.acknowledge()
`, id), nil)
	var r received
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("mesh-client printed %q: %v", out, err)
	}
	return r
}

func meshMeta(local, compress string) map[string]string {
	return map[string]string{
		"mex-from": mbFerry, "mex-to": mbPeer, "mex-workflowid": workflow,
		"mex-subject": "weekly+figures", "mex-localid": local, "mex-filename": "figures.csv",
		"mex-content-compress": compress,
	}
}

func isDone(st domain.State) bool {
	return st.Status == domain.StatusDelivered || st.Status == domain.StatusAcknowledged || st.Status == domain.StatusFailed
}

func TestMESHSendReadByMESHClient(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compressed=%t", compress), func(t *testing.T) {
			local := uniq("send")
			flag := map[bool]string{true: "Y", false: "N"}[compress]
			id, sum := stack.upload(t, "outbound/mesh/"+local+"/figures.csv", 2*mib+512*1024, meshMeta(local, flag))
			st := stack.waitFor(t, id, 60*time.Second, "delivered", isDone)
			if st.Status == domain.StatusFailed {
				t.Fatalf("transfer failed: %+v\n%s", st.LastFailure, stack.timeline(id))
			}
			if st.Request.Chunks != 3 || st.Request.Compress != compress || st.Ref == "" {
				t.Fatalf("chunks %d, compress %t, MESH id %q; want 3, %t, an id", st.Request.Chunks, st.Request.Compress, st.Ref, compress)
			}
			if got, want := eventTypes(stack.events(t, id)), wantTypes(3, domain.TypeDelivered); !slices.Equal(got[:len(want)], want) {
				t.Fatalf("events = %v, want %v first", got, want)
			}

			got := peerReceive(t, st.Ref)
			want := received{SHA256: sum, Sender: mbFerry, WorkflowID: workflow, Subject: "weekly figures", LocalID: local, Filename: "figures.csv"}
			if got != want {
				t.Fatalf("mesh-client received %+v, want %+v", got, want)
			}
			// mesh-client acknowledged: tracking says so, and the transfer ends Acknowledged.
			stack.waitFor(t, id, 30*time.Second, "acknowledged", func(st domain.State) bool { return st.Status == domain.StatusAcknowledged })
		})
	}
}

func TestMESHReceiveFromMESHClient(t *testing.T) {
	data := make([]byte, 11*mib+mib/2)
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = r.Read(data)
	sum := sha256.Sum256(data)
	local := uniq("recv")
	msgID := meshClient(t, mbPeer, fmt.Sprintf(`
print(client.send_message(%q, sys.stdin.buffer.read(), workflow_id=%q, subject="from+mesh-client", local_id=%q,
    filename="lab-results.csv", max_chunk_size=5*1024*1024, compress=True))
`, mbInbox, wfToUs, local), data)

	id := mesh.TransferID(mbInbox, msgID)
	st := stack.waitFor(t, id, 60*time.Second, "acknowledged", func(st domain.State) bool {
		return st.Status == domain.StatusAcknowledged || st.Status == domain.StatusFailed
	})
	if st.Status != domain.StatusAcknowledged {
		t.Fatalf("transfer %s: %+v\n%s", st.Status, st.LastFailure, stack.timeline(id))
	}
	if st.Request.Chunks != 3 || st.BytesSent != int64(len(data)) {
		t.Fatalf("chunks %d, bytes %d; want 3 chunks of %d bytes in all", st.Request.Chunks, st.BytesSent, len(data))
	}
	key := "inbound/" + mbInbox + "/" + msgID + ".dat"
	if got := stack.objectSHA256(t, stack.res.MESHBucket, key); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("s3://%s/%s sha256 = %s, want %x", stack.res.MESHBucket, key, got, sum)
	}
	head, err := stack.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(stack.res.MESHBucket), Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"mex-from": mbPeer, "mex-to": mbInbox, "mex-workflowid": wfToUs, "mex-localid": local, "mex-subject": "from+mesh-client", "mex-messageid": msgID} {
		raw := head.Metadata[k]
		if v, err := url.QueryUnescape(raw); err != nil || v != want {
			t.Errorf("object metadata %s = %q (decoded %q), want %q", k, raw, v, want)
		}
	}
	inbox := meshClient(t, mbInbox, `print(json.dumps(client.list_messages()))`, nil)
	if strings.Contains(inbox, msgID) {
		t.Fatalf("message %s is still in %s's inbox after ferry acknowledged it: %s", msgID, mbInbox, inbox)
	}
}

func TestMESHBadInput(t *testing.T) {
	cases := []struct {
		name         string
		meta         map[string]string
		kind         domain.Kind
		code, reason string
	}{
		{"wrong password", map[string]string{"mex-from": mbPeer, "mex-to": mbFerry, "mex-workflowid": wfToUs},
			domain.KindUnauthorized, "403", "authentication failed"},
		{"unknown recipient", map[string]string{"mex-from": mbFerry, "mex-to": "X26ZZZ9", "mex-workflowid": workflow},
			domain.KindInvalid, "12", ""},
		{"no mex-to and no mapping", map[string]string{"mex-from": mbInbox, "mex-workflowid": wfToUs},
			domain.KindInvalid, "MISSING_METADATA", "missing metadata: mex-to"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, _ := stack.upload(t, "outbound/mesh/"+uniq("bad")+".csv", 1000, c.meta)
			st := stack.waitFor(t, id, 60*time.Second, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
			f := st.LastFailure
			if f.Retryable || f.Kind != c.kind || f.Code != c.code || !strings.Contains(f.Message, c.reason) {
				t.Fatalf("failure = %+v; want final, kind %s, code %q, reason containing %q", f, c.kind, c.code, c.reason)
			}
		})
	}
}

func TestMESHSandboxDownMidTransfer(t *testing.T) {
	root, port := os.Getenv("FERRY_ROOT"), os.Getenv("FERRY_MESH_PORT")
	sandbox := func(cmd string) {
		out, err := exec.Command(filepath.Join(root, "scripts/mesh-sandbox.sh"), cmd, port).CombinedOutput()
		if err != nil {
			t.Fatalf("mesh-sandbox.sh %s: %v\n%s", cmd, err, out)
		}
	}
	const chunks = 24
	local := uniq("outage")
	// Compressed: the sandbox's file store forgets an empty Content-Encoding
	// when it reloads a message after a restart, and then refuses the
	// remaining uncompressed chunks with 417 (a sandbox quirk, not MESH's).
	id, sum := stack.upload(t, "outbound/mesh/"+local+"/big.csv", chunks*mib, meshMeta(local, "Y"))
	stack.waitFor(t, id, 60*time.Second, "under way", func(st domain.State) bool { return st.ChunksSent >= 2 })
	sandbox("stop")
	stopped := true
	defer func() {
		if stopped {
			sandbox("start")
		}
	}()
	mid := stack.waitFor(t, id, 60*time.Second, "retrying", func(st domain.State) bool { return st.Status == domain.StatusRetrying || isDone(st) })
	if mid.Status != domain.StatusRetrying {
		t.Fatalf("transfer is %s, want RETRYING while MESH is down (chunks sent %d of %d)", mid.Status, mid.ChunksSent, chunks)
	}
	if f := mid.LastFailure; !f.Retryable || f.Kind != domain.KindUnavailable {
		t.Fatalf("failure while MESH is down = %+v, want retryable unavailable", f)
	}
	sandbox("start")
	stopped = false

	st := stack.waitFor(t, id, 120*time.Second, "delivered", isDone)
	if st.Status == domain.StatusFailed {
		t.Fatalf("transfer failed: %+v\n%s", st.LastFailure, stack.timeline(id))
	}
	var sent []int
	for _, e := range stack.events(t, id) {
		if c, ok := e.Payload.(domain.ChunkSent); ok {
			sent = append(sent, c.Index)
		}
	}
	for i, n := range sent {
		if n != i+1 || len(sent) != chunks {
			t.Fatalf("chunks recorded %v, want 1..%d once each", sent, chunks)
		}
	}
	out := meshClient(t, mbPeer, fmt.Sprintf(`
found = []
# dict.fromkeys: after a restart the sandbox may list one message id twice.
for mid in dict.fromkeys(client.list_messages()):
    msg = client.retrieve_message(mid)
    if msg.local_id == %q:
        found.append({"id": mid, "sha256": hashlib.sha256(msg.read()).hexdigest()})
        msg.acknowledge()
print(json.dumps(found))
`, local), nil)
	var found []struct{ ID, SHA256 string }
	if err := json.Unmarshal([]byte(out), &found); err != nil {
		t.Fatalf("mesh-client printed %q: %v", out, err)
	}
	if len(found) != 1 || found[0].ID != st.Ref || found[0].SHA256 != sum {
		t.Fatalf("recipient has %+v for local id %s; want exactly message %s with sha256 %s", found, local, st.Ref, sum)
	}
}

func TestMESHNonDeliveryReport(t *testing.T) {
	local := uniq("ndr")
	id, _ := stack.upload(t, "outbound/mesh/"+local+".csv", 5000, meshMeta(local, "N"))
	st := stack.waitFor(t, id, 60*time.Second, "delivered", isDone)
	if st.Status != domain.StatusDelivered {
		t.Fatalf("transfer is %s, want DELIVERED and awaiting acknowledgement\n%s", st.Status, stack.timeline(id))
	}
	body, _ := json.Marshal(map[string]string{
		"mailbox_id": mbFerry, "code": "14", "description": "Message not collected by recipient",
		"workflow_id": workflow, "linked_message_id": st.Ref, "status": "undeliverable",
	})
	resp, err := sandboxAdmin(t).Post(os.Getenv("FERRY_MESH_URL")+"/messageexchange/admin/report", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var report struct {
		MessageID string `json:"message_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil || resp.StatusCode != http.StatusOK || report.MessageID == "" {
		t.Fatalf("admin report: HTTP %d, %+v, %v", resp.StatusCode, report, err)
	}

	failed := stack.waitFor(t, id, 60*time.Second, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
	if f := failed.LastFailure; f.Retryable || f.Code != "14" || !strings.Contains(f.Message, "non-delivery report") {
		t.Fatalf("failure = %+v, want final with the report's code 14", f)
	}
	// The report itself lands as a .ctl file holding its headers, as the seed client does.
	rid := mesh.TransferID(mbFerry, report.MessageID)
	stack.waitFor(t, rid, 60*time.Second, "acknowledged", func(st domain.State) bool { return st.Status == domain.StatusAcknowledged })
	ctl := getObject(t, stack.res.MESHBucket, "inbound/"+mbFerry+"/"+report.MessageID+".ctl")
	var headers map[string]string
	if err := json.Unmarshal(ctl, &headers); err != nil || headers["mex-linkedmsgid"] != st.Ref || headers["mex-messagetype"] != "REPORT" {
		t.Fatalf(".ctl = %s (%v); want the report's headers linking %s", ctl, err, st.Ref)
	}
}

// sandboxAdmin returns an HTTP client for the sandbox's admin endpoints,
// which sit behind the same mutual TLS.
func sandboxAdmin(t *testing.T) *http.Client {
	t.Helper()
	dir := os.Getenv("FERRY_TLS_DIR")
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
}

func getObject(t *testing.T, bucket, key string) []byte {
	t.Helper()
	out, err := stack.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
