// Package sshd runs a real OpenSSH server on a loopback port for tests: its
// own host key, one authorised user key (the current user's), no
// passwords, SFTP served by internal-sftp. scripts/install-test-peers.sh installs
// OpenSSH's server (Debian's openssh-server).
package sshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Path is OpenSSH's server.
const Path = "/usr/sbin/sshd"

// Server is one sshd, stopped and started again on the same port with the
// same keys.
type Server struct {
	Dir     string        // its keys, config and pid file
	Port    int           // its loopback port
	User    string        // the one user it lets in
	HostKey ssh.PublicKey // what it presents
	UserKey []byte        // the authorised private key, OpenSSH PEM

	config string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

// New writes a server's keys and config into dir (which must exist) for a
// free loopback port, and starts it.
func New(dir string) (*Server, error) {
	if _, err := os.Stat(Path); err != nil {
		return nil, fmt.Errorf("%s is missing: run scripts/install-test-peers.sh (or apt-get install openssh-server)", Path)
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	// sshd's privilege separation directory; sshd says so if it cannot be made.
	_ = os.MkdirAll("/run/sshd", 0o755)
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Port: port, User: u.Username}
	hostPub, hostPEM, err := NewKey()
	if err != nil {
		return nil, err
	}
	userPub, userPEM, err := NewKey()
	if err != nil {
		return nil, err
	}
	s.HostKey, s.UserKey = hostPub, userPEM
	hostFile := filepath.Join(dir, "host_ed25519")
	authFile := filepath.Join(dir, "authorized_keys")
	s.config = filepath.Join(dir, "sshd_config")
	config := strings.Join([]string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostFile,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authFile,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"AllowUsers " + s.User,
		"Subsystem sftp internal-sftp",
		"LogLevel ERROR",
		"",
	}, "\n")
	for name, b := range map[string][]byte{hostFile: hostPEM, authFile: ssh.MarshalAuthorizedKey(userPub), s.config: []byte(config)} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return nil, err
		}
	}
	return s, s.Start()
}

// Start runs sshd and waits until it accepts connections.
func (s *Server) Start() error {
	s.stderr = &bytes.Buffer{}
	s.cmd = exec.Command(Path, "-D", "-e", "-f", s.config)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			log := s.stderr.String()
			s.Stop()
			return fmt.Errorf("sshd does not listen on %s: %w; its log:\n%s", s.Addr(), err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills sshd and every session process it forked (they leave its
// process group), so that open connections break as if the server died.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	for _, pid := range append(descendants(s.cmd.Process.Pid), s.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// KnownHosts is the known_hosts line pinning the server's host key.
func (s *Server) KnownHosts() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey))))
}

// Encrypted returns the authorised key encrypted with passphrase.
func (s *Server) Encrypted(passphrase string) ([]byte, error) {
	key, err := ssh.ParseRawPrivateKey(s.UserKey)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key, "", []byte(passphrase))
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(block), nil
}

// NewKey returns a new ed25519 key: its public half and its private half
// in OpenSSH's PEM format.
func NewKey() (ssh.PublicKey, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return sp, pem.EncodeToMemory(block), nil
}

// FreePort returns a loopback port nothing listens on just now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}

// descendants lists the processes below pid, from /proc.
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
