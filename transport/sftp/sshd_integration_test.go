//go:build integration

package sftp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/domain"
)

// sshdPath is OpenSSH's server; scripts/install.sh installs it.
const sshdPath = "/usr/sbin/sshd"

// sshd is a real OpenSSH server on a loopback port, run as a child process
// for one test: its own host key, one authorised user key (the current
// user), no passwords, sftp served by internal-sftp.
type sshd struct {
	t       *testing.T
	dir     string
	port    int
	user    string
	hostKey ssh.PublicKey
	userKey []byte // the authorised private key, OpenSSH PEM
	config  string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
}

// startSSHD starts a server, stopped when the test ends.
func startSSHD(t *testing.T) *sshd {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Fatalf("%s is missing: run scripts/install.sh (or apt-get install openssh-server)", sshdPath)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Logf("mkdir /run/sshd: %v", err)
	}
	s := &sshd{t: t, dir: t.TempDir(), port: freePort(t), user: u.Username}
	hostPub, hostPEM := newKey(t)
	userPub, userPEM := newKey(t)
	s.hostKey, s.userKey = hostPub, userPEM
	hostFile := filepath.Join(s.dir, "host_ed25519")
	authFile := filepath.Join(s.dir, "authorized_keys")
	writeFile(t, hostFile, hostPEM, 0o600)
	writeFile(t, authFile, ssh.MarshalAuthorizedKey(userPub), 0o600)
	s.config = filepath.Join(s.dir, "sshd_config")
	writeFile(t, s.config, []byte(strings.Join([]string{
		"Port " + strconv.Itoa(s.port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostFile,
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + authFile,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"AllowUsers " + s.user,
		"Subsystem sftp internal-sftp",
		"LogLevel ERROR",
		"",
	}, "\n")), 0o600)
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start runs sshd and waits until it accepts connections.
func (s *sshd) start() {
	s.t.Helper()
	s.stderr = &bytes.Buffer{}
	s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", s.config)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start sshd: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("sshd does not listen on %s: %v; its log:\n%s", s.addr(), err, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills sshd and every session process it forked (they leave its
// process group), so that open connections break as if the server died.
func (s *sshd) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	for _, pid := range append(descendants(s.cmd.Process.Pid), s.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *sshd) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// knownHosts is the known_hosts line pinning s's host key.
func (s *sshd) knownHosts() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey))))
}

// descendants lists the processes below pid, children first found, from
// /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// newKey returns a new ed25519 key: its public half and its private half
// in OpenSSH's PEM format.
func newKey(t *testing.T) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp, pem.EncodeToMemory(block)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
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

// encrypted returns s's authorised key encrypted with passphrase.
func (s *sshd) encrypted(t *testing.T, passphrase string) []byte {
	t.Helper()
	key, err := ssh.ParseRawPrivateKey(s.userKey)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}
