//go:build integration

package mesh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/meshpeer"
	"github.com/ferryhq/ferry/transport/mesh"
)

// The sandbox's own test mailboxes and keys (mesh_sandbox/store/data).
const (
	alice    = "X26ABC1"
	bob      = "X26ABC2"
	carol    = "X26ABC3"
	password = "password"
	key      = "TestKey"
	workflow = "FERRY_TEST"
)

// peer describes the MESH sandbox under test, from the environment:
// FERRY_MESH_URL (required), FERRY_MESH_CA (a CA PEM file), and for mutual
// TLS FERRY_MESH_CLIENT_CERT and FERRY_MESH_CLIENT_KEY (default: client.pem
// and client.key beside the CA when they exist).
type peer struct {
	url               string
	ca, cert, key     []byte
	caPath            string
	certPath, keyPath string
}

func sandbox(t *testing.T) peer {
	t.Helper()
	p := peer{url: strings.TrimRight(os.Getenv("FERRY_MESH_URL"), "/")}
	if p.url == "" {
		t.Fatal("FERRY_MESH_URL is not set: start mesh-sandbox (STORE_MODE=memory AUTH_MODE=full SHARED_KEY=TestKey uvicorn mesh_sandbox.api:app --port P) and set it to its URL")
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		return b
	}
	if p.caPath = os.Getenv("FERRY_MESH_CA"); p.caPath != "" {
		p.ca = read(p.caPath)
	}
	p.certPath, p.keyPath = os.Getenv("FERRY_MESH_CLIENT_CERT"), os.Getenv("FERRY_MESH_CLIENT_KEY")
	if p.certPath == "" && p.caPath != "" {
		c, k := filepath.Join(filepath.Dir(p.caPath), "client.pem"), filepath.Join(filepath.Dir(p.caPath), "client.key")
		if _, err := os.Stat(c); err == nil {
			if _, err := os.Stat(k); err == nil {
				p.certPath, p.keyPath = c, k
			}
		}
	}
	if p.certPath != "" {
		p.cert, p.key = read(p.certPath), read(p.keyPath)
	}
	return p
}

func (p peer) client(t *testing.T, mailbox, pw string) *mesh.Client {
	t.Helper()
	c, err := mesh.New(mesh.ClientConfig{
		URL: p.url, Mailbox: mailbox, Password: pw, SharedKey: key,
		CACertPEM: p.ca, ClientCertPEM: p.cert, ClientKeyPEM: p.key, ClientVersion: "ferry==integration-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// admin posts JSON to one of the sandbox's admin endpoints.
func (p peer) admin(t *testing.T, path string, body any, out any) {
	t.Helper()
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.ca != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(p.ca)
		tlsCfg.RootCAs = pool
	}
	if p.cert != nil {
		pair, err := tls.X509KeyPair(p.cert, p.key)
		if err != nil {
			t.Fatal(err)
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	b, _ := json.Marshal(body)
	resp, err := hc.Post(p.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, rb)
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, rb)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func unique(t *testing.T) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "ferry-" + hex.EncodeToString(b)
}

// allInbox lists every message id in c's inbox, following ContinueFrom.
func allInbox(t *testing.T, c *mesh.Client, pageSize int) (ids []string, pages int) {
	t.Helper()
	from := ""
	for {
		page, err := c.Inbox(ctx(t), pageSize, from)
		if err != nil {
			t.Fatalf("Inbox: %v", err)
		}
		pages++
		ids = append(ids, page.MessageIDs...)
		if from = page.ContinueFrom; from == "" {
			return ids, pages
		}
	}
}

// chunks returns n chunks of size bytes; compressible text or random bytes.
func chunks(n, size int, compressible bool) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, size)
		if compressible {
			line := []byte(fmt.Sprintf("chunk %d: ferry moves files between places; ", i+1))
			for j := range b {
				b[j] = line[j%len(line)]
			}
		} else {
			_, _ = rand.Read(b)
		}
		out[i] = b
	}
	return out
}

func sendAll(t *testing.T, c *mesh.Client, m mesh.Message, parts [][]byte, gzip bool) string {
	t.Helper()
	id, err := c.Send(ctx(t), m, 1, len(parts), bytes.NewReader(parts[0]), gzip)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	for i := 2; i <= len(parts); i++ {
		if err := c.SendChunk(ctx(t), id, i, len(parts), bytes.NewReader(parts[i-1]), gzip); err != nil {
			t.Fatalf("SendChunk %d: %v", i, err)
		}
	}
	return id
}

func downloadAll(t *testing.T, c *mesh.Client, id string) ([]byte, *mesh.Download) {
	t.Helper()
	var all bytes.Buffer
	var first *mesh.Download
	for n, total := 1, 1; n <= total; n++ {
		d, err := c.Download(ctx(t), id, n)
		if err != nil {
			t.Fatalf("Download %s chunk %d: %v", id, n, err)
		}
		if _, err := io.Copy(&all, d.Body); err != nil {
			t.Fatalf("read chunk %d: %v", n, err)
		}
		_ = d.Body.Close()
		if d.Chunk != n {
			t.Errorf("chunk %d came back as %d", n, d.Chunk)
		}
		total = d.Total
		if first == nil {
			first = d
		}
	}
	return all.Bytes(), first
}

func wantKind(t *testing.T, err error, kind domain.Kind, code string) {
	t.Helper()
	if domain.KindOf(err) != kind || (code != "" && domain.CodeOf(err) != code) {
		t.Fatalf("err = %v (kind %s, code %q), want kind %s code %q", err, domain.KindOf(err), domain.CodeOf(err), kind, code)
	}
}

func TestSandboxHandshake(t *testing.T) {
	p := sandbox(t)
	if err := p.client(t, alice, password).Handshake(ctx(t)); err != nil {
		t.Fatalf("Handshake: %v", err)
	}
	t.Run("wrong password is unauthorized", func(t *testing.T) {
		err := p.client(t, alice, "not-the-password").Handshake(ctx(t))
		wantKind(t, err, domain.KindUnauthorized, "")
		if domain.KindOf(err).Retryable() || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), "HTTP 403") {
			t.Errorf("err = %v", err)
		}
		if strings.Contains(err.Error(), "not-the-password") {
			t.Error("error reveals the password")
		}
		_, err = p.client(t, bob, "not-the-password").Inbox(ctx(t), 0, "")
		wantKind(t, err, domain.KindUnauthorized, "")
	})
}

func TestSandboxSendAndReceiveChunked(t *testing.T) {
	p := sandbox(t)
	sender, recipient := p.client(t, alice, password), p.client(t, bob, password)
	for _, tc := range []struct {
		name string
		gzip bool
	}{{"compressed", true}, {"uncompressed", false}} {
		t.Run(tc.name, func(t *testing.T) {
			parts := chunks(3, 256<<10, tc.gzip)
			parts[2] = parts[2][:100<<10] // a shorter last chunk
			local := unique(t)
			m := mesh.Message{To: bob, WorkflowID: workflow, Subject: "ferry " + tc.name, LocalID: local, FileName: local + ".bin"}

			id, err := sender.Send(ctx(t), m, 1, 3, bytes.NewReader(parts[0]), tc.gzip)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if err := sender.SendChunk(ctx(t), id, 2, 3, bytes.NewReader(parts[1]), tc.gzip); err != nil {
				t.Fatalf("SendChunk 2: %v", err)
			}
			// Incomplete: uploading, not listed, not downloadable.
			tr, err := sender.Track(ctx(t), id)
			if err != nil || tr.Status != mesh.StatusUploading {
				t.Fatalf("Track before the last chunk = %+v, %v; want uploading", tr, err)
			}
			if ids, _ := allInbox(t, recipient, 0); slices.Contains(ids, id) {
				t.Error("an incomplete message is listed in the inbox")
			}
			_, err = recipient.Download(ctx(t), id, 1)
			wantKind(t, err, domain.KindNotFound, "") // 410

			if err := sender.SendChunk(ctx(t), id, 3, 3, bytes.NewReader(parts[2]), tc.gzip); err != nil {
				t.Fatalf("SendChunk 3: %v", err)
			}
			// Repeating the last chunk (a lost response) meets a finalised message.
			err = sender.SendChunk(ctx(t), id, 3, 3, bytes.NewReader(parts[2]), tc.gzip)
			wantKind(t, err, domain.KindConflict, "")
			tr, err = sender.Track(ctx(t), id)
			if err != nil || tr.Status != mesh.StatusAccepted || !tr.StatusSuccess || tr.Recipient != bob || tr.LocalID != local {
				t.Fatalf("Track after the last chunk = %+v, %v; want accepted", tr, err)
			}

			ids, _ := allInbox(t, recipient, 0)
			if !slices.Contains(ids, id) {
				t.Fatalf("message %s not in %s's inbox", id, bob)
			}
			got, d := downloadAll(t, recipient, id)
			if want := bytes.Join(parts, nil); !bytes.Equal(got, want) {
				t.Fatalf("downloaded %d bytes, sha256 %x; want %d bytes, sha256 %x", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
			}
			h := d.Headers
			if h.MessageID != id || h.From != alice || h.To != bob || h.WorkflowID != workflow || h.Subject != m.Subject ||
				h.LocalID != local || h.FileName != m.FileName || h.MessageType != mesh.MessageTypeData || h.StatusCode != "00" {
				t.Errorf("headers = %+v", h)
			}
			if d.Total != 3 {
				t.Errorf("total = %d, want 3", d.Total)
			}
			// We ask for gzip, so the sandbox gzips every response and says so.
			if d.ContentEncoding != "gzip" || h.All["mex-content-compressed"] != "Y" {
				t.Errorf("Content-Encoding %q, mex-content-compressed %q", d.ContentEncoding, h.All["mex-content-compressed"])
			}

			if err := recipient.Acknowledge(ctx(t), id); err != nil {
				t.Fatalf("Acknowledge: %v", err)
			}
			if err := recipient.Acknowledge(ctx(t), id); err != nil {
				t.Errorf("repeated Acknowledge: %v", err)
			}
			if ids, _ := allInbox(t, recipient, 0); slices.Contains(ids, id) {
				t.Error("acknowledged message still listed")
			}
			tr, err = sender.Track(ctx(t), id)
			if err != nil || tr.Status != mesh.StatusAcknowledged {
				t.Errorf("Track after acknowledgement = %+v, %v; want acknowledged", tr, err)
			}
		})
	}
}

func TestSandboxErrors(t *testing.T) {
	p := sandbox(t)
	alicec := p.client(t, alice, password)
	t.Run("unknown recipient", func(t *testing.T) {
		_, err := alicec.Send(ctx(t), mesh.Message{To: "X26NOPE9", WorkflowID: workflow}, 1, 1, strings.NewReader("x"), false)
		wantKind(t, err, domain.KindInvalid, "12")
	})
	t.Run("empty message", func(t *testing.T) {
		_, err := alicec.Send(ctx(t), mesh.Message{To: bob, WorkflowID: workflow}, 1, 1, strings.NewReader(""), false)
		wantKind(t, err, domain.KindInvalid, "02")
	})
	t.Run("malformed header", func(t *testing.T) {
		_, err := alicec.Send(ctx(t), mesh.Message{To: bob, WorkflowID: "https://not-a-workflow"}, 1, 1, strings.NewReader("x"), false)
		wantKind(t, err, domain.KindInvalid, "06")
	})
	t.Run("changed content encoding", func(t *testing.T) {
		id, err := alicec.Send(ctx(t), mesh.Message{To: carol, WorkflowID: workflow}, 1, 2, strings.NewReader("one"), false)
		if err != nil {
			t.Fatal(err)
		}
		err = alicec.SendChunk(ctx(t), id, 2, 2, strings.NewReader("two"), true)
		wantKind(t, err, domain.KindInvalid, "417")
	})
	t.Run("unknown message", func(t *testing.T) {
		_, err := alicec.Download(ctx(t), "00000000000000000000000000000000", 1)
		wantKind(t, err, domain.KindNotFound, "20")
		wantKind(t, alicec.Acknowledge(ctx(t), "00000000000000000000000000000000"), domain.KindNotFound, "")
		_, err = alicec.Track(ctx(t), "00000000000000000000000000000000")
		wantKind(t, err, domain.KindNotFound, "")
		wantKind(t, alicec.SendChunk(ctx(t), "00000000000000000000000000000000", 2, 2, strings.NewReader("x"), false), domain.KindNotFound, "")
	})
}

func TestSandboxNonDeliveryReport(t *testing.T) {
	p := sandbox(t)
	sender := p.client(t, alice, password)
	local := unique(t)
	id, err := sender.Send(ctx(t), mesh.Message{To: bob, WorkflowID: workflow, LocalID: local}, 1, 1, strings.NewReader("never collected"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                 string
		req                  map[string]any
		code, event, subject string
	}{
		// status "undeliverable" (the default) ignores code and description:
		// the sandbox always raises its NDR, code 14.
		{"undeliverable", map[string]any{"mailbox_id": alice, "code": "ignored", "description": "ignored", "workflow_id": workflow,
			"linked_message_id": id, "subject": "s", "local_id": local}, "14", "SEND", "NDR: s"},
		{"error", map[string]any{"mailbox_id": alice, "code": "99", "description": "boom", "workflow_id": workflow,
			"linked_message_id": id, "status": "error"}, "99", "TRANSFER", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out struct {
				MessageID string `json:"message_id"`
			}
			p.admin(t, "/messageexchange/admin/report", tc.req, &out)
			ids, _ := allInbox(t, sender, 0)
			if !slices.Contains(ids, out.MessageID) {
				t.Fatalf("report %s not in %s's inbox", out.MessageID, alice)
			}
			d, err := sender.Download(ctx(t), out.MessageID, 1)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(d.Body)
			_ = d.Body.Close()
			if err != nil || len(b) != 0 {
				t.Errorf("report body %q, %v; want empty", b, err)
			}
			h := d.Headers
			if h.MessageType != mesh.MessageTypeReport || h.LinkedMsgID != id || h.StatusCode != tc.code ||
				h.StatusEvent != tc.event || h.StatusSuccess != "ERROR" || h.StatusDescription == "" || h.Subject != tc.subject || h.From != "" {
				t.Errorf("report headers = %+v", h)
			}
			if d.Chunk != 1 || d.Total != 1 || d.ContentEncoding != "" {
				t.Errorf("chunk %d of %d, encoding %q", d.Chunk, d.Total, d.ContentEncoding)
			}
			if err := sender.Acknowledge(ctx(t), out.MessageID); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := p.client(t, bob, password).Acknowledge(ctx(t), id); err != nil {
		t.Fatal(err)
	}
}

func TestSandboxInboxPaging(t *testing.T) {
	p := sandbox(t)
	sender, recipient := p.client(t, alice, password), p.client(t, carol, password)
	var sent []string
	for i := range 12 {
		id, err := sender.Send(ctx(t), mesh.Message{To: carol, WorkflowID: workflow}, 1, 1, strings.NewReader(fmt.Sprint("page test ", i)), false)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, id)
	}
	ids, pages := allInbox(t, recipient, 10)
	if pages < 2 {
		t.Errorf("%d ids in %d pages of 10", len(ids), pages)
	}
	for _, id := range sent {
		if !slices.Contains(ids, id) {
			t.Errorf("message %s missing from the paged listing", id)
		}
		if err := recipient.Acknowledge(ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}
}

// python returns the venv interpreter holding mesh-client
// (FERRY_MESH_PYTHON, default the repository's .cache/venv).
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("FERRY_MESH_PYTHON")
	if py == "" {
		py, _ = filepath.Abs("../../.cache/venv/bin/python")
	}
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("no python with mesh-client at %s (set FERRY_MESH_PYTHON): %v", py, err)
	}
	return py
}

// meshClient runs a mesh-client snippet as mailbox (see package meshpeer).
func (p peer) meshClient(t *testing.T, mailbox, script string, stdin []byte) string {
	t.Helper()
	return meshpeer.Peer{Python: python(t), URL: p.url, CA: p.caPath, Cert: p.certPath, Key: p.keyPath}.Run(t, mailbox, script, stdin)
}

func TestSandboxInteropWithMESHClient(t *testing.T) {
	p := sandbox(t)
	data := bytes.Join(chunks(3, 200<<10, true), nil)

	t.Run("mesh-client sends chunked and compressed, ferry receives", func(t *testing.T) {
		local := unique(t)
		id := p.meshClient(t, carol, fmt.Sprintf(`
data = sys.stdin.buffer.read()
print(client.send_message(%q, data, workflow_id=%q, subject="from mesh-client", local_id=%q,
    filename="interop.txt", max_chunk_size=250*1024, compress=True))
`, bob, workflow, local), data)
		c := p.client(t, bob, password)
		got, d := downloadAll(t, c, id)
		if !bytes.Equal(got, data) {
			t.Fatalf("downloaded %d bytes, want %d identical bytes", len(got), len(data))
		}
		h := d.Headers
		if d.Total != 3 || h.From != carol || h.LocalID != local || h.Subject != "from mesh-client" || h.FileName != "interop.txt" {
			t.Errorf("chunk total %d, headers %+v", d.Total, h)
		}
		if err := c.Acknowledge(ctx(t), id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ferry sends chunked and compressed, mesh-client receives", func(t *testing.T) {
		local := unique(t)
		parts := [][]byte{data[:250<<10], data[250<<10 : 500<<10], data[500<<10:]}
		id := sendAll(t, p.client(t, alice, password),
			mesh.Message{To: carol, WorkflowID: workflow, Subject: "from ferry", LocalID: local, FileName: "ferry.txt"}, parts, true)
		out := p.meshClient(t, carol, fmt.Sprintf(`
msg = client.retrieve_message(%q)
body = msg.read()
print(json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "sender": msg.sender, "local_id": msg.local_id,
    "subject": msg.subject, "filename": msg.filename, "workflow_id": msg.workflow_id}))
msg.acknowledge()
`, id), nil)
		var got map[string]string
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("mesh-client printed %q: %v", out, err)
		}
		want := map[string]string{"sha256": fmt.Sprintf("%x", sha256.Sum256(data)), "sender": alice, "local_id": local,
			"subject": "from ferry", "filename": "ferry.txt", "workflow_id": workflow}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("mesh-client saw %s = %q, want %q", k, got[k], v)
			}
		}
		tr, err := p.client(t, alice, password).Track(ctx(t), id)
		if err != nil || tr.Status != mesh.StatusAcknowledged {
			t.Errorf("Track = %+v, %v; want acknowledged by mesh-client", tr, err)
		}
	})
}
