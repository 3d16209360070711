package mesh

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// validMESH is a complete mesh section.
const validMESH = `{
	"url": "https://msg.intspineservices.nhs.uk",
	"sharedKey": "secret:ferry/mesh/shared-key",
	"caCert": "secret:ferry/mesh/ca",
	"clientCert": "ssm:/ferry/mesh/client-cert",
	"clientKey": "secret:ferry/mesh/client-key",
	"mailboxes": [
		{"id": "X26ABC1", "password": "secret:ferry/mesh/X26ABC1", "outboundMappings": [{"to": "x26abc2", "workflow": "TEST_WORKFLOW"}]},
		{"id": "X26ABC2", "password": "ssm:/ferry/mesh/X26ABC2"}
	],
	"inbound": {"mailboxes": ["x26abc1", "X26ABC2"], "bucket": "ferry-inbound"}
}`

// edit returns validMesh decoded, changed by fn, and encoded again.
func edit(t *testing.T, fn func(m map[string]any)) json.RawMessage {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(validMESH), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mailboxes(m map[string]any) []any { return m["mailboxes"].([]any) }

func mailboxAt(m map[string]any, i int) map[string]any { return mailboxes(m)[i].(map[string]any) }

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(json.RawMessage(validMESH))
	if err != nil {
		t.Fatalf("ParseConfig = %v", err)
	}
	if c.Inbound.Prefix != "inbound/" || c.Inbound.PollInterval != domain.Duration(5*time.Minute) || c.TrackInterval != domain.Duration(time.Minute) {
		t.Errorf("prefix %q, poll %v, track %v; want inbound/, 5m (the MESH API specification), 1m", c.Inbound.Prefix, time.Duration(c.Inbound.PollInterval), time.Duration(c.TrackInterval))
	}
	if len(c.Mailboxes) != 2 || c.Mailboxes[0].OutboundMappings[0] != (Mapping{To: "x26abc2", Workflow: "TEST_WORKFLOW"}) {
		t.Errorf("mailboxes = %+v", c.Mailboxes)
	}

	t.Run("given values are kept", func(t *testing.T) {
		raw := edit(t, func(m map[string]any) {
			m["trackInterval"] = "2s"
			m["compressThreshold"] = "1MiB"
			in := m["inbound"].(map[string]any)
			in["prefix"] = "mesh/in/"
			in["pollInterval"] = "30s"
			in["pageLimit"] = 100
		})
		c, err := ParseConfig(raw)
		if err != nil {
			t.Fatalf("ParseConfig = %v", err)
		}
		if c.Inbound.Prefix != "mesh/in/" || c.Inbound.PollInterval != domain.Duration(30*time.Second) || c.TrackInterval != domain.Duration(2*time.Second) {
			t.Errorf("prefix %q, poll %v, track %v; want mesh/in/, 30s, 2s", c.Inbound.Prefix, time.Duration(c.Inbound.PollInterval), time.Duration(c.TrackInterval))
		}
		if c.CompressThreshold != domain.MiB || c.Inbound.PageLimit != 100 {
			t.Errorf("compress threshold %d, page limit %d; want 1MiB, 100", c.CompressThreshold, c.Inbound.PageLimit)
		}
	})

	t.Run("a literal URL or a reference", func(t *testing.T) {
		for _, url := range []string{"http://localhost:8700", "ssm:/ferry/mesh/url", "secret:ferry/mesh/url"} {
			if _, err := ParseConfig(edit(t, func(m map[string]any) { m["url"] = url })); err != nil {
				t.Errorf("url %q: %v", url, err)
			}
		}
	})

	t.Run("no inbound", func(t *testing.T) {
		if _, err := ParseConfig(edit(t, func(m map[string]any) { delete(m, "inbound") })); err != nil {
			t.Errorf("ParseConfig = %v; a send-only configuration needs no bucket", err)
		}
	})
}

// literal is a password pasted where a reference belongs; no error may
// echo it.
const literal = "correct-horse-battery-staple"

func TestParseConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"url missing", func(m map[string]any) { delete(m, "url") }, "url is missing"},
		{"sharedKey missing", func(m map[string]any) { delete(m, "sharedKey") }, "sharedKey is missing"},
		{"sharedKey literal", func(m map[string]any) { m["sharedKey"] = literal }, "sharedKey must be a secret:NAME or ssm:NAME reference"},
		{"clientKey literal", func(m map[string]any) { m["clientKey"] = literal }, "clientKey must be a secret:NAME or ssm:NAME reference"},
		{"caCert literal", func(m map[string]any) { m["caCert"] = literal }, "caCert must be a secret:NAME or ssm:NAME reference"},
		{"password literal", func(m map[string]any) { mailboxAt(m, 1)["password"] = literal }, "mailbox X26ABC2: password must be a secret:NAME or ssm:NAME reference"},
		{"password missing", func(m map[string]any) { delete(mailboxAt(m, 1), "password") }, "mailbox X26ABC2: password must be"},
		{"mailbox without id", func(m map[string]any) { delete(mailboxAt(m, 1), "id") }, "mailbox 2 has no id"},
		{"duplicate mailbox", func(m map[string]any) {
			m["mailboxes"] = append(mailboxes(m), map[string]any{"id": "x26abc1", "password": "ssm:/p"})
		}, "mailbox x26abc1 is listed twice"},
		{"inbound mailbox not listed", func(m map[string]any) {
			m["inbound"].(map[string]any)["mailboxes"] = []any{"X26ABC1", "X26ZZZ9"}
		}, "inbound mailbox X26ZZZ9 is not among the mailboxes"},
		{"inbound without bucket", func(m map[string]any) { delete(m["inbound"].(map[string]any), "bucket") }, "inbound needs a bucket"},
		{"mapping without to", func(m map[string]any) {
			mailboxAt(m, 0)["outboundMappings"] = []any{map[string]any{"workflow": "W"}}
		}, "mailbox X26ABC1: an outbound mapping needs to and workflow"},
		{"mapping without workflow", func(m map[string]any) {
			mailboxAt(m, 0)["outboundMappings"] = []any{map[string]any{"to": "X26ABC2"}}
		}, "mailbox X26ABC1: an outbound mapping needs to and workflow"},
		{"unknown field", func(m map[string]any) { m["pasword"] = "secret:x" }, `unknown field "pasword"`},
		{"unknown mailbox field", func(m map[string]any) { mailboxAt(m, 0)["mailboxPassword"] = "secret:x" }, `unknown field "mailboxPassword"`},
		{"unknown inbound field", func(m map[string]any) { m["inbound"].(map[string]any)["bukcet"] = "b" }, `unknown field "bukcet"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(edit(t, tt.edit))
			if err == nil {
				t.Fatalf("ParseConfig = nil, want an error saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "mesh: ") {
				t.Errorf("error %q does not begin with mesh:", err)
			}
			if strings.Contains(err.Error(), literal) {
				t.Errorf("error %q echoes the literal secret", err)
			}
		})
	}
}

func TestParseConfigReportsEveryProblemAtOnce(t *testing.T) {
	raw := json.RawMessage(`{
		"caCert": "` + literal + `",
		"mailboxes": [
			{"id": "X26ABC1", "password": "` + literal + `", "outboundMappings": [{"to": "X26ABC2"}]},
			{"id": "x26abc1", "password": "secret:p"}
		],
		"inbound": {"mailboxes": ["X26ZZZ9"]}
	}`)
	_, err := ParseConfig(raw)
	if err == nil {
		t.Fatal("ParseConfig = nil, want every problem")
	}
	for _, want := range []string{
		"url is missing",
		"sharedKey is missing",
		"caCert must be a secret:NAME or ssm:NAME reference",
		"mailbox X26ABC1: password must be a secret:NAME or ssm:NAME reference",
		"mailbox X26ABC1: an outbound mapping needs to and workflow",
		"mailbox x26abc1 is listed twice",
		"inbound mailbox X26ZZZ9 is not among the mailboxes",
		"inbound needs a bucket",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 8 {
		t.Errorf("error is not the 8 problems joined: %v", err)
	}
	if strings.Contains(err.Error(), literal) {
		t.Errorf("error echoes the literal secret: %v", err)
	}
}
