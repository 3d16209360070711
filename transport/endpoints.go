package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Endpoint is the settings of one named endpoint of a transport (an SFTP
// server, an HTTPS URL, a blob container), as its package defines them.
type Endpoint[E any] interface {
	// WithDefaults returns the settings with unset fields given their
	// defaults.
	WithDefaults() E
	// Validate reports every problem with the settings at once. It must
	// not echo a value that may be a secret.
	Validate() error
}

// ParseEndpoints decodes a routing file's section of typ's endpoints (see
// domain.Routes.Endpoints): each name's settings decoded refusing unknown
// fields, given their defaults and validated. It reports every problem
// of every endpoint at once, one per line, each beginning "typ: endpoint
// NAME: ". Each
// transport package's ParseEndpoints is this for its own settings type.
func ParseEndpoints[E Endpoint[E]](typ string, raw map[string]json.RawMessage) (map[string]E, error) {
	eps := make(map[string]E, len(raw))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		where := fmt.Sprintf("%s: endpoint %q", typ, name)
		if strings.TrimSpace(name) == "" {
			errs = append(errs, fmt.Errorf("%s: an endpoint has an empty name", typ))
			continue
		}
		var e E
		dec := json.NewDecoder(bytes.NewReader(raw[name]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		e = e.WithDefaults()
		if err := e.Validate(); err != nil {
			for _, err := range unjoin(err) {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			continue
		}
		eps[name] = e
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return eps, nil
}

// unjoin returns the errors errors.Join combined into err, or err alone.
func unjoin(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, unjoin(e)...)
	}
	return out
}
