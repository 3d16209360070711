//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/ferryhq/ferry/internal/testkit/hydra"
	"github.com/ferryhq/ferry/internal/testkit/sshd"
)

// peers are the real servers ferry local talks to besides S3 and MESH:
// an OpenSSH sshd (sftp destinations) and an HTTPS server (https
// destinations), whose settings the routing file ferry local reads names,
// and Ory Hydra, the OIDC issuer whose tokens its HTTP API accepts; all
// started before ferry local.
type peers struct {
	sshd    *sshd.Server
	sftpDir string // where the sftp endpoint delivers
	https   *httpsPeer
	blobs   *container.Client // the azblob endpoint's container on Azurite
	hydra   *hydra.Server
	mailpit *mailpit // the email endpoint's relay
}

// Azurite's well-known development account (its README publishes the key).
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	blobContainer  = "ferry-integration"
)

// startPeers starts the peers, writes the secrets they need where
// testdata/seed.json reads them (FERRY_TEST_* variables) and returns the
// routing file: testdata/routes.json with their endpoints added.
func startPeers(stateDir string) (*peers, string, error) {
	p := &peers{sftpDir: filepath.Join(stateDir, "sftp-out"), https: newHTTPSPeer()}
	dir := filepath.Join(stateDir, "sshd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	var err error
	if p.sshd, err = sshd.New(dir); err != nil {
		return nil, "", err
	}
	bin := os.Getenv("FERRY_HYDRA")
	if bin == "" {
		return nil, "", fmt.Errorf("FERRY_HYDRA is not set: run `make test-integration`, which builds Ory Hydra")
	}
	if p.hydra, err = hydra.Start(bin, stateDir); err != nil {
		p.stop()
		return nil, "", err
	}
	if p.mailpit, err = startMailpit(filepath.Join(stateDir, "mailpit")); err != nil {
		p.stop()
		return nil, "", err
	}
	files := map[string][]byte{
		"FERRY_TEST_MAILPIT_CA": p.mailpit.caPEM,
		"FERRY_TEST_SFTP_KEY":   p.sshd.UserKey,
		"FERRY_TEST_HTTPS_CA":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.https.srv.Certificate().Raw}),
	}
	for env, b := range files {
		name := filepath.Join(stateDir, env)
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return nil, "", err
		}
		os.Setenv(env, name) // read by ferry local's seed
	}

	data, err := os.ReadFile("testdata/routes.json")
	if err != nil {
		return nil, "", err
	}
	var routes map[string]any
	if err := json.Unmarshal(data, &routes); err != nil {
		return nil, "", err
	}
	routes["sftp"] = map[string]any{"partner": map[string]any{
		"host": "127.0.0.1", "port": p.sshd.Port, "user": p.sshd.User, "directory": p.sftpDir, "mkdir": true,
		"privateKey": "secret:ferry/local/transports/sftp/key", "knownHosts": []string{p.sshd.KnownHosts()},
	}}
	routes["https"] = map[string]any{"peer": map[string]any{
		"url":      p.https.srv.URL + "/upload",
		"auth":     map[string]any{"type": "apiKey", "header": "X-API-Key", "key": "secret:ferry/local/transports/https/api-key"},
		"caBundle": "secret:ferry/local/transports/https/ca",
	}}
	blobURL := os.Getenv("FERRY_AZURITE_BLOB")
	if blobURL == "" {
		return nil, "", fmt.Errorf("FERRY_AZURITE_BLOB is not set: run `make test-integration`, which starts Azurite")
	}
	cred, err := blob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		return nil, "", err
	}
	if p.blobs, err = container.NewClientWithSharedKeyCredential(blobURL+"/"+blobContainer, cred, nil); err != nil {
		return nil, "", err
	}
	if _, err := p.blobs.Create(context.Background(), nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, "", fmt.Errorf("create container %s: %w", blobContainer, err)
	}
	routes["email"] = map[string]any{"mailpit": map[string]any{
		"host": "127.0.0.1", "port": p.mailpit.smtpPort, "username": "ferry",
		"password": "secret:ferry/local/transports/mailpit/password", "caBundle": "secret:ferry/local/transports/mailpit/ca",
		"from": "Ferry <ferry@ferry.test>", "to": []string{"partner@partner.example"},
		"subject": "{transferId} {filename} from {sender}", "maxSize": "8MiB",
	}, "mailpit-link": map[string]any{
		"host": "127.0.0.1", "port": p.mailpit.smtpPort, "username": "ferry",
		"password": "secret:ferry/local/transports/mailpit/password", "caBundle": "secret:ferry/local/transports/mailpit/ca",
		"from": "ferry@ferry.test", "to": []string{"partner@partner.example"},
		"subject": "{transferId} {filename}", "maxSize": "1MiB", "overLimit": "link", "linkExpiry": "1h",
	}}
	routes["azblob"] = map[string]any{"lake": map[string]any{
		"serviceURL": blobURL, "account": azuriteAccount, "container": blobContainer, "prefix": "in/",
		"sharedKey": "secret:ferry/local/transports/azblob/key",
	}}
	out, err := json.MarshalIndent(routes, "", "  ")
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(stateDir, "routes.json")
	return p, path, os.WriteFile(path, out, 0o600)
}

func (p *peers) stop() {
	p.sshd.Stop()
	p.https.srv.Close()
	if p.hydra != nil {
		p.hydra.Stop()
	}
	if p.mailpit != nil {
		p.mailpit.stop()
	}
}

// httpsAPIKey is what the HTTPS peer expects in X-API-Key (the seed's
// ferry/local/transports/https/api-key).
const httpsAPIKey = "integration-api-key"

// httpsPeer is a TLS server that takes uploads. Each is named by its
// Content-Disposition filename; a test may script the statuses the first
// requests of a name get (Script), after which it answers 200 and keeps
// the body's sha256.
type httpsPeer struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   map[string][]int
	requests map[string]int
	received map[string]string // name → sha256 of the body taken
}

func newHTTPSPeer() *httpsPeer {
	p := &httpsPeer{script: map[string][]int{}, requests: map[string]int{}, received: map[string]string{}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(p.serve))
	return p
}

func (p *httpsPeer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-API-Key") != httpsAPIKey {
		http.Error(w, "wrong API key", http.StatusUnauthorized)
		return
	}
	_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Disposition"))
	name := params["filename"]
	p.mu.Lock()
	p.requests[name]++
	var status int
	if s := p.script[name]; len(s) > 0 {
		status, p.script[name] = s[0], s[1:]
	}
	p.mu.Unlock()
	if status != 0 && status != http.StatusOK {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, fmt.Sprintf("scripted %d for %s", status, name), status)
		return
	}
	h := sha256.New()
	if _, err := io.Copy(h, r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.received[name] = hex.EncodeToString(h.Sum(nil))
	p.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// Script makes the first requests for name get statuses.
func (p *httpsPeer) Script(name string, statuses ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.script[name] = statuses
}

// Received returns the sha256 of what the peer took for name, and how many
// requests it had for it.
func (p *httpsPeer) Received(name string) (sum string, requests int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.received[name], p.requests[name]
}
