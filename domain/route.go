package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Destination says where a route delivers. It comes only from route
// configuration, never from anything a sender supplies.
type Destination struct {
	// Type names the transport: "s3", "mesh", "sftp" or "null".
	Type string `json:"type"`
	// Bucket and Prefix locate the delivered object for the s3 transport.
	Bucket string `json:"bucket,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Endpoint names the server an sftp destination delivers to, one of
	// the endpoints the sftp transport's settings define (host, user,
	// credentials, directory).
	Endpoint string `json:"endpoint,omitempty"`
}

// Validate reports what is wrong with d, every problem at once.
func (d Destination) Validate() error {
	var errs []error
	switch d.Type {
	case "s3":
		if d.Bucket == "" {
			errs = append(errs, errors.New("s3 destination needs a bucket"))
		}
	case "sftp":
		if d.Endpoint == "" {
			errs = append(errs, errors.New("sftp destination needs an endpoint"))
		}
	case "null", "mesh":
		// mesh: the MESH environment and mailboxes are configured in the
		// routing file's "mesh" section, which the mesh transport parses
		// and validates (mesh.ParseConfig); from, to and workflow come
		// with each upload.
	case "":
		errs = append(errs, errors.New("destination type is missing"))
	default:
		errs = append(errs, fmt.Errorf("unknown destination type %q", d.Type))
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
// whatever its folder.
type Match struct {
	Bucket    string   `json:"bucket,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	Sender    string   `json:"sender,omitempty"`
	Recipient string   `json:"recipient,omitempty"`
	Workflow  string   `json:"workflow,omitempty"`
	Has       []string `json:"has,omitempty"`
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
}

// Upload is what is known about an incoming file when choosing its route.
type Upload struct {
	Bucket, Key                 string
	Sender, Recipient, Workflow string
	// Metadata is the upload's decoded user metadata, keys lower case.
	Metadata map[string]string
}

func (m Match) matches(u Upload) bool {
	return (m.Bucket == "" || m.Bucket == u.Bucket) &&
		strings.HasPrefix(u.Key, m.Prefix) &&
		(m.Sender == "" || strings.EqualFold(m.Sender, u.Sender)) &&
		(m.Recipient == "" || strings.EqualFold(m.Recipient, u.Recipient)) &&
		(m.Workflow == "" || m.Workflow == u.Workflow) &&
		u.has(m.Has)
}

// has reports whether u carries a non-empty value for every key.
func (u Upload) has(keys []string) bool {
	for _, k := range keys {
		if strings.TrimSpace(u.Metadata[strings.ToLower(k)]) == "" {
			return false
		}
	}
	return true
}

// Routes is an ordered routing table: the first matching route wins.
type Routes struct {
	Routes []Route `json:"routes"`
	// MESH configures the MESH environment (URL, credentials, mailboxes,
	// polling). It is opaque here: the mesh transport owns its settings
	// (mesh.ParseConfig decodes, defaults and validates them).
	MESH json.RawMessage `json:"mesh,omitempty"`
}

// Find returns the first route matching u.
func (rs Routes) Find(u Upload) (Route, bool) {
	for _, r := range rs.Routes {
		if r.Match.matches(u) {
			return r.withDefaults(), true
		}
	}
	return Route{}, false
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
		return Routes{}, fmt.Errorf("routes: %w", err)
	}
	if len(rs.Routes) == 0 {
		return Routes{}, errors.New("routes: no routes defined")
	}
	if err := rs.Validate(); err != nil {
		return Routes{}, fmt.Errorf("routes: %w", err)
	}
	return rs, nil
}

// RetryPolicy bounds how often and how fast a failing transfer is retried.
// Delays grow exponentially from BaseDelay, capped at MaxDelay.
type RetryPolicy struct {
	MaxAttempts int      `json:"maxAttempts,omitempty"`
	BaseDelay   Duration `json:"baseDelay,omitempty"`
	MaxDelay    Duration `json:"maxDelay,omitempty"`
}

// DefaultRetryPolicy is used for the fields a route leaves out.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 8, BaseDelay: Duration(10 * time.Second), MaxDelay: Duration(15 * time.Minute)}

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
