package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/mesh"
)

// literal is a password pasted where a reference belongs; no error may
// echo it.
const literal = "correct-horse-battery-staple"

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

// newMESHSection is a mesh section whose URL is a reference and whose
// mailboxes need no client certificate.
const newMESHSection = `{
	"url": "ssm:/ferry/mesh/url",
	"sharedKey": "secret:ferry/mesh/shared-key",
	"mailboxes": [
		{"id": "X26ABC1", "password": "secret:ferry/mesh/X26ABC1", "outboundMappings": [{"to": "x26abc2", "workflow": "TEST_WORKFLOW"}]},
		{"id": "X26ABC2", "password": "ssm:/ferry/mesh/X26ABC2"}
	],
	"compressThreshold": "4KiB",
	"neverCompress": true,
	"inbound": {"mailboxes": ["x26abc1", "X26ABC2"], "bucket": "ferry-inbound"}
}`

func TestNewMESH(t *testing.T) {
	c, err := mesh.ParseConfig(json.RawMessage(newMESHSection))
	if err != nil {
		t.Fatal(err)
	}
	secrets := cached(map[string]string{
		"ssm:/ferry/mesh/url":          "https://mesh.example\n",
		"secret:ferry/mesh/shared-key": "TestKey",
		"secret:ferry/mesh/X26ABC1":    "password",
		"ssm:/ferry/mesh/X26ABC2":      "password",
	})
	m, err := newMESH(context.Background(), c, secrets, true, nil, nil)
	if err != nil {
		t.Fatalf("newMesh = %v", err)
	}
	if len(m.Clients) != 2 || m.Clients["X26ABC1"] == nil || m.Clients["X26ABC2"] == nil {
		t.Fatalf("clients = %v, want X26ABC1 and X26ABC2", m.Clients)
	}
	if got := m.Clients["X26ABC1"].String(); !strings.Contains(got, `"https://mesh.example"`) {
		t.Errorf("client %s, want the URL resolved and trimmed", got)
	}
	want := &mesh.Addressing{
		Mailboxes: map[string][]mesh.Mapping{"X26ABC1": {{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}}, "X26ABC2": nil},
		Compress:  mesh.CompressOptions{Threshold: 4 << 10, Never: true},
	}
	if !reflect.DeepEqual(m.Addressing, want) {
		t.Errorf("intake's addressing = %+v, want %+v", m.Addressing, want)
	}
	if m.Inbound == nil || len(m.Inbound.Clients) != 2 {
		t.Errorf("inbound = %+v, want both clients", m.Inbound)
	}

	t.Run("without clients no secret is read", func(t *testing.T) {
		m, err := newMESH(context.Background(), c, &Secrets{}, false, nil, nil)
		if err != nil {
			t.Fatalf("newMesh = %v", err)
		}
		if len(m.Clients) != 0 {
			t.Errorf("clients = %v, want none", m.Clients)
		}
		if !reflect.DeepEqual(m.Addressing, want) {
			t.Errorf("intake's addressing = %+v, want %+v", m.Addressing, want)
		}
	})
}

// routesWithMESH is a routing file with a mesh section, as operators
// write it.
const routesWithMESH = `{
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

func TestLoadRoutesWithMESH(t *testing.T) {
	p := writeRoutes(t, routesWithMESH)
	for _, src := range []string{p, "file:" + p} {
		routes, err := LoadRoutes(context.Background(), aws.Config{}, nil, src)
		if err != nil {
			t.Fatalf("LoadRoutes(%s) = %v", src, err)
		}
		r, ok := routes.Find(domain.Upload{Bucket: "ferry-outbound", Key: "outbound/mesh/X26ABC1/a.csv"})
		if !ok || r.Name != "mesh-out" || r.Destination.Type != "mesh" {
			t.Errorf("route for a MESH upload = %+v, %t; want mesh-out", r, ok)
		}
		if routes.MESH == nil {
			t.Fatalf("routes.Mesh is nil, want the mesh section")
		}
		c, err := mesh.ParseConfig(routes.MESH)
		if err != nil {
			t.Fatalf("mesh.ParseConfig = %v", err)
		}
		want := mesh.Config{
			URL:       "ssm:/ferry/mesh/url",
			SharedKey: "secret:ferry/mesh/shared-key",
			Mailboxes: []mesh.Mailbox{
				{ID: "X26ABC1", Password: "secret:ferry/mesh/X26ABC1/password", OutboundMappings: []mesh.Mapping{{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}}},
				{ID: "X26ABC2", Password: "secret:ferry/mesh/X26ABC2/password"},
			},
			CompressThreshold: domain.MiB,
			TrackInterval:     domain.Duration(2 * time.Second),
			Inbound: mesh.InboundConfig{
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
		if routes.MESH != nil {
			t.Errorf("routes.Mesh = %s, want nil", routes.MESH)
		}
	})

	t.Run("a bad mesh section is caught by mesh.ParseConfig", func(t *testing.T) {
		bad := strings.Replace(routesWithMESH, `"secret:ferry/mesh/X26ABC2/password"`, `"`+literal+`"`, 1)
		routes, err := LoadRoutes(context.Background(), aws.Config{}, nil, writeRoutes(t, bad))
		if err != nil {
			t.Fatalf("LoadRoutes = %v; the mesh section is opaque to it", err)
		}
		_, err = mesh.ParseConfig(routes.MESH)
		if err == nil || !strings.Contains(err.Error(), "mailbox X26ABC2: password must be") || strings.Contains(err.Error(), literal) {
			t.Errorf("mesh.ParseConfig = %v, want the literal password refused without echoing it", err)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadRoutes(context.Background(), aws.Config{}, nil, filepath.Join(t.TempDir(), "none.json")); err == nil {
			t.Error("LoadRoutes = nil, want an error")
		}
	})
}
