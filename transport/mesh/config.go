package mesh

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// DefaultTimeout bounds connecting, the TLS handshake, and waiting for
// response headers once a request is written, when ClientConfig.Timeout is zero.
const DefaultTimeout = time.Minute

// DefaultClientVersion is sent as mex-ClientVersion when
// ClientConfig.ClientVersion is empty.
const DefaultClientVersion = "ferry==dev"

// ClientConfig says how to reach one MESH mailbox: what New needs to build
// its Client. Config, the routing file's mesh section, names the mailboxes
// and their credentials; the wiring resolves those into one ClientConfig
// per mailbox. Secrets (Password, SharedKey, ClientKeyPEM) never appear in
// String, %v, %#v, JSON or slog output, nor in any error this package
// returns.
type ClientConfig struct {
	// URL is the MESH base URL, e.g. https://msg.intspineservices.nhs.uk;
	// request paths go under /messageexchange. It must not carry
	// credentials, a query or a fragment.
	URL string
	// Mailbox is the mailbox id; it is sent upper case.
	Mailbox string
	// Password is the mailbox password.
	Password string
	// SharedKey is the environment's shared HMAC key.
	SharedKey string
	// CACertPEM, when set, replaces the system roots for verifying the
	// server (a private or NHS CA bundle).
	CACertPEM []byte
	// ClientCertPEM and ClientKeyPEM, set together, are the mutual-TLS
	// client certificate issued to the mailbox owner.
	ClientCertPEM []byte
	ClientKeyPEM  []byte
	// InsecureSkipVerify turns off server certificate verification. Only
	// for an explicitly configured local peer; the default verifies.
	InsecureSkipVerify bool
	// Timeout bounds connecting, the TLS handshake and the wait for
	// response headers after a request is fully written. It does not bound
	// streaming a body (use the context for that). Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Now is the clock for authentication timestamps; nil means time.Now.
	Now func() time.Time
	// ClientVersion is sent as mex-ClientVersion on the handshake; empty
	// means DefaultClientVersion.
	ClientVersion string
	// Handshakes, when set, is the record of handshakes shared with other
	// processes, so that EnsureHandshake handshakes once a day per mailbox
	// across all of them; nil means this client's own memory only.
	Handshakes HandshakeRecord
	// Log receives the client's warnings (never secrets); nil means
	// slog.Default().
	Log *slog.Logger
}

// WithDefaults returns c with every unset optional field given its default.
func (c ClientConfig) WithDefaults() ClientConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ClientVersion == "" {
		c.ClientVersion = DefaultClientVersion
	}
	return c
}

// Validate reports every problem with c at once (errors.Join of
// *domain.Error, each KindInvalid), or nil.
func (c ClientConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, domain.Errorf(domain.KindInvalid, "mesh config: "+format, args...))
	}
	if c.URL == "" {
		bad("URL is required")
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("URL is not a valid URL")
	} else {
		if u.Scheme != "https" && u.Scheme != "http" {
			bad("URL scheme must be https (or http for a local peer), not %q", u.Scheme)
		}
		if u.Host == "" {
			bad("URL has no host")
		}
		if u.User != nil {
			bad("URL must not carry credentials")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			bad("URL must not have a query or fragment")
		}
	}
	if c.Mailbox == "" {
		bad("Mailbox is required")
	} else if strings.ContainsAny(c.Mailbox, ": /\t\r\n") {
		bad("Mailbox %q must not contain ':', '/' or whitespace", c.Mailbox)
	}
	if c.Password == "" {
		bad("Password is required")
	}
	if c.SharedKey == "" {
		bad("SharedKey is required")
	}
	if len(c.CACertPEM) > 0 && !x509.NewCertPool().AppendCertsFromPEM(c.CACertPEM) {
		bad("CACertPEM holds no PEM certificate")
	}
	switch {
	case len(c.ClientCertPEM) > 0 && len(c.ClientKeyPEM) == 0:
		bad("ClientCertPEM is set without ClientKeyPEM")
	case len(c.ClientCertPEM) == 0 && len(c.ClientKeyPEM) > 0:
		bad("ClientKeyPEM is set without ClientCertPEM")
	case len(c.ClientCertPEM) > 0:
		if _, err := tls.X509KeyPair(c.ClientCertPEM, c.ClientKeyPEM); err != nil {
			bad("client certificate and key do not form a valid pair")
		}
	}
	if c.Timeout < 0 {
		bad("Timeout must not be negative")
	}
	return errors.Join(errs...)
}

// String describes c with every secret redacted.
func (c ClientConfig) String() string {
	set := func(b []byte) string {
		if len(b) == 0 {
			return "unset"
		}
		return "set"
	}
	secret := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "[redacted]"
	}
	key := "unset"
	if len(c.ClientKeyPEM) > 0 {
		key = "[redacted]"
	}
	return fmt.Sprintf("mesh.ClientConfig{URL: %q, Mailbox: %q, Password: %s, SharedKey: %s, CACertPEM: %s, ClientCertPEM: %s, ClientKeyPEM: %s, InsecureSkipVerify: %t, Timeout: %s, ClientVersion: %q}",
		c.URL, c.Mailbox, secret(c.Password), secret(c.SharedKey), set(c.CACertPEM), set(c.ClientCertPEM), key,
		c.InsecureSkipVerify, c.Timeout, c.ClientVersion)
}

// GoString is String, so %#v redacts secrets too.
func (c ClientConfig) GoString() string { return c.String() }

// Format prints String for every verb, so no formatting verb reveals a
// secret.
func (c ClientConfig) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, c.String()) }

// LogValue makes slog record the redacted form.
func (c ClientConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON encodes the redacted form.
func (c ClientConfig) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// New validates cfg and returns a client for its mailbox. The HTTP client
// verifies the server against CACertPEM (or the system roots) unless
// InsecureSkipVerify, presents the client certificate when configured,
// requires TLS 1.2 or later, and never decompresses responses behind the
// caller's back. Returns KindInvalid when cfg is invalid.
func New(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, &domain.Error{Kind: domain.KindInvalid, Message: "mesh: invalid config", Err: err}
	}
	cfg = cfg.WithDefaults()
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} // opt-in, for a local peer only
	if len(cfg.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cfg.CACertPEM)
		tlsCfg.RootCAs = pool
	}
	if len(cfg.ClientCertPEM) > 0 {
		cert, err := tls.X509KeyPair(cfg.ClientCertPEM, cfg.ClientKeyPEM)
		if err != nil { // Validate checked; kept for safety, without echoing key material
			return nil, domain.Errorf(domain.KindInvalid, "mesh: client certificate and key do not form a valid pair")
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.DisableCompression = true // Download handles Content-Encoding itself
	tr.DialContext = (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = cfg.Timeout
	tr.ResponseHeaderTimeout = cfg.Timeout
	tr.MaxIdleConnsPerHost = 16
	base, _ := url.Parse(cfg.URL)
	base.Path = strings.TrimRight(base.Path, "/") + "/messageexchange"
	return &Client{
		cfg:     cfg,
		mailbox: strings.ToUpper(cfg.Mailbox),
		base:    base,
		http:    &http.Client{Transport: tr, CheckRedirect: noRedirects},
	}, nil
}

// noRedirects stops the client following redirects: MESH does not send
// them, and following one would resend the single-use token elsewhere.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
