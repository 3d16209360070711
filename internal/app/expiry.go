package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/health"
	"github.com/ferryhq/ferry/transport"
)

// ExpiresTag is the Secrets Manager tag that gives a secret without a
// certificate in it (a password, an API key, an SSH key) an expiry date,
// as an RFC 3339 time or a date ("2027-03-31", midnight UTC). ferry doctor
// and the scheduled health check report it as they report certificates'.
const ExpiresTag = "ferry:expires"

// secretRef is a secret reference found in a routing file's settings, and
// where.
type secretRef struct{ field, ref string }

// refsOf returns the Secrets Manager references in the settings a target
// uses: its endpoint's, or for a MESH mailbox the mesh section's shared
// ones and its own.
func refsOf(routes domain.Routes, t health.Target) []secretRef {
	var refs []secretRef
	if t.Type != "mesh" {
		collectRefs(rawValue(routes.Endpoints(t.Type)[t.Name]), "", &refs)
		return refs
	}
	var m map[string]any
	if json.Unmarshal(routes.MESH, &m) != nil {
		return nil
	}
	for k, v := range m {
		if k != "mailboxes" {
			collectRefs(v, k, &refs)
		}
	}
	boxes, _ := m["mailboxes"].([]any)
	for _, b := range boxes {
		if mb, ok := b.(map[string]any); ok && strings.EqualFold(asString(mb["id"]), t.Name) {
			collectRefs(mb, "mailbox "+t.Name, &refs)
		}
	}
	slices.SortFunc(refs, func(a, b secretRef) int { return strings.Compare(a.field, b.field) })
	return refs
}

func rawValue(raw json.RawMessage) any {
	var v any
	_ = json.Unmarshal(raw, &v)
	return v
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

// collectRefs appends the "secret:" strings in v, named by their path.
func collectRefs(v any, path string, refs *[]secretRef) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch v := v.(type) {
	case string:
		if strings.HasPrefix(v, "secret:") {
			*refs = append(*refs, secretRef{path, v})
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			collectRefs(v[k], join(k), refs)
		}
	case []any:
		for _, e := range v {
			collectRefs(e, path, refs)
		}
	}
}

// taggedExpiry returns the credentials of refs whose secret carries
// ExpiresTag. A secret that cannot be described, or whose tag does not
// parse, is logged and left out: the check itself reports a secret it
// cannot read.
func taggedExpiry(ctx context.Context, sm *secretsmanager.Client, refs []secretRef, log *slog.Logger) []transport.Credential {
	var out []transport.Credential
	for _, r := range refs {
		name := strings.TrimPrefix(r.ref, "secret:")
		d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &name})
		if err != nil {
			log.WarnContext(ctx, "cannot read the secret's tags for its expiry", "secret", r.ref, "error", err)
			continue
		}
		for _, tag := range d.Tags {
			if tag.Key == nil || *tag.Key != ExpiresTag || tag.Value == nil {
				continue
			}
			at, err := parseExpiry(*tag.Value)
			if err != nil {
				log.WarnContext(ctx, "the secret's "+ExpiresTag+" tag is not a date", "secret", r.ref, "value", *tag.Value)
				continue
			}
			out = append(out, transport.Credential{Name: r.field + " " + r.ref, Subject: "tag " + ExpiresTag, Expires: at})
		}
	}
	return out
}

func parseExpiry(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse(time.DateOnly, s)
}
