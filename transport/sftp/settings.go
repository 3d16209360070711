package sftp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Endpoint is one SFTP server ferry delivers to, as a routing file names
// it: a destination {"type": "sftp", "endpoint": NAME} delivers into
// Directory on Host as User. Every credential is a reference (secret:NAME
// or ssm:NAME, domain.IsSecretRef) that the transport resolves through its
// Secrets when it connects; a routing file never holds a secret.
type Endpoint struct {
	Host string `json:"host"`
	// Port defaults to DefaultPort.
	Port int    `json:"port,omitempty"`
	User string `json:"user"`
	// Directory is the absolute directory files are delivered into.
	Directory string `json:"directory"`
	// Password and PrivateKey (PEM or OpenSSH format) are references; at
	// least one must be given. When both are, the key is offered first.
	Password   string `json:"password,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"`
	// Passphrase is a reference to the private key's passphrase, if the
	// key is encrypted.
	Passphrase string `json:"passphrase,omitempty"`
	// KnownHosts pins the server's host keys: lines in OpenSSH's
	// known_hosts format ("host ssh-ed25519 AAAA…"). Every key listed is
	// accepted for this endpoint, whatever the line's host patterns say;
	// any other key the server presents is refused. A @revoked line refuses
	// its key; @cert-authority lines are not supported.
	KnownHosts []string `json:"knownHosts"`
	// Mkdir creates Directory, with its parents, when it is missing;
	// otherwise a missing directory fails the transfer.
	Mkdir bool `json:"mkdir,omitempty"`
	// Concurrency is how many write requests one chunk keeps outstanding
	// (pkg/sftp's MaxConcurrentRequestsPerFile); defaults to
	// DefaultConcurrency.
	Concurrency int `json:"concurrency,omitempty"`
	// Timeout bounds dialling and the SSH handshake; defaults to
	// DefaultTimeout.
	Timeout domain.Duration `json:"timeout,omitempty"`
}

// Defaults of an endpoint's optional fields.
const (
	DefaultPort        = 22
	DefaultConcurrency = 64
	DefaultTimeout     = 30 * time.Second
)

// ParseEndpoints decodes the routing file's sftp section (name →
// Endpoint, domain.Routes.SFTP) with transport.ParseEndpoints: unknown
// fields refused, defaults given, every problem of every endpoint reported
// at once, beginning "sftp: ", never echoing a value that may be a secret.
func ParseEndpoints(raw map[string]json.RawMessage) (map[string]Endpoint, error) {
	return transport.ParseEndpoints[Endpoint]("sftp", raw)
}

// WithDefaults returns e with Port, Concurrency and Timeout given their
// defaults when unset, and Directory cleaned.
func (e Endpoint) WithDefaults() Endpoint {
	if e.Port == 0 {
		e.Port = DefaultPort
	}
	if e.Concurrency == 0 {
		e.Concurrency = DefaultConcurrency
	}
	if e.Timeout == 0 {
		e.Timeout = domain.Duration(DefaultTimeout)
	}
	if e.Directory != "" {
		e.Directory = path.Clean(e.Directory)
	}
	return e
}

// Validate reports every problem with e at once (errors.Join), or nil: a
// missing host or user, a port out of range, a directory that is missing
// or not absolute, neither password nor privateKey, a credential that is
// not a reference, a passphrase without a key, no knownHosts or a line
// that does not parse, a negative concurrency or timeout. Each error names
// the field; none echoes a value that may be a secret.
func (e Endpoint) Validate() error {
	var errs []error
	if strings.TrimSpace(e.Host) == "" {
		errs = append(errs, errors.New("host is missing"))
	}
	if e.Port < 0 || e.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is out of range", e.Port))
	}
	if e.User == "" {
		errs = append(errs, errors.New("user is missing"))
	}
	switch {
	case e.Directory == "":
		errs = append(errs, errors.New("directory is missing"))
	case !path.IsAbs(e.Directory):
		errs = append(errs, fmt.Errorf("directory %q is not absolute", e.Directory))
	}
	if e.Password == "" && e.PrivateKey == "" {
		errs = append(errs, errors.New("needs a password or a privateKey"))
	}
	for _, f := range []struct{ name, v string }{
		{"password", e.Password}, {"privateKey", e.PrivateKey}, {"passphrase", e.Passphrase},
	} {
		if f.v != "" && !domain.IsSecretRef(f.v) {
			errs = append(errs, fmt.Errorf("%s must be a secret:NAME or ssm:NAME reference, not a value", f.name))
		}
	}
	if e.Passphrase != "" && e.PrivateKey == "" {
		errs = append(errs, errors.New("passphrase is given without a privateKey"))
	}
	if len(e.KnownHosts) == 0 {
		errs = append(errs, errors.New("knownHosts is missing: pin at least one host key"))
	} else if _, err := parseKnownHosts(e.KnownHosts); err != nil {
		errs = append(errs, err)
	}
	if e.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d is negative", e.Concurrency))
	}
	if e.Timeout < 0 {
		errs = append(errs, errors.New("timeout is negative"))
	}
	return errors.Join(errs...)
}

// pins are an endpoint's pinned host keys, parsed from its knownHosts.
type pins struct {
	accepted []ssh.PublicKey
	revoked  []ssh.PublicKey
}

// parseKnownHosts parses known_hosts lines (blank lines and comments are
// skipped), reporting every line that does not parse, and at least one
// accepted key.
func parseKnownHosts(lines []string) (pins, error) {
	var p pins
	var errs []error
	for i, line := range lines {
		s := strings.TrimSpace(line)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		marker, _, key, _, _, err := ssh.ParseKnownHosts([]byte(s))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("knownHosts line %d does not parse: %v", i+1, err))
		case marker == "revoked":
			p.revoked = append(p.revoked, key)
		case marker != "":
			errs = append(errs, fmt.Errorf("knownHosts line %d: @%s lines are not supported", i+1, marker))
		default:
			p.accepted = append(p.accepted, key)
		}
	}
	if len(errs) == 0 && len(p.accepted) == 0 {
		errs = append(errs, errors.New("knownHosts pins no host key"))
	}
	return p, errors.Join(errs...)
}

// address is e's host:port.
func (e Endpoint) address() string {
	return net.JoinHostPort(strings.Trim(e.Host, "[]"), strconv.Itoa(e.Port))
}
