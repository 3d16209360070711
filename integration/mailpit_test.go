//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ferryhq/ferry/internal/local/smtpgw"
)

// mailpit is a running Mailpit (FERRY_MAILPIT): an SMTP server requiring
// STARTTLS, with a certificate made for it, and AUTH PLAIN as ferry /
// mailpitPassword (the seed's ferry/local/transports/mailpit/password);
// what it receives is read back through its HTTP API.
type mailpit struct {
	cmd      *exec.Cmd
	smtpPort int
	api      string
	caPEM    []byte
}

const mailpitPassword = "mailpit-password"

// startMailpit starts Mailpit on free loopback ports, its files in dir.
func startMailpit(dir string) (*mailpit, error) {
	bin := os.Getenv("FERRY_MAILPIT")
	if bin == "" {
		return nil, fmt.Errorf("FERRY_MAILPIT is not set: run `make test-integration`, which builds Mailpit")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := smtpgw.Certificate()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "auth": []byte("ferry:" + mailpitPassword + "\n")}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	smtpPort, httpPort := freePort(), freePort()
	m := &mailpit{smtpPort: smtpPort, api: fmt.Sprintf("http://127.0.0.1:%d", httpPort), caPEM: certPEM}
	m.cmd = exec.Command(bin,
		"--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort), "--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-tls-cert", filepath.Join(dir, "cert.pem"), "--smtp-tls-key", filepath.Join(dir, "key.pem"),
		"--smtp-require-starttls", "--smtp-auth-file", filepath.Join(dir, "auth"), "--quiet")
	log, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		return nil, err
	}
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(m.api + "/api/v1/messages"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			m.stop()
			out, _ := os.ReadFile(filepath.Join(dir, "mailpit.log"))
			return nil, fmt.Errorf("mailpit not ready after 20s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *mailpit) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

// mailpitMessage is a received message as Mailpit's API lists it.
type mailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	To        []struct{ Address string }
}

// messages lists what Mailpit received, newest first.
func (m *mailpit) messages() ([]mailpitMessage, error) {
	var out struct{ Messages []mailpitMessage }
	return out.Messages, m.get("/api/v1/messages?limit=500", &out)
}

// attachments returns the attachments of message id: name → part id.
func (m *mailpit) attachments(id string) (map[string]string, error) {
	var out struct {
		Attachments []struct{ PartID, FileName string }
	}
	if err := m.get("/api/v1/message/"+id, &out); err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, a := range out.Attachments {
		names[a.FileName] = a.PartID
	}
	return names, nil
}

// text returns the text of message id.
func (m *mailpit) text(id string) (string, error) {
	var out struct{ Text string }
	return out.Text, m.get("/api/v1/message/"+id, &out)
}

// part streams part partID of message id.
func (m *mailpit) part(id, partID string) (io.ReadCloser, error) {
	resp, err := http.Get(m.api + "/api/v1/message/" + id + "/part/" + partID)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("mailpit part %s/%s: %s", id, partID, resp.Status)
	}
	return resp.Body, nil
}

func (m *mailpit) get(path string, v any) error {
	resp, err := http.Get(m.api + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// freePort returns a loopback port nothing listens on now.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
