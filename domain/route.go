package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Destination says where a route delivers. It comes only from route
// configuration, never from anything a sender supplies.
type Destination struct {
	// Type names the transport: "s3", "mesh", "sftp", "https", "azblob",
	// "email" or "null".
	Type string `json:"type"`
	// Bucket and Prefix locate the delivered object for the s3 transport.
	Bucket string `json:"bucket,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Endpoint names, for the sftp, https, azblob and email transports,
	// the settings in the routing file's section of that type (Routes.SFTP,
	// HTTPS, Azblob, Email), which the transport package decodes and
	// validates.
	Endpoint string `json:"endpoint,omitempty"`
	// Filename names the delivered file, for the s3, sftp, azblob and
	// email (the attachment) transports, by a template of FilenameFields ("{sender}/{date}/
	// {filename}"); empty means DefaultFilenameTemplate. An s3 destination
	// puts it after Prefix.
	Filename string `json:"filename,omitempty"`
}

// endpointTypes are the destination types whose settings are named
// endpoints in a section of the routing file.
var endpointTypes = []string{"sftp", "https", "azblob", "email"}

// namedTypes are the destination types whose delivered file a filename
// template names.
var namedTypes = []string{"s3", "sftp", "azblob", "email"}

// Validate reports what is wrong with d, every problem at once.
func (d Destination) Validate() error {
	var errs []error
	switch d.Type {
	case "s3":
		if d.Bucket == "" {
			errs = append(errs, errors.New("s3 destination needs a bucket"))
		}
	case "sftp", "https", "azblob", "email":
		if d.Endpoint == "" {
			errs = append(errs, fmt.Errorf("%s destination needs an endpoint (a name in the routing file's %s section)", d.Type, d.Type))
		}
	case "null", "mesh":
		// mesh: the MESH environment and mailboxes are configured in the
		// routing file's "mesh" section, which the mesh transport parses
		// and validates (mesh.ParseConfig); from, to and workflow come
		// with each upload.
	case "":
		return errors.New("destination type is missing")
	default:
		return fmt.Errorf("unknown destination type %q", d.Type)
	}
	if d.Filename != "" && !slices.Contains(namedTypes, d.Type) {
		errs = append(errs, fmt.Errorf("%s destinations cannot name the delivered file (filename is for %s)", d.Type, strings.Join(namedTypes, ", ")))
	} else if err := CheckFilenameTemplate(d.Filename); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Match selects the uploads a route applies to. Empty fields match anything;
// a route whose Match is all empty matches every upload.
//
// Bucket is compared exactly and Prefix as a case-sensitive key prefix (S3
// keys are case-sensitive); Sender and Recipient ignore case (mailbox ids);
// Workflow is exact. Has lists metadata keys the upload must carry with a
// non-empty value, compared without regard to case (S3 lowercases user
// metadata keys): a route can take, say, every upload that says mex-to,
// whatever its folder. EmailTo matches email by the address it was received
// for: an address, or "@domain" for every address of a domain, without
// regard to case; a route that names it takes only email.
type Match struct {
	Bucket    string   `json:"bucket,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	Sender    string   `json:"sender,omitempty"`
	Recipient string   `json:"recipient,omitempty"`
	Workflow  string   `json:"workflow,omitempty"`
	Has       []string `json:"has,omitempty"`
	EmailTo   string   `json:"emailTo,omitempty"`
}

// Route maps matching uploads to a destination and says how to move them.
type Route struct {
	Name        string      `json:"name"`
	Match       Match       `json:"match"`
	Destination Destination `json:"destination"`
	// Require lists the metadata fields (sender, recipient, workflow,
	// filename, subject, localid) an upload must carry to be accepted.
	Require   []string    `json:"require,omitempty"`
	ChunkSize ByteSize    `json:"chunkSize,omitempty"`
	Retry     RetryPolicy `json:"retry,omitzero"`
	// ExpectAck keeps a delivered transfer waiting for its recipient to
	// acknowledge it through the HTTP API (POST /transfers/{id}/ack). MESH
	// routes always wait, for MESH's own acknowledgement.
	ExpectAck bool `json:"expectAck,omitempty"`
	// Email is what the route accepts of received email (senders,
	// verdicts, a message without attachments); nil is the zero
	// EmailPolicy. It applies to email only.
	Email *EmailPolicy `json:"email,omitempty"`
	// Expect lists the deliveries the route expects by deadlines or on a
	// cadence, which the overdue check watches (Expectation).
	Expect []Expectation `json:"expect,omitempty"`
}

// EmailPolicy returns the route's email policy, the zero one if it sets
// none.
func (r Route) EmailPolicy() EmailPolicy {
	if r.Email == nil {
		return EmailPolicy{}
	}
	return *r.Email
}

// Upload is what is known about an incoming file when choosing its route.
type Upload struct {
	Bucket, Key                 string
	Sender, Recipient, Workflow string
	// Metadata is the upload's decoded user metadata, keys lower case.
	Metadata map[string]string
	// EmailTo is the recipient address of an attachment of received
	// email; "" for any other upload.
	EmailTo string
}

// Mismatch returns why u does not match m — the first criterion it fails,
// in words — or "" when it matches. It is the matching rule itself, so
// that what explains a route choice (ferry routes which) cannot drift
// from what makes it.
func (m Match) Mismatch(u Upload) string {
	switch {
	case m.Bucket != "" && m.Bucket != u.Bucket:
		return fmt.Sprintf("bucket is %q, not %q", u.Bucket, m.Bucket)
	case !strings.HasPrefix(u.Key, m.Prefix):
		return fmt.Sprintf("key %q does not start with %q", u.Key, m.Prefix)
	case m.Sender != "" && !strings.EqualFold(m.Sender, u.Sender):
		return fmt.Sprintf("sender is %q, not %q", u.Sender, m.Sender)
	case m.Recipient != "" && !strings.EqualFold(m.Recipient, u.Recipient):
		return fmt.Sprintf("recipient is %q, not %q", u.Recipient, m.Recipient)
	case m.Workflow != "" && m.Workflow != u.Workflow:
		return fmt.Sprintf("workflow is %q, not %q", u.Workflow, m.Workflow)
	case m.EmailTo != "" && !matchAddress(m.EmailTo, u.EmailTo):
		return fmt.Sprintf("email recipient is %q, not %q", u.EmailTo, m.EmailTo)
	}
	for _, k := range m.Has {
		if strings.TrimSpace(u.Metadata[strings.ToLower(k)]) == "" {
			return fmt.Sprintf("no %q metadata", k)
		}
	}
	return ""
}

// Routes is an ordered routing table: the first matching route wins.
type Routes struct {
	Routes []Route `json:"routes"`
	// MESH configures the MESH environment (URL, credentials, mailboxes,
	// polling). It is opaque here: the mesh transport owns its settings
	// (mesh.ParseConfig decodes, defaults and validates them).
	MESH json.RawMessage `json:"mesh,omitempty"`
	// SFTP, HTTPS and Azblob name the endpoints of those destination
	// types. Each endpoint's settings are opaque here: its transport
	// package owns them (sftp.ParseEndpoints and the like decode, default
	// and validate them); a route's destination names one.
	SFTP   map[string]json.RawMessage `json:"sftp,omitempty"`
	HTTPS  map[string]json.RawMessage `json:"https,omitempty"`
	Azblob map[string]json.RawMessage `json:"azblob,omitempty"`
	// Email names the SMTP relays (and the message each sends) of email
	// destinations.
	Email map[string]json.RawMessage `json:"email,omitempty"`
}

// Endpoints returns the section of the routing file that names the
// endpoints of destination type typ, or nil.
func (rs Routes) Endpoints(typ string) map[string]json.RawMessage {
	switch typ {
	case "sftp":
		return rs.SFTP
	case "https":
		return rs.HTTPS
	case "azblob":
		return rs.Azblob
	case "email":
		return rs.Email
	}
	return nil
}

// Find returns the first route matching u.
func (rs Routes) Find(u Upload) (Route, bool) {
	r, _, ok := rs.Explain(u)
	return r, ok
}

// Explain is Find, with why: the routes before the one that matches (all
// of them when none does), each with its Mismatch, "route N (name): why".
func (rs Routes) Explain(u Upload) (Route, []string, bool) {
	var skipped []string
	for i, r := range rs.Routes {
		why := r.Match.Mismatch(u)
		if why == "" {
			return r.withDefaults(), skipped, true
		}
		skipped = append(skipped, fmt.Sprintf("route %d (%s): %s", i+1, r.Name, why))
	}
	return Route{}, skipped, false
}

func (r Route) withDefaults() Route {
	if r.ChunkSize == 0 {
		r.ChunkSize = ByteSize(DefaultChunkSize)
	}
	r.Retry = r.Retry.withDefaults()
	return r
}

// MetadataFields are the upload metadata names ferry understands.
var MetadataFields = []string{"sender", "recipient", "workflow", "filename", "subject", "localid"}

// Validate reports every problem in the routing table at once.
func (rs Routes) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, r := range rs.Routes {
		where := fmt.Sprintf("route %d (%s)", i+1, r.Name)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is missing", where))
		} else if seen[r.Name] {
			errs = append(errs, fmt.Errorf("%s: name is used twice", where))
		}
		seen[r.Name] = true
		if err := r.Destination.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		} else if d := r.Destination; slices.Contains(endpointTypes, d.Type) {
			if _, ok := rs.Endpoints(d.Type)[d.Endpoint]; !ok {
				errs = append(errs, fmt.Errorf("%s: %s endpoint %q is not defined in the routing file's %s section", where, d.Type, d.Endpoint, d.Type))
			}
		}
		if r.ChunkSize < 0 {
			errs = append(errs, fmt.Errorf("%s: chunk size must be positive", where))
		}
		if r.Destination.Type == "s3" && r.ChunkSize != 0 && r.ChunkSize < 5*MiB {
			errs = append(errs, fmt.Errorf("%s: s3 destinations need chunks of at least 5MiB (S3's smallest multipart part)", where))
		}
		for _, k := range r.Match.Has {
			if strings.TrimSpace(k) == "" {
				errs = append(errs, fmt.Errorf("%s: match.has lists an empty metadata key", where))
			}
		}
		for _, f := range r.Require {
			if !validField(f) {
				errs = append(errs, fmt.Errorf("%s: cannot require unknown metadata field %q", where, f))
			}
		}
		if err := r.Retry.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if err := r.EmailPolicy().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		expects := map[string]bool{}
		for j, e := range r.Expect {
			at := fmt.Sprintf("%s: expect %d (%s)", where, j+1, e.Name)
			if err := e.Validate(); err != nil {
				for _, p := range unjoin(err) {
					errs = append(errs, fmt.Errorf("%s: %w", at, p))
				}
			}
			if e.Name != "" && expects[e.Name] {
				errs = append(errs, fmt.Errorf("%s: name is used twice in the route", at))
			}
			expects[e.Name] = true
		}
	}
	return errors.Join(errs...)
}

func validField(f string) bool {
	for _, m := range MetadataFields {
		if f == m {
			return true
		}
	}
	return false
}

// ParseRoutes decodes and validates a routing table in JSON.
func ParseRoutes(data []byte) (Routes, error) {
	var rs Routes
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rs); err != nil {
		return Routes{}, fmt.Errorf("routes: %s%w", where(data, err), err)
	}
	if len(rs.Routes) == 0 {
		return Routes{}, errors.New("routes: no routes defined")
	}
	if err := rs.Validate(); err != nil {
		return Routes{}, fmt.Errorf("routes: %w", err)
	}
	return rs, nil
}

// where returns "line L, column C: " for a JSON error that knows its
// offset in data, else "".
func where(data []byte, err error) string {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return ""
	}
	before := data[:off]
	line := 1 + bytes.Count(before, []byte("\n"))
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d: ", line, col)
}

// RetryPolicy bounds how often and how fast a failing transfer is retried.
// Delays grow exponentially from BaseDelay, capped at MaxDelay.
type RetryPolicy struct {
	MaxAttempts int      `json:"maxAttempts,omitempty"`
	BaseDelay   Duration `json:"baseDelay,omitempty"`
	MaxDelay    Duration `json:"maxDelay,omitempty"`
}

// DefaultRetryPolicy is used for the fields a route leaves out: the first
// attempt and five retries, as ReportStream's send step makes, from 10
// seconds doubling to at most 15 minutes (less jitter, see Delay).
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 6, BaseDelay: Duration(10 * time.Second), MaxDelay: Duration(15 * time.Minute)}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.BaseDelay == 0 {
		p.BaseDelay = DefaultRetryPolicy.BaseDelay
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultRetryPolicy.MaxDelay
	}
	return p
}

// Validate reports what is wrong with p.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.MaxAttempts < 0 {
		errs = append(errs, errors.New("retry: maxAttempts must not be negative"))
	}
	if p.BaseDelay < 0 || p.MaxDelay < 0 {
		errs = append(errs, errors.New("retry: delays must not be negative"))
	}
	if p.MaxDelay != 0 && p.BaseDelay > p.MaxDelay {
		errs = append(errs, errors.New("retry: baseDelay is longer than maxDelay"))
	}
	return errors.Join(errs...)
}

// Backoff returns the wait before retrying after the given failed attempt
// (1-based): BaseDelay doubled per attempt, never above MaxDelay.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := time.Duration(p.BaseDelay)
	for i := 1; i < attempt && d < time.Duration(p.MaxDelay); i++ {
		if d > time.Duration(p.MaxDelay)/2 { // doubling would pass MaxDelay, or overflow
			return time.Duration(p.MaxDelay)
		}
		d *= 2
	}
	return min(d, time.Duration(p.MaxDelay))
}

// RetryJitter is the largest fraction by which Delay shortens a backoff.
const RetryJitter = 0.2

// Delay returns the wait before transfer id is retried after the given
// failed attempt: Backoff(attempt) shortened by a fraction in [0,
// RetryJitter) drawn from a hash of the id and the attempt. Transfers that
// failed together (a peer down) spread their retries instead of returning
// at once, the wait never exceeds MaxDelay, and the decision stays pure:
// the same transfer and attempt always get the same delay, recorded in the
// Failed event's next attempt time.
func (p RetryPolicy) Delay(id string, attempt int) time.Duration {
	d := p.Backoff(attempt)
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0, byte(attempt >> 24), byte(attempt >> 16), byte(attempt >> 8), byte(attempt)})
	frac := float64(h.Sum64()>>11) / (1 << 53) // uniform in [0, 1)
	return d - time.Duration(float64(d)*RetryJitter*frac)
}

// Duration is a time.Duration written in JSON as a Go duration string ("10s").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a duration string ("1m30s") or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration: want a string like \"10s\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes, written in JSON as a number or a string with
// a binary unit ("16MiB", "512KiB", "1GiB").
type ByteSize int64

var sizeRE = regexp.MustCompile(`^\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*$`)

// UnmarshalJSON accepts a number of bytes or a string with a binary unit.
func (s *ByteSize) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*s = ByteSize(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("size: want a number or a string like \"16MiB\"")
	}
	m := sizeRE.FindStringSubmatch(str)
	if m == nil {
		return fmt.Errorf("size %q: want a number with an optional unit B, KiB, MiB or GiB", str)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return fmt.Errorf("size %q: %w", str, err)
	}
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]
	if v > math.MaxInt64/mult {
		return fmt.Errorf("size %q is too large", str)
	}
	*s = ByteSize(v * mult)
	return nil
}

// unjoin returns the errors err joins, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
