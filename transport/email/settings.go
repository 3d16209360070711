// Package email is the outbound email transport: it delivers a transfer's
// file as the attachment of one message, sent through an SMTP relay with
// STARTTLS (or implicit TLS) and authentication, to the recipients, with
// the subject and text, of the route's endpoint.
package email

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// TLS modes of an endpoint.
const (
	TLSStartTLS = "starttls" // the relay's port, usually 587, upgraded by STARTTLS (required)
	TLSImplicit = "implicit" // TLS from the first byte, usually port 465
)

// DefaultMaxSize bounds the file an endpoint sends when it says nothing:
// 10 MiB, which base64 makes some 14 MB of message, under most relays'
// limits.
const DefaultMaxSize = 10 * domain.MiB

// Endpoint is one relay and the message it sends: an entry of the routing
// file's email section, which a route's destination names.
type Endpoint struct {
	Host string `json:"host"`
	// Port defaults to 587 (starttls) or 465 (implicit).
	Port int `json:"port,omitempty"`
	// TLS is starttls (the default) or implicit. TLS is always used and
	// the relay's certificate always verified.
	TLS string `json:"tls,omitempty"`
	// Username and Password (a secret reference, secret:NAME or ssm:NAME)
	// authenticate with AUTH PLAIN; none sends without authenticating.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// CABundle (a secret reference) replaces the system's roots.
	CABundle string `json:"caBundle,omitempty"`
	// From is the sender's address; To the recipients'.
	From string   `json:"from"`
	To   []string `json:"to"`
	// Subject and Body are templates of the filename fields
	// (domain.FilenameFields, values as they are); defaults DefaultSubject
	// and DefaultBody.
	Subject string `json:"subject,omitempty"`
	Body    string `json:"body,omitempty"`
	// MaxSize is the largest file attached; 0 means DefaultMaxSize. A
	// larger one fails at once, code TOO_LARGE, unless OverLimit is link.
	MaxSize domain.ByteSize `json:"maxSize,omitempty"`
	// OverLimit is what happens to a file over MaxSize: fail (the
	// default), or link: the message carries a presigned URL of the file
	// in place of the file, valid for LinkExpiry.
	OverLimit string `json:"overLimit,omitempty"`
	// LinkExpiry is how long a link works (default 24h, at most 7 days,
	// SigV4's limit, and never longer than the credentials that signed
	// it).
	LinkExpiry domain.Duration `json:"linkExpiry,omitempty"`
}

// What an endpoint does with a file over its MaxSize.
const (
	OverLimitFail = "fail"
	OverLimitLink = "link"
)

// DefaultLinkExpiry is how long a link works when the endpoint says
// nothing; MaxLinkExpiry is SigV4's longest.
const (
	DefaultLinkExpiry = domain.Duration(24 * time.Hour)
	MaxLinkExpiry     = domain.Duration(7 * 24 * time.Hour)
)

// The default templates of a message.
const (
	DefaultSubject = "{filename}"
	DefaultBody    = "{filename}, from {sender}, sent by ferry (transfer {transferId})."
)

// WithDefaults fills the port, TLS mode, templates and size limit.
func (e Endpoint) WithDefaults() Endpoint {
	if e.TLS == "" {
		e.TLS = TLSStartTLS
	}
	if e.Port == 0 {
		e.Port = 587
		if e.TLS == TLSImplicit {
			e.Port = 465
		}
	}
	if e.Subject == "" {
		e.Subject = DefaultSubject
	}
	if e.Body == "" {
		e.Body = DefaultBody
	}
	if e.MaxSize == 0 {
		e.MaxSize = DefaultMaxSize
	}
	if e.OverLimit == "" {
		e.OverLimit = OverLimitFail
	}
	if e.LinkExpiry == 0 {
		e.LinkExpiry = DefaultLinkExpiry
	}
	return e
}

// Validate reports every problem at once, never echoing a secret.
func (e Endpoint) Validate() error {
	var errs []error
	if strings.TrimSpace(e.Host) == "" {
		errs = append(errs, errors.New("host is missing"))
	}
	if e.Port < 1 || e.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not 1-65535", e.Port))
	}
	if e.TLS != TLSStartTLS && e.TLS != TLSImplicit {
		errs = append(errs, fmt.Errorf("tls %q is not starttls or implicit", e.TLS))
	}
	if e.Password != "" && !domain.IsSecretRef(e.Password) {
		errs = append(errs, errors.New("password must be a secret reference (secret:NAME or ssm:NAME)"))
	}
	if (e.Password == "") != (e.Username == "") {
		errs = append(errs, errors.New("username and password go together"))
	}
	if e.CABundle != "" && !domain.IsSecretRef(e.CABundle) {
		errs = append(errs, errors.New("caBundle must be a secret reference (secret:NAME or ssm:NAME)"))
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		errs = append(errs, fmt.Errorf("from %q is not an address", e.From))
	}
	if len(e.To) == 0 {
		errs = append(errs, errors.New("to names no recipient"))
	}
	for _, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fmt.Errorf("to %q is not an address", to))
		}
	}
	for name, tmpl := range map[string]string{"subject": e.Subject, "body": e.Body} {
		if err := checkTemplate(tmpl); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if e.MaxSize < 0 {
		errs = append(errs, errors.New("maxSize must be positive"))
	}
	if e.OverLimit != OverLimitFail && e.OverLimit != OverLimitLink {
		errs = append(errs, fmt.Errorf("overLimit %q is not fail or link", e.OverLimit))
	}
	if e.LinkExpiry < domain.Duration(time.Minute) || e.LinkExpiry > MaxLinkExpiry {
		errs = append(errs, fmt.Errorf("linkExpiry %s is not between 1m and 168h", time.Duration(e.LinkExpiry)))
	}
	return errors.Join(errs...)
}

// checkTemplate refuses fields that are not filename fields and braces
// left open.
func checkTemplate(tmpl string) error {
	for rest := tmpl; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("template %q leaves a brace open", tmpl)
		}
		if field := rest[i+1 : i+j]; !slices.Contains(domain.FilenameFields, field) {
			return fmt.Errorf("template %q uses unknown field {%s} (known: %s)", tmpl, field, strings.Join(domain.FilenameFields, ", "))
		}
		rest = rest[i+j+1:]
	}
}

// ParseEndpoints decodes, defaults and validates the routing file's email
// section, reporting every problem of every endpoint at once.
func ParseEndpoints(raw map[string]json.RawMessage) (map[string]Endpoint, error) {
	return transport.ParseEndpoints[Endpoint]("email", raw)
}
