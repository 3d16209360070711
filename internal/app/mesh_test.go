package app

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/transport/mesh"
)

// validMesh is a complete mesh section.
const validMesh = `{
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
	if err := json.Unmarshal([]byte(validMesh), &m); err != nil {
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

func TestParseMeshConfigDefaults(t *testing.T) {
	c, err := ParseMeshConfig(json.RawMessage(validMesh))
	if err != nil {
		t.Fatalf("ParseMeshConfig = %v", err)
	}
	if c.Inbound.Prefix != "inbound/" || c.Inbound.PollInterval != domain.Duration(5*time.Minute) || c.TrackInterval != domain.Duration(time.Minute) {
		t.Errorf("prefix %q, poll %v, track %v; want inbound/, 5m (the MESH API specification), 1m", c.Inbound.Prefix, time.Duration(c.Inbound.PollInterval), time.Duration(c.TrackInterval))
	}
	if len(c.Mailboxes) != 2 || c.Mailboxes[0].OutboundMappings[0] != (MeshMapping{To: "x26abc2", Workflow: "TEST_WORKFLOW"}) {
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
		c, err := ParseMeshConfig(raw)
		if err != nil {
			t.Fatalf("ParseMeshConfig = %v", err)
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
			if _, err := ParseMeshConfig(edit(t, func(m map[string]any) { m["url"] = url })); err != nil {
				t.Errorf("url %q: %v", url, err)
			}
		}
	})

	t.Run("no inbound", func(t *testing.T) {
		if _, err := ParseMeshConfig(edit(t, func(m map[string]any) { delete(m, "inbound") })); err != nil {
			t.Errorf("ParseMeshConfig = %v; a send-only configuration needs no bucket", err)
		}
	})
}

// literal is a password pasted where a reference belongs; no error may
// echo it.
const literal = "correct-horse-battery-staple"

func TestParseMeshConfigProblems(t *testing.T) {
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
			_, err := ParseMeshConfig(edit(t, tt.edit))
			if err == nil {
				t.Fatalf("ParseMeshConfig = nil, want an error saying %q", tt.want)
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

func TestParseMeshConfigReportsEveryProblemAtOnce(t *testing.T) {
	raw := json.RawMessage(`{
		"caCert": "` + literal + `",
		"mailboxes": [
			{"id": "X26ABC1", "password": "` + literal + `", "outboundMappings": [{"to": "X26ABC2"}]},
			{"id": "x26abc1", "password": "secret:p"}
		],
		"inbound": {"mailboxes": ["X26ZZZ9"]}
	}`)
	_, err := ParseMeshConfig(raw)
	if err == nil {
		t.Fatal("ParseMeshConfig = nil, want every problem")
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

func TestIsRef(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"secret:ferry/mesh/X26ABC1", true},
		{"ssm:/ferry/mesh/url", true},
		{"secret:", true},
		{"ssm:", true},
		{"", false},
		{"password", false},
		{"secret", false},
		{"Secret:x", false},
		{"SSM:/x", false},
		{" secret:x", false},
		{"s3://bucket/key", false},
		{"https://msg.intspineservices.nhs.uk", false},
		{"my-secret:x", false},
	} {
		if got := IsRef(tt.s); got != tt.want {
			t.Errorf("IsRef(%q) = %t, want %t", tt.s, got, tt.want)
		}
	}
}

func TestResolveRejectsNonReference(t *testing.T) {
	s := &Secrets{} // no AWS clients: a non-reference must not reach them
	for _, v := range []string{literal, "hunter2", "Secret:ferry/mesh/X26ABC1", "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----", "x", "€uro-pässword"} {
		_, err := s.Resolve(context.Background(), v)
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("Resolve(%q) = %v, want an invalid error", v, err)
			continue
		}
		if strings.Contains(err.Error(), v) {
			t.Errorf("Resolve error %q echoes the value", err)
		}
		// At most a few leading characters, to recognise a mistyped
		// reference by.
		if len(v) > 5 && strings.Contains(err.Error(), v[:5]) {
			t.Errorf("Resolve error %q echoes the start of the value", err)
		}
		if _, err := s.ResolveString(context.Background(), v); err == nil || strings.Contains(err.Error(), v) {
			t.Errorf("ResolveString(%q) = %v, want an error without the value", v, err)
		}
	}
}

// cached returns a resolver that answers from values without AWS.
func cached(values map[string]string) *Secrets {
	s := &Secrets{cache: map[string][]byte{}}
	for k, v := range values {
		s.cache[k] = []byte(v)
	}
	return s
}

func TestNewMesh(t *testing.T) {
	raw := edit(t, func(m map[string]any) {
		m["url"] = "ssm:/ferry/mesh/url"
		delete(m, "caCert")
		delete(m, "clientCert")
		delete(m, "clientKey")
		m["compressThreshold"] = "4KiB"
		m["neverCompress"] = true
	})
	c, err := ParseMeshConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	secrets := cached(map[string]string{
		"ssm:/ferry/mesh/url":          "https://mesh.example\n",
		"secret:ferry/mesh/shared-key": "TestKey",
		"secret:ferry/mesh/X26ABC1":    "password",
		"ssm:/ferry/mesh/X26ABC2":      "password",
	})
	m, err := newMesh(context.Background(), c, secrets, true, nil, nil)
	if err != nil {
		t.Fatalf("newMesh = %v", err)
	}
	if len(m.Clients) != 2 || m.Clients["X26ABC1"] == nil || m.Clients["X26ABC2"] == nil {
		t.Fatalf("clients = %v, want X26ABC1 and X26ABC2", m.Clients)
	}
	if got := m.Clients["X26ABC1"].String(); !strings.Contains(got, `"https://mesh.example"`) {
		t.Errorf("client %s, want the URL resolved and trimmed", got)
	}
	want := &intake.MeshOutbound{
		Mailboxes: map[string][]intake.MeshMapping{"X26ABC1": {{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}}, "X26ABC2": nil},
		Compress:  mesh.CompressOptions{Threshold: 4 << 10, Never: true},
	}
	if !reflect.DeepEqual(m.Intake, want) {
		t.Errorf("intake = %+v, want %+v", m.Intake, want)
	}
	if m.Inbound == nil || len(m.Inbound.Clients) != 2 {
		t.Errorf("inbound = %+v, want both clients", m.Inbound)
	}

	t.Run("without clients no secret is read", func(t *testing.T) {
		m, err := newMesh(context.Background(), c, &Secrets{}, false, nil, nil)
		if err != nil {
			t.Fatalf("newMesh = %v", err)
		}
		if len(m.Clients) != 0 {
			t.Errorf("clients = %v, want none", m.Clients)
		}
		if !reflect.DeepEqual(m.Intake, want) {
			t.Errorf("intake = %+v, want %+v", m.Intake, want)
		}
	})
}

// routesWithMesh is a routing file with a mesh section, as operators
// write it.
const routesWithMesh = `{
  "routes": [
    {"name": "mesh-out", "match": {"bucket": "ferry-outbound", "prefix": "outbound/mesh/"}, "destination": {"type": "mesh"}, "chunkSize": "20MiB"},
    {"name": "discard", "match": {"prefix": "discard/"}, "destination": {"type": "null"}}
  ],
  "mesh": {
    "url": "ssm:/ferry/mesh/url",
    "sharedKey": "secret:ferry/mesh/shared-key",
    "mailboxes": [
      {"id": "X26ABC1", "password": "secret:ferry/mesh/X26ABC1/password", "outboundMappings": [{"to": "X26ABC2", "workflow": "TEST_WORKFLOW"}]},
      {"id": "X26ABC2", "password": "secret:ferry/mesh/X26ABC2/password"}
    ],
    "compressThreshold": "1MiB",
    "trackInterval": "2s",
    "inbound": {"mailboxes": ["X26ABC1", "X26ABC2"], "bucket": "ferry-inbound", "pollInterval": "2s", "pageLimit": 500, "maxConcurrency": 4, "useSenderFilename": true}
  }
}`

func writeRoutes(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRoutesWithMesh(t *testing.T) {
	p := writeRoutes(t, routesWithMesh)
	for _, src := range []string{p, "file:" + p} {
		routes, err := LoadRoutes(context.Background(), aws.Config{}, nil, src)
		if err != nil {
			t.Fatalf("LoadRoutes(%s) = %v", src, err)
		}
		r, ok := routes.Find(domain.Upload{Bucket: "ferry-outbound", Key: "outbound/mesh/X26ABC1/a.csv"})
		if !ok || r.Name != "mesh-out" || r.Destination.Type != "mesh" {
			t.Errorf("route for a MESH upload = %+v, %t; want mesh-out", r, ok)
		}
		if routes.Mesh == nil {
			t.Fatalf("routes.Mesh is nil, want the mesh section")
		}
		c, err := ParseMeshConfig(routes.Mesh)
		if err != nil {
			t.Fatalf("ParseMeshConfig = %v", err)
		}
		want := MeshConfig{
			URL:       "ssm:/ferry/mesh/url",
			SharedKey: "secret:ferry/mesh/shared-key",
			Mailboxes: []MeshMailbox{
				{ID: "X26ABC1", Password: "secret:ferry/mesh/X26ABC1/password", OutboundMappings: []MeshMapping{{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}}},
				{ID: "X26ABC2", Password: "secret:ferry/mesh/X26ABC2/password"},
			},
			CompressThreshold: domain.MiB,
			TrackInterval:     domain.Duration(2 * time.Second),
			Inbound: MeshInbound{
				Mailboxes: []string{"X26ABC1", "X26ABC2"}, Bucket: "ferry-inbound", Prefix: "inbound/",
				PollInterval: domain.Duration(2 * time.Second), PageLimit: 500, MaxConcurrency: 4, UseSenderFilename: true,
			},
		}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("mesh config:\n got %+v\nwant %+v", c, want)
		}
	}

	t.Run("without a mesh section", func(t *testing.T) {
		routes, err := LoadRoutes(context.Background(), aws.Config{}, nil, writeRoutes(t, `{"routes": [{"name": "discard", "destination": {"type": "null"}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if routes.Mesh != nil {
			t.Errorf("routes.Mesh = %s, want nil", routes.Mesh)
		}
	})

	t.Run("a bad mesh section is caught by ParseMeshConfig", func(t *testing.T) {
		bad := strings.Replace(routesWithMesh, `"secret:ferry/mesh/X26ABC2/password"`, `"`+literal+`"`, 1)
		routes, err := LoadRoutes(context.Background(), aws.Config{}, nil, writeRoutes(t, bad))
		if err != nil {
			t.Fatalf("LoadRoutes = %v; the mesh section is opaque to it", err)
		}
		_, err = ParseMeshConfig(routes.Mesh)
		if err == nil || !strings.Contains(err.Error(), "mailbox X26ABC2: password must be") || strings.Contains(err.Error(), literal) {
			t.Errorf("ParseMeshConfig = %v, want the literal password refused without echoing it", err)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadRoutes(context.Background(), aws.Config{}, nil, filepath.Join(t.TempDir(), "none.json")); err == nil {
			t.Error("LoadRoutes = nil, want an error")
		}
	})
}
