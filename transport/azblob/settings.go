package azblob

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Endpoint is one named entry of the routing file's "azblob" section: a
// container of an Azure Storage account, where a route's destination
// {"type": "azblob", "endpoint": NAME} delivers.
//
// Exactly one of SharedKey (the account key) and SAS (a SAS token with
// read and write permission on the container's blobs) is given, as a
// secret:NAME or ssm:NAME reference (domain.IsSecretRef), never a value.
type Endpoint struct {
	// ServiceURL is the account's blob service,
	// "https://ACCOUNT.blob.core.windows.net/". Plain http is accepted only
	// for a loopback host, which is where the Azurite emulator listens
	// ("http://127.0.0.1:10000/devstoreaccount1").
	ServiceURL string `json:"serviceURL"`
	// Account is the storage account's name; shared-key signing needs it,
	// and it names deliveries ("azblob://ACCOUNT/CONTAINER/BLOB").
	Account string `json:"account"`
	// Container is the container blobs are delivered into. It must exist:
	// the transport never creates one.
	Container string `json:"container"`
	// Prefix goes before every blob name ("inbound/"); "" for none.
	Prefix string `json:"prefix,omitempty"`
	// SharedKey is a reference to the account key (base64).
	SharedKey string `json:"sharedKey,omitempty"`
	// SAS is a reference to a SAS token ("sv=…&sig=…", a leading "?"
	// allowed).
	SAS string `json:"sas,omitempty"`
	// Timeout bounds each step of a transfer at this endpoint (reading a
	// chunk from the source and staging it; committing the blob), the
	// SDK's own retries included. DefaultTimeout when unset.
	Timeout domain.Duration `json:"timeout,omitempty"`
}

// DefaultTimeout is an endpoint's Timeout when the routing file does not
// give one: long enough to stage one large chunk over a slow link.
const DefaultTimeout = 5 * time.Minute

// WithDefaults returns e with Timeout set to DefaultTimeout when unset.
func (e Endpoint) WithDefaults() Endpoint {
	if e.Timeout == 0 {
		e.Timeout = domain.Duration(DefaultTimeout)
	}
	return e
}

var (
	accountRE   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerRE = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
)

// Validate reports every problem with e at once (errors.Join), each naming
// the field, or nil. No error echoes a value that may be a secret.
func (e Endpoint) Validate() error {
	var errs []error
	if err := checkServiceURL(e.ServiceURL); err != nil {
		errs = append(errs, fmt.Errorf("serviceURL: %w", err))
	}
	switch {
	case e.Account == "":
		errs = append(errs, errors.New("account is missing"))
	case !accountRE.MatchString(e.Account):
		errs = append(errs, fmt.Errorf("account %q is not a storage account name (3 to 24 lower-case letters and digits)", e.Account))
	}
	switch {
	case e.Container == "":
		errs = append(errs, errors.New("container is missing"))
	case len(e.Container) < 3 || len(e.Container) > 63 || !containerRE.MatchString(e.Container):
		errs = append(errs, fmt.Errorf("container %q is not a container name (3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit)", e.Container))
	}
	for _, err := range checkPrefix(e.Prefix) {
		errs = append(errs, fmt.Errorf("prefix: %w", err))
	}
	switch {
	case e.SharedKey == "" && e.SAS == "":
		errs = append(errs, errors.New("one of sharedKey and sas is needed"))
	case e.SharedKey != "" && e.SAS != "":
		errs = append(errs, errors.New("sharedKey and sas are both given; give one"))
	}
	for _, ref := range []struct{ name, v string }{{"sharedKey", e.SharedKey}, {"sas", e.SAS}} {
		if ref.v != "" && !domain.IsSecretRef(ref.v) {
			errs = append(errs, fmt.Errorf("%s must be a secret:NAME or ssm:NAME reference, not a value", ref.name))
		}
	}
	if e.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// checkServiceURL accepts an absolute https URL without query or fragment,
// or an http one whose host is loopback (the emulator).
func checkServiceURL(s string) error {
	if s == "" {
		return errors.New("is missing")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a URL")
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return errors.New("has no host")
	case u.User != nil:
		return errors.New("must not hold credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("must not have a query or fragment (a SAS token goes in sas)")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("http is allowed only for a loopback host (the Azurite emulator), not %s; use https", u.Hostname())
	}
	return fmt.Errorf("scheme %q is not https", u.Scheme)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPrefix accepts "" or '/'-separated segments that are not empty, "."
// or "..", without backslashes or control characters; it may end in '/'.
func checkPrefix(p string) []error {
	if p == "" {
		return nil
	}
	var errs []error
	if strings.ContainsFunc(p, unicode.IsControl) {
		errs = append(errs, errors.New("holds a control character"))
	}
	if strings.Contains(p, `\`) {
		errs = append(errs, errors.New(`holds a backslash; the separator is "/"`))
	}
	segs := strings.Split(strings.TrimSuffix(p, "/"), "/")
	if slices.Contains(segs, "") {
		errs = append(errs, errors.New(`has an empty segment (a leading "/" or "//")`))
	}
	if slices.Contains(segs, ".") || slices.Contains(segs, "..") {
		errs = append(errs, errors.New(`has a "." or ".." segment`))
	}
	if len(p) > 512 {
		errs = append(errs, errors.New("is longer than 512 bytes"))
	}
	return errs
}

// ParseEndpoints decodes the routing file's "azblob" section (refusing
// unknown fields), gives each endpoint its defaults and validates it. It
// reports every problem of every endpoint at once (errors.Join), each
// beginning "azblob: endpoint NAME: " and naming the field; no error echoes
// a value that may be a secret. A nil or empty section gives an empty map.
func ParseEndpoints(raw map[string]json.RawMessage) (map[string]Endpoint, error) {
	return transport.ParseEndpoints[Endpoint]("azblob", raw)
}
