//go:build integration

package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/quotedprintable"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/mailtest"
	"github.com/ferryhq/ferry/store"
)

// mailPart is one attachment of a test message: its Content-Type and
// Content-Disposition, its transfer encoding and its bytes (from a file,
// so that a large one is never held whole).
type mailPart struct {
	contentType, disposition, encoding string
	body                               func() io.Reader
}

// writeMessage writes a multipart/mixed message with a text and parts to
// a file, encoding each part as it goes.
func writeMessage(t *testing.T, from, to, subject string, headers []string, parts []mailPart) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "mail-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	const boundary = "ferry-test-boundary"
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@partner.example>\r\nMIME-Version: 1.0\r\n", from, to, subject, uniq("msg"))
	for _, h := range headers {
		fmt.Fprintf(w, "%s\r\n", h)
	}
	fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe files.\r\n", boundary, boundary)
	for _, p := range parts {
		fmt.Fprintf(w, "--%s\r\nContent-Type: %s\r\nContent-Disposition: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n", boundary, p.contentType, p.disposition, p.encoding)
		switch p.encoding {
		case "base64":
			enc := mailtest.Base64(w)
			if _, err := io.Copy(enc, p.body()); err != nil {
				t.Fatal(err)
			}
			enc.Close()
		case "quoted-printable":
			enc := quotedprintable.NewWriter(w)
			if _, err := io.Copy(enc, p.body()); err != nil {
				t.Fatal(err)
			}
			enc.Close()
		default:
			if _, err := io.Copy(w, p.body()); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprint(w, "\r\n")
	}
	fmt.Fprintf(w, "--%s--\r\n", boundary)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// sendMail sends the message in file from → to to ferry local's SMTP
// listener with STARTTLS, trusting its certificate, as a real client.
func sendMail(t *testing.T, from, to, file string) {
	t.Helper()
	stack.mu.Lock()
	addr, certFile := stack.local.smtp, stack.local.smtpCert
	stack.mu.Unlock()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: roots}); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	if _, err := io.Copy(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// sendMailPython sends the message in file with Python's smtplib, another
// real client: STARTTLS trusting the listener's certificate, then
// sendmail of the file's bytes.
func sendMailPython(t *testing.T, from, to, file string) {
	t.Helper()
	stack.mu.Lock()
	addr, certFile := stack.local.smtp, stack.local.smtpCert
	stack.mu.Unlock()
	host, port, _ := strings.Cut(addr, ":")
	script := `
import smtplib, ssl, sys
host, port, cafile, sender, rcpt, path = sys.argv[1:]
with smtplib.SMTP(host, int(port), timeout=60) as s:
    s.starttls(context=ssl.create_default_context(cafile=cafile))
    with open(path, "rb") as f:
        s.sendmail(sender, [rcpt], f.read())
`
	out, err := exec.Command("python3", "-c", script, host, port, certFile, from, to, file).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
}

// sentBy waits until the history lists n transfers from sender and
// returns them loaded.
func sentBy(t *testing.T, sender string, n int) []domain.State {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := stack.store.History(context.Background(), store.Query{Sender: sender, Since: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) >= n {
			var out []domain.State
			for _, s := range page.Items {
				st, err := stack.store.Load(context.Background(), s.ID)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, st)
			}
			slices.SortFunc(out, func(a, b domain.State) int { return strings.Compare(a.Request.Filename, b.Request.Filename) })
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("history lists %d transfers from %s, want %d: %+v", len(page.Items), sender, n, page.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEmailAttachments: a message with two attachments, one base64 and big
// enough for three chunks, one quoted-printable with a hostile non-ASCII
// name, sent over SMTP by Python's smtplib → two transfers delivered byte
// for byte, sharing a correlation id, under sanitised names.
func TestEmailAttachments(t *testing.T) {
	from := uniq("ann") + "@partner.example"
	big := int64(12 << 20) // three 5 MiB chunks
	bigBytes := func() io.Reader { return io.LimitReader(&prng{r: rand.NewPCG(7, 11)}, big) }
	csv := "name,price\r\ncafé,2 £\r\n" + strings.Repeat("a long line that quoted-printable must soft-break, =, and keep ", 10) + "\r\n"
	file := writeMessage(t, "Ann <"+from+">", "lab@ferry.test", "=?UTF-8?Q?Results_=E2=80=93_May?=", nil, []mailPart{
		{"application/octet-stream", `attachment; filename*=UTF-8''report%20%C3%BC.bin`, "base64", bigBytes},
		{"text/csv; charset=utf-8", `attachment; filename="=?UTF-8?Q?=2E=2E/=2E=2E/na=C3=AFve=0D.csv?="`, "quoted-printable", func() io.Reader { return strings.NewReader(csv) }},
	})
	sendMailPython(t, from, "lab@ferry.test", file)

	got := sentBy(t, from, 2)
	if len(got) != 2 {
		t.Fatalf("%d transfers, want 2", len(got))
	}
	sum := func(r io.Reader) string {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	want := []struct {
		name, sha string
		chunks    int
	}{
		{"na_ve.csv", sum(strings.NewReader(csv)), 1},
		{"report__.bin", sum(bigBytes()), 3},
	}
	for i, st := range got {
		w := want[i]
		st = stack.waitFor(t, st.ID, 2*time.Minute, "delivered", delivered)
		r := st.Request
		if r.Filename != w.name || r.Route != "email-lab" || r.Chunks != w.chunks || r.Recipient != "lab@ferry.test" {
			t.Errorf("transfer %s: %q on %q in %d chunks to %q; want %q on email-lab in %d", st.ID, r.Filename, r.Route, r.Chunks, r.Recipient, w.name, w.chunks)
		}
		if r.CorrelationID == "" || r.CorrelationID != got[0].Request.CorrelationID {
			t.Errorf("transfer %s: correlation id %q, the other's %q", st.ID, r.CorrelationID, got[0].Request.CorrelationID)
		}
		if r.Metadata["subject"] != "Results – May" || r.Metadata["email-virus"] != "PASS" {
			t.Errorf("transfer %s: metadata %v", st.ID, r.Metadata)
		}
		key := "email-lab/" + st.ID + "/" + w.name
		if st.Location != "s3://ferry-local-delivered/"+key {
			t.Errorf("transfer %s delivered to %s, want %s", st.ID, st.Location, key)
		}
		if got := stack.objectSHA256(t, "ferry-local-delivered", key); got != w.sha || r.SHA256 != w.sha {
			t.Errorf("%s: delivered sha256 %s (recorded %s), sent %s", w.name, got, r.SHA256, w.sha)
		}
	}
}

// TestEmailRejected: messages a route refuses are recorded, Failed with
// the reason, and none of their attachments is stored or delivered.
func TestEmailRejected(t *testing.T) {
	attachment := []mailPart{{"application/pdf", `attachment; filename="a.pdf"`, "base64", func() io.Reader { return strings.NewReader("%PDF-1.4 test") }}}
	tests := []struct {
		name, domain, to, code string
		headers                []string
		parts                  []mailPart
		raw                    string // a message of its own, instead of one made of parts
	}{
		{name: "virus", domain: "partner.example", to: "lab@ferry.test", code: "VERDICT_FAILED", headers: []string{"X-Ferry-Verdicts: virus=FAIL"}, parts: attachment},
		{name: "dmarc", domain: "partner.example", to: "lab@ferry.test", code: "VERDICT_FAILED", headers: []string{"X-Ferry-Verdicts: dmarc=FAIL"}, parts: attachment},
		{name: "sender not allowed", domain: "elsewhere.example", to: "lab@ferry.test", code: "SENDER_NOT_ALLOWED", parts: attachment},
		{name: "no attachment", domain: "partner.example", to: "lab@ferry.test", code: "NO_ATTACHMENT"},
		{name: "too large", domain: "partner.example", to: "notes@ferry.test", code: "TOO_LARGE",
			parts: []mailPart{{"application/octet-stream", "attachment", "base64", func() io.Reader { return io.LimitReader(&prng{r: rand.NewPCG(1, 2)}, 100<<10) }}}},
		{name: "malformed", domain: "partner.example", to: "lab@ferry.test", code: "MALFORMED_MESSAGE",
			raw: "Subject: broken\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!! not base64 !!!\r\n--x--\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := uniq("sender") + "@" + tt.domain
			file := writeMessage(t, from, tt.to, tt.name, tt.headers, tt.parts)
			if tt.raw != "" {
				if err := os.WriteFile(file, []byte("From: "+from+"\r\nTo: "+tt.to+"\r\n"+tt.raw), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sendMail(t, from, tt.to, file)
			got := sentBy(t, from, 1)
			st := stack.waitFor(t, got[0].ID, 30*time.Second, "failed", func(s domain.State) bool { return s.Status == domain.StatusFailed })
			if len(got) != 1 || st.LastFailure.Code != tt.code || st.LastFailure.Retryable {
				t.Fatalf("%d transfers; failure %+v, want one, %s, not retryable", len(got), st.LastFailure, tt.code)
			}
			r := st.Request
			if !strings.HasPrefix(r.Source.Key, domain.EmailPrefix) || r.Recipient != tt.to || r.CorrelationID == "" {
				t.Errorf("rejection of %+v to %q, correlation %q", r.Source, r.Recipient, r.CorrelationID)
			}
			// The first attachment's transfer would have had this id.
			at := time.UnixMilli(int64(ulid.MustParse(st.ID).Time()))
			first := domain.EmailTransferID(r.CorrelationID, tt.to, 1, at)
			if domain.EmailTransferID(r.CorrelationID, tt.to, 0, at) != st.ID {
				t.Fatalf("the rejection's id %s is not the message's", st.ID)
			}
			if _, err := stack.store.Load(context.Background(), first); err == nil {
				t.Errorf("a transfer %s of the refused message's attachment exists", first)
			}
			out, err := stack.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(stack.res.UploadBucket), Prefix: aws.String(domain.EmailAttachmentPrefix + first + "/")})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Contents) != 0 {
				t.Errorf("the refused message's attachment was stored: %s", aws.ToString(out.Contents[0].Key))
			}
		})
	}
}

// TestEmailText: a message without attachments to a route that takes a
// message's text becomes one transfer of it.
func TestEmailText(t *testing.T) {
	from := uniq("bob") + "@partner.example"
	file := writeMessage(t, from, "notes@ferry.test", "a note", nil, nil)
	sendMail(t, from, "notes@ferry.test", file)
	got := sentBy(t, from, 1)
	st := stack.waitFor(t, got[0].ID, time.Minute, "delivered", delivered)
	key := "email-notes/" + st.ID + "/body.txt"
	if st.Request.Filename != "body.txt" || st.Location != "s3://ferry-local-delivered/"+key {
		t.Fatalf("transfer of %q delivered to %s", st.Request.Filename, st.Location)
	}
	h := sha256.Sum256([]byte("The files."))
	if got := stack.objectSHA256(t, "ferry-local-delivered", key); got != hex.EncodeToString(h[:]) {
		t.Errorf("delivered text's sha256 %s, want that of %q", got, "The files.")
	}
}

// TestEmailOutbound: a route with an email destination delivers the file
// as the attachment of a message Mailpit (a real SMTP server, STARTTLS
// and AUTH required) receives with the same bytes; a file over the
// endpoint's maxSize fails at once, with the reason, and nothing is sent.
func TestEmailOutbound(t *testing.T) {
	meta := map[string]string{"sender": "org-a", "recipient": "partner-a"}
	t.Run("delivered as an attachment", func(t *testing.T) {
		id, sum := stack.upload(t, "outbound/mailto/"+uniq("report")+".bin", 7<<20, meta) // two 5 MiB chunks
		st := stack.waitFor(t, id, 2*time.Minute, "delivered", delivered)
		if st.Location != "mailto:partner@partner.example" || st.Request.Chunks != 2 {
			t.Errorf("delivered to %s in %d chunks", st.Location, st.Request.Chunks)
		}
		msg := waitMailpit(t, id)
		if !strings.HasPrefix(msg.Subject, id+" ") || !strings.HasSuffix(msg.Subject, " from org-a") || len(msg.To) != 1 || msg.To[0].Address != "partner@partner.example" {
			t.Errorf("message %+v", msg)
		}
		parts, err := stack.peers.mailpit.attachments(msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		part, ok := parts[id+".bin"]
		if !ok || len(parts) != 1 {
			t.Fatalf("attachments %v, want %s.bin", parts, id)
		}
		body, err := stack.peers.mailpit.part(msg.ID, part)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Errorf("attachment sha256 %s, uploaded %s", got, sum)
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		id, _ := stack.upload(t, "outbound/mailto/"+uniq("big")+".bin", 9<<20, meta)
		st := stack.waitFor(t, id, time.Minute, "failed", func(s domain.State) bool { return s.Status == domain.StatusFailed })
		if f := st.LastFailure; f.Code != "TOO_LARGE" || f.Retryable || !strings.Contains(f.Message, "maxSize") {
			t.Errorf("failure %+v, want TOO_LARGE, final, naming maxSize", f)
		}
		msgs, err := stack.peers.mailpit.messages()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.MessageID == id+"@ferry" {
				t.Errorf("a message of the refused file was sent: %+v", m)
			}
		}
	})
}

// TestEmailOutboundLink: a file over an endpoint's maxSize whose
// overLimit is link is sent as a presigned URL that downloads it.
func TestEmailOutboundLink(t *testing.T) {
	id, sum := stack.upload(t, "outbound/maillink/"+uniq("large")+".bin", 2<<20, map[string]string{"sender": "org-a", "recipient": "partner-a"})
	stack.waitFor(t, id, time.Minute, "delivered", delivered)
	msg := waitMailpit(t, id)
	if parts, err := stack.peers.mailpit.attachments(msg.ID); err != nil || len(parts) != 0 {
		t.Fatalf("attachments %v (%v), want none", parts, err)
	}
	text, err := stack.peers.mailpit.text(msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`https?://\S+`).FindString(text)
	if link == "" {
		t.Fatalf("no link in the message's text:\n%s", text)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the link: %s, %v", resp.Status, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		t.Errorf("the link downloads sha256 %s, uploaded %s", got, sum)
	}
}

// waitMailpit waits for Mailpit to list the message of transfer id.
func waitMailpit(t *testing.T, id string) mailpitMessage {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		msgs, err := stack.peers.mailpit.messages()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.MessageID == id+"@ferry" {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit never received transfer %s's message; it has %+v", id, msgs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
