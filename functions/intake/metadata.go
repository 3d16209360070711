package intake

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/ferryhq/ferry/domain"
)

// Upload metadata names. S3 lowercases user metadata keys, so matching is
// case-insensitive. Values may be URL-encoded (quote_plus), as NHS England's
// MESH client writes them, and are decoded once.
const (
	metaSender    = "sender"
	metaRecipient = "recipient"
	metaWorkflow  = "workflow"
	metaFilename  = "filename"
	metaSubject   = "subject"
	metaLocalID   = "localid"

	// NHS England's MESH client's names for the same things.
	mexFrom     = "mex-from"
	mexTo       = "mex-to"
	mexWorkflow = "mex-workflowid"
	mexFilename = "mex-filename"
)

// maxMetadataValue bounds every decoded value; S3 allows 2 KB of user
// metadata in all, so a longer value means something is wrong.
const maxMetadataValue = 1024

var partyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$`)

// metadata is an upload's decoded user metadata.
type metadata map[string]string

// parseMetadata lowercases keys and decodes values. It reports every
// problem at once.
func parseMetadata(raw map[string]string) (metadata, []string) {
	md := metadata{}
	var problems []string
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := url.QueryUnescape(raw[k])
		if err != nil {
			problems = append(problems, fmt.Sprintf("metadata %s is not valid URL encoding", strings.ToLower(k)))
			continue
		}
		if len(v) > maxMetadataValue {
			problems = append(problems, fmt.Sprintf("metadata %s is longer than %d bytes", strings.ToLower(k), maxMetadataValue))
			continue
		}
		md[strings.ToLower(k)] = v
	}
	for _, k := range []string{metaSender, metaRecipient, metaWorkflow, mexFrom, mexTo, mexWorkflow} {
		if v, ok := md[k]; ok && !partyRE.MatchString(v) {
			problems = append(problems, fmt.Sprintf("metadata %s %q must be 1-128 letters, digits or . _ @ : -", k, v))
		}
	}
	return md, problems
}

// first returns the first non-empty value among keys.
func (md metadata) first(keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(md[k]); v != "" {
			return v
		}
	}
	return ""
}

// aliases are the MESH client's names for ferry's fields.
var aliases = map[string]string{metaSender: mexFrom, metaRecipient: mexTo, metaWorkflow: mexWorkflow, metaFilename: mexFilename}

// missing returns the required fields md lacks under either name.
func (md metadata) missing(required []string) []string {
	var out []string
	for _, f := range required {
		if md.first(f, aliases[f]) == "" {
			out = append(out, f)
		}
	}
	return out
}

// extra returns the metadata other than the fields ferry interprets.
func (md metadata) extra() map[string]string {
	out := map[string]string{}
	for k, v := range md {
		switch k {
		case metaSender, metaRecipient, metaWorkflow, metaFilename, mexFrom, mexTo, mexWorkflow, mexFilename, domain.MetaCorrelationID:
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func reasonf(format string, args ...any) *domain.Error {
	return domain.Errorf(domain.KindInvalid, format, args...)
}
