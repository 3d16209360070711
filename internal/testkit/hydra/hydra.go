// Package hydra runs a real Ory Hydra, an OAuth 2 and OpenID Connect
// issuer, on loopback ports for tests: in-memory storage (DSN=memory), JWT
// access tokens, plain http (loopback only). scripts/install-test-peers.sh
// builds it (tools/hydra pins its version) and scripts/test-integration.sh
// names the binary in FERRY_HYDRA.
package hydra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/internal/testkit/sshd"
)

// Server is one running Hydra.
type Server struct {
	// Issuer is its public URL, the iss of its tokens.
	Issuer string
	// Admin is its admin API's URL.
	Admin string

	cmd *exec.Cmd
	log string
}

// Start runs the Hydra binary bin, logging into dir, and waits until its
// discovery document answers.
func Start(bin, dir string) (*Server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("hydra %s is missing: run scripts/install-test-peers.sh", bin)
	}
	public, err := sshd.FreePort()
	if err != nil {
		return nil, err
	}
	admin, err := sshd.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Issuer: "http://127.0.0.1:" + strconv.Itoa(public),
		Admin:  "http://127.0.0.1:" + strconv.Itoa(admin),
		log:    filepath.Join(dir, "hydra.log"),
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	s.cmd.Env = append(os.Environ(),
		"DSN=memory",
		// Not a secret: it encrypts nothing but this in-memory store.
		"SECRETS_SYSTEM=ferry-integration-tests-system-secret",
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"URLS_SELF_ISSUER="+s.Issuer,
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+strconv.Itoa(public),
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+strconv.Itoa(admin),
		"LOG_LEVEL=warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			out, _ := os.ReadFile(s.log)
			return nil, fmt.Errorf("hydra not ready after 30s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends Hydra and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// Client is an OAuth 2 client of the client_credentials grant.
type Client struct {
	ID, Secret string
	// Audience is what the client may ask tokens for.
	Audience []string
	// TokenTTL is its access tokens' lifespan; 0 for Hydra's default (1 h).
	TokenTTL time.Duration
}

// CreateClient registers c through the admin API.
func (s *Server) CreateClient(ctx context.Context, c Client) error {
	body := map[string]any{
		"client_id": c.ID, "client_secret": c.Secret, "audience": c.Audience,
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_post",
	}
	if err := s.admin(ctx, http.MethodPost, "/admin/clients", body); err != nil {
		return err
	}
	if c.TokenTTL == 0 {
		return nil
	}
	return s.admin(ctx, http.MethodPut, "/admin/clients/"+url.PathEscape(c.ID)+"/lifespans",
		map[string]string{"client_credentials_grant_access_token_lifespan": c.TokenTTL.String()})
}

func (s *Server) admin(ctx context.Context, method, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Admin+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		out, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("hydra %s %s: %s: %s", method, path, resp.Status, out)
	}
	return nil
}

// Token gets an access token (a JWT) for c with the client_credentials
// grant, for audience.
func (s *Server) Token(ctx context.Context, c Client, audience string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}, "audience": {audience}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("hydra token: %s: %w", resp.Status, err)
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("hydra token: %s: %s %s", resp.Status, out.Error, out.Description)
	}
	return out.AccessToken, nil
}
