package https

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// The modes of an endpoint.
const (
	// ModeWhole sends the whole file in one streamed request, when the last
	// chunk is sent.
	ModeWhole = "whole"
	// ModeRanged sends each chunk in a request of its own, with a
	// Content-Range header.
	ModeRanged = "ranged"
)

// The authentication types of an endpoint.
const (
	AuthNone   = "none"
	AuthAPIKey = "apiKey"
	AuthBasic  = "basic"
	AuthOAuth2 = "oauth2"
	AuthJWT    = "jwt"
)

// Defaults of the optional settings.
const (
	DefaultMethod       = http.MethodPost
	DefaultMode         = ModeWhole
	DefaultAPIKeyHeader = "X-API-Key"
	DefaultTimeout      = 10 * time.Minute
	DefaultMaxErrorBody = 1 << 10
	DefaultSOAPVersion  = "1.1"
	// MaxMaxErrorBody bounds maxErrorBody: a failure's message is stored
	// in the transfer's events.
	MaxMaxErrorBody = 16 << 10
)

// Endpoint is one named entry of the routing file's "https" section: where
// and how the https transport delivers. Every credential is a secret
// reference (domain.IsSecretRef), resolved when the endpoint is first used.
type Endpoint struct {
	// URL receives the file. It must be https and carry no user info.
	URL string `json:"url"`
	// Method is POST (DefaultMethod) or PUT.
	Method string `json:"method,omitempty"`
	// Mode is ModeWhole (the default) or ModeRanged.
	Mode string `json:"mode,omitempty"`
	// Auth says how requests prove who sends them.
	Auth Auth `json:"auth,omitzero"`
	// Headers are extra request headers; a value may be a literal or a
	// secret reference. Headers the transport sets itself may not be
	// given (Content-Length, Content-Range, Content-Disposition, Host,
	// Transfer-Encoding, Connection, Expect, Idempotency-Key,
	// X-Ferry-Transfer-Id, and Authorization unless auth is none).
	Headers map[string]string `json:"headers,omitempty"`
	// CABundle is a secret reference to PEM CA certificates. When set they
	// replace the system roots for this endpoint (and its token URL).
	CABundle string `json:"caBundle,omitempty"`
	// ClientCert and ClientKey are secret references to a PEM client
	// certificate and its key, presented to the endpoint (and its token
	// URL). Both or neither.
	ClientCert string `json:"clientCert,omitempty"`
	ClientKey  string `json:"clientKey,omitempty"`
	// FollowRedirects lets requests follow 3xx responses; by default a
	// redirect is a final failure.
	FollowRedirects bool `json:"followRedirects,omitempty"`
	// Timeout bounds one request, body included (DefaultTimeout): in whole
	// mode it must allow for sending the whole file.
	Timeout domain.Duration `json:"timeout,omitempty"`
	// SOAP, when set, wraps the payload in a SOAP envelope (whole mode only).
	SOAP *SOAP `json:"soap,omitempty"`
	// MaxErrorBody is how many bytes of a refusing response's body a
	// failure's message keeps (DefaultMaxErrorBody, at most MaxMaxErrorBody).
	MaxErrorBody domain.ByteSize `json:"maxErrorBody,omitempty"`
	// Probe is the request `ferry doctor` and the health check make to
	// see that the endpoint takes ferry's credentials, without sending a
	// file. Without one they check the TLS connection and, for token
	// auth, fetch a token.
	Probe *Probe `json:"probe,omitempty"`
}

// Probe is a request that tests an endpoint without delivering anything.
// It carries the endpoint's headers and credentials and no body; any 2xx
// or 3xx answer passes.
type Probe struct {
	// Method is HEAD (DefaultProbeMethod), GET or OPTIONS.
	Method string `json:"method,omitempty"`
	// URL is the probe's https URL, by default the endpoint's.
	URL string `json:"url,omitempty"`
}

// DefaultProbeMethod is a probe's method when it names none.
const DefaultProbeMethod = http.MethodHead

// Auth is an endpoint's authentication. Type selects which fields apply;
// a field that does not apply to the type is refused.
type Auth struct {
	// Type is AuthNone (the default), AuthAPIKey, AuthBasic, AuthOAuth2 or
	// AuthJWT.
	Type string `json:"type,omitempty"`
	// Header and Key (a secret reference) are the API key's header
	// (DefaultAPIKeyHeader) and value.
	Header string `json:"header,omitempty"`
	Key    string `json:"key,omitempty"`
	// Username and Password (a secret reference): HTTP basic.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TokenURL is the OAuth 2 token endpoint (https): required for
	// oauth2, optional for jwt.
	TokenURL string `json:"tokenURL,omitempty"`
	// ClientID and ClientSecret (a secret reference): OAuth 2 client
	// credentials, sent with HTTP basic to TokenURL (RFC 6749 §2.3.1).
	ClientID     string `json:"clientId,omitempty"`
	ClientSecret string `json:"clientSecret,omitempty"`
	// Scope is requested with the token (oauth2, jwt with a token URL).
	Scope string `json:"scope,omitempty"`
	// Issuer, Subject (default Issuer) and Audience are the claims of the
	// JWT signed with PrivateKey (a secret reference to a PEM RSA or EC
	// key) and named KeyID in its header. Audience defaults to TokenURL.
	Issuer     string `json:"issuer,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Audience   string `json:"audience,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"`
	KeyID      string `json:"keyId,omitempty"`
}

// SOAP says how the payload is wrapped in a SOAP envelope: the body holds
// an element Operation in Namespace whose child "payload" is the file,
// base64.
type SOAP struct {
	// Version is "1.1" (the default) or "1.2".
	Version string `json:"version,omitempty"`
	// Action is the SOAPAction (1.1 header, 1.2 Content-Type parameter).
	Action    string `json:"action,omitempty"`
	Namespace string `json:"namespace"`
	Operation string `json:"operation"`
}

// ParseEndpoints decodes the routing file's https section (refusing unknown
// fields), gives every endpoint its defaults (WithDefaults) and checks it
// (Validate). It reports every problem of every endpoint at once, each
// naming the endpoint and the field, and never echoes a secret.
func ParseEndpoints(raw map[string]json.RawMessage) (map[string]Endpoint, error) {
	return transport.ParseEndpoints[Endpoint]("https", raw)
}

// WithDefaults returns ep with every unset optional field given its
// default: method, mode, auth type and API key header, JWT subject and
// audience, timeout, maxErrorBody, SOAP version.
func (ep Endpoint) WithDefaults() Endpoint {
	if ep.Method == "" {
		ep.Method = DefaultMethod
	}
	ep.Method = strings.ToUpper(ep.Method)
	if ep.Mode == "" {
		ep.Mode = DefaultMode
	}
	if ep.Auth.Type == "" {
		ep.Auth.Type = AuthNone
	}
	if ep.Auth.Type == AuthAPIKey && ep.Auth.Header == "" {
		ep.Auth.Header = DefaultAPIKeyHeader
	}
	if ep.Auth.Type == AuthJWT {
		if ep.Auth.Subject == "" {
			ep.Auth.Subject = ep.Auth.Issuer
		}
		if ep.Auth.Audience == "" {
			ep.Auth.Audience = ep.Auth.TokenURL
		}
	}
	if ep.Timeout == 0 {
		ep.Timeout = domain.Duration(DefaultTimeout)
	}
	if ep.MaxErrorBody == 0 {
		ep.MaxErrorBody = DefaultMaxErrorBody
	}
	if ep.Probe != nil {
		p := *ep.Probe
		if p.Method == "" {
			p.Method = DefaultProbeMethod
		}
		p.Method = strings.ToUpper(p.Method)
		if p.URL == "" {
			p.URL = ep.URL
		}
		ep.Probe = &p
	}
	if ep.SOAP != nil && ep.SOAP.Version == "" {
		s := *ep.SOAP
		s.Version = DefaultSOAPVersion
		ep.SOAP = &s
	}
	return ep
}

var (
	// tokenRE is an HTTP header name (RFC 9110 token).
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	// ncNameRE is a plain XML name without a colon (ASCII subset).
	ncNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9._-]*$`)
)

// reserved are the headers the transport sets itself.
var reserved = []string{"Content-Length", "Content-Range", "Content-Disposition", "Host", "Transfer-Encoding", "Connection", "Expect", "Idempotency-Key", HeaderTransferID}

// Validate reports every problem with ep at once (errors.Join), each
// naming the field: a URL that is not https, an unknown method, mode, auth
// type or SOAP version, a credential given as a value instead of a secret
// reference, a missing required field, a field that does not apply to the
// auth type, a header the transport sets itself, SOAP in ranged mode,
// limits out of range. Call it on an endpoint with its defaults.
func (ep Endpoint) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := checkHTTPSURL(ep.URL); err != nil {
		bad("url: %v", err)
	}
	if ep.Method != http.MethodPost && ep.Method != http.MethodPut {
		bad("method: %q is not POST or PUT", ep.Method)
	}
	if ep.Mode != ModeWhole && ep.Mode != ModeRanged {
		bad("mode: %q is not %q or %q", ep.Mode, ModeWhole, ModeRanged)
	}
	errs = append(errs, ep.Auth.validate()...)
	for _, name := range sortedKeys(ep.Headers) {
		v := ep.Headers[name]
		switch {
		case !tokenRE.MatchString(name):
			bad("headers: %q is not a valid header name", name)
		case slices.ContainsFunc(reserved, func(r string) bool { return strings.EqualFold(r, name) }):
			bad("headers: %s is set by the transport", name)
		case ep.Auth.Type != AuthNone && strings.EqualFold(name, "Authorization"):
			bad("headers: Authorization is set by auth %s", ep.Auth.Type)
		case ep.Auth.Type == AuthAPIKey && strings.EqualFold(name, ep.Auth.Header):
			bad("headers: %s is set by auth apiKey", name)
		case ep.SOAP != nil && (strings.EqualFold(name, "Content-Type") || strings.EqualFold(name, "SOAPAction")):
			bad("headers: %s is set by soap", name)
		case !domain.IsSecretRef(v) && strings.ContainsAny(v, "\r\n\x00"):
			bad("headers: %s has a control character", name)
		}
	}
	for _, ref := range []struct{ name, v string }{
		{"caBundle", ep.CABundle}, {"clientCert", ep.ClientCert}, {"clientKey", ep.ClientKey},
	} {
		if ref.v != "" && !domain.IsSecretRef(ref.v) {
			bad("%s: must be a secret:NAME or ssm:NAME reference, not a value", ref.name)
		}
	}
	if (ep.ClientCert == "") != (ep.ClientKey == "") {
		bad("clientCert, clientKey: give both or neither")
	}
	if ep.Timeout <= 0 {
		bad("timeout: must be positive")
	}
	if ep.MaxErrorBody < 0 || ep.MaxErrorBody > MaxMaxErrorBody {
		bad("maxErrorBody: must be between 0 and %d bytes", MaxMaxErrorBody)
	}
	if p := ep.Probe; p != nil {
		if !slices.Contains([]string{http.MethodHead, http.MethodGet, http.MethodOptions}, p.Method) {
			bad("probe.method: %q is not HEAD, GET or OPTIONS", p.Method)
		}
		if err := checkHTTPSURL(p.URL); err != nil {
			bad("probe.url: %v", err)
		}
	}
	if s := ep.SOAP; s != nil {
		if s.Version != "1.1" && s.Version != "1.2" {
			bad("soap.version: %q is not \"1.1\" or \"1.2\"", s.Version)
		}
		if !ncNameRE.MatchString(s.Operation) {
			bad("soap.operation: %q is not an XML element name", s.Operation)
		}
		if u, err := url.Parse(s.Namespace); s.Namespace == "" || err != nil || !u.IsAbs() && !strings.HasPrefix(s.Namespace, "urn:") {
			bad("soap.namespace: want an absolute URI")
		}
		if strings.ContainsAny(s.Action, "\"\r\n\x00") {
			bad("soap.action: must not hold quotes or control characters")
		}
		if ep.Mode != ModeWhole {
			bad("soap: needs mode %q (an envelope cannot be sent in ranges)", ModeWhole)
		}
	}
	return errors.Join(errs...)
}

// validate reports the problems of a's fields for its type.
func (a Auth) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	// which auth types each field applies to
	fields := []struct {
		name, v string
		types   []string
		secret  bool
	}{
		{"header", a.Header, []string{AuthAPIKey}, false},
		{"key", a.Key, []string{AuthAPIKey}, true},
		{"username", a.Username, []string{AuthBasic}, false},
		{"password", a.Password, []string{AuthBasic}, true},
		{"tokenURL", a.TokenURL, []string{AuthOAuth2, AuthJWT}, false},
		{"clientId", a.ClientID, []string{AuthOAuth2}, false},
		{"clientSecret", a.ClientSecret, []string{AuthOAuth2}, true},
		{"scope", a.Scope, []string{AuthOAuth2, AuthJWT}, false},
		{"issuer", a.Issuer, []string{AuthJWT}, false},
		{"subject", a.Subject, []string{AuthJWT}, false},
		{"audience", a.Audience, []string{AuthJWT}, false},
		{"privateKey", a.PrivateKey, []string{AuthJWT}, true},
		{"keyId", a.KeyID, []string{AuthJWT}, false},
	}
	known := []string{AuthNone, AuthAPIKey, AuthBasic, AuthOAuth2, AuthJWT}
	if !slices.Contains(known, a.Type) {
		bad("auth.type: %q is not one of %s", a.Type, strings.Join(known, ", "))
		return errs
	}
	required := map[string][]string{
		AuthAPIKey: {"header", "key"},
		AuthBasic:  {"username", "password"},
		AuthOAuth2: {"tokenURL", "clientId", "clientSecret"},
		AuthJWT:    {"issuer", "audience", "privateKey"},
	}[a.Type]
	for _, f := range fields {
		switch {
		case f.v == "" && slices.Contains(required, f.name):
			bad("auth.%s: required for auth type %s", f.name, a.Type)
		case f.v == "":
		case !slices.Contains(f.types, a.Type):
			bad("auth.%s: does not apply to auth type %s", f.name, a.Type)
		case f.secret && !domain.IsSecretRef(f.v):
			bad("auth.%s: must be a secret:NAME or ssm:NAME reference, not a value", f.name)
		}
	}
	if a.Type == AuthAPIKey && a.Header != "" && !tokenRE.MatchString(a.Header) {
		bad("auth.header: %q is not a valid header name", a.Header)
	}
	if a.TokenURL != "" && slices.Contains([]string{AuthOAuth2, AuthJWT}, a.Type) {
		if err := checkHTTPSURL(a.TokenURL); err != nil {
			bad("auth.tokenURL: %v", err)
		}
	}
	return errs
}

// checkHTTPSURL reports why s is not an absolute https URL without user
// info. It never echoes s, which might hold a token in its query.
func checkHTTPSURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "https":
		return fmt.Errorf("scheme %q: want https", u.Scheme)
	case u.Host == "":
		return errors.New("no host")
	case u.User != nil:
		return errors.New("must not carry user info: put credentials in auth")
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
