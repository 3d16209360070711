//go:build integration

package sftp_test

import (
	"context"
	"os"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/sshd"
)

// server is a real OpenSSH server for one test (internal/testkit/sshd).
type server struct {
	*sshd.Server
	t *testing.T
}

// startSSHD starts a server, stopped when the test ends.
func startSSHD(t *testing.T) *server {
	t.Helper()
	s, err := sshd.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &server{s, t}
}

// start starts the server again: same port, same host key.
func (s *server) start() {
	s.t.Helper()
	if err := s.Start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) stop() { s.Stop() }

// encrypted returns the authorised key encrypted with passphrase.
func (s *server) encrypted(t *testing.T, passphrase string) []byte {
	t.Helper()
	b, err := s.Encrypted(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newKey returns a new ed25519 key: public half, private half as PEM.
func newKey(t *testing.T) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := sshd.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func writeFile(t *testing.T, name string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, b, mode); err != nil {
		t.Fatal(err)
	}
}

// secrets resolves references from a map, as app.Secrets does from AWS.
type secrets map[string][]byte

func (s secrets) Resolve(_ context.Context, ref string) ([]byte, error) {
	v, ok := s[ref]
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "secret %s does not exist", ref)
	}
	return v, nil
}
