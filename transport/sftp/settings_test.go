package sftp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

const pinned = "sftp.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAQBXpSeP0Qzh6dl4fHk4T+fVzMrkU4BmxUpRdVTeo2n"

// section decodes a routing file's sftp section as domain.ParseRoutes does.
func section(t *testing.T, raw string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("section %s: %v", raw, err)
	}
	return m
}

func TestParseEndpointsDefaults(t *testing.T) {
	raw := `{"partner": {"host": "sftp.example.com", "user": "ferry", "directory": "/in/",
		"privateKey": "secret:partner-key", "knownHosts": ["` + pinned + `"]}}`
	eps, err := ParseEndpoints(section(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	got := eps["partner"]
	want := Endpoint{
		Host: "sftp.example.com", Port: 22, User: "ferry", Directory: "/in",
		PrivateKey: "secret:partner-key", KnownHosts: []string{pinned},
		Concurrency: DefaultConcurrency, Timeout: domain.Duration(DefaultTimeout),
	}
	if got.Host != want.Host || got.Port != want.Port || got.User != want.User || got.Directory != want.Directory ||
		got.PrivateKey != want.PrivateKey || got.Concurrency != want.Concurrency || got.Timeout != want.Timeout {
		t.Errorf("ParseEndpoints = %+v, want %+v", got, want)
	}
}

func TestParseEndpointsKeepsSetFields(t *testing.T) {
	raw := `{"p": {"host": "h", "port": 2222, "user": "u", "directory": "/d", "password": "ssm:/p/pw",
		"knownHosts": ["` + pinned + `"], "mkdir": true, "concurrency": 8, "timeout": "5s"}}`
	eps, err := ParseEndpoints(section(t, raw))
	if err != nil {
		t.Fatal(err)
	}
	e := eps["p"]
	if e.Port != 2222 || !e.Mkdir || e.Concurrency != 8 || time.Duration(e.Timeout) != 5*time.Second || e.Password != "ssm:/p/pw" {
		t.Errorf("ParseEndpoints = %+v", e)
	}
}

func TestParseEndpointsEmpty(t *testing.T) {
	for _, raw := range []string{"null", "{}"} {
		eps, err := ParseEndpoints(section(t, raw))
		if err != nil || len(eps) != 0 {
			t.Errorf("ParseEndpoints(%q) = %v, %v; want no endpoints", raw, eps, err)
		}
	}
}

func TestParseEndpointsRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want []string // every one must appear
	}{
		{"unknown field", `{"p": {"host": "h", "hostname": "x"}}`, []string{`unknown field "hostname"`}},
		{"an endpoint that is not an object", `{"p": []}`, []string{`sftp: endpoint "p"`}},
		{
			"every problem at once, naming the endpoint",
			`{"p": {"port": 70000, "password": "hunter2", "privateKey": "-----BEGIN", "passphrase": "pp", "directory": "in", "knownHosts": ["nonsense"], "concurrency": -1, "timeout": "-1s"}}`,
			[]string{
				`endpoint "p": host is missing`, "user is missing", "port 70000 is out of range",
				`directory "in" is not absolute`, "password must be a secret:NAME or ssm:NAME reference",
				"privateKey must be a secret", "passphrase must be a secret", "knownHosts line 1 does not parse",
				"concurrency -1 is negative", "timeout is negative",
			},
		},
		{"no credentials", `{"p": {"host": "h", "user": "u", "directory": "/d", "knownHosts": ["` + pinned + `"]}}`, []string{`endpoint "p": needs a password or a privateKey`}},
		{"no directory", `{"p": {"host": "h", "user": "u", "password": "secret:x", "knownHosts": ["` + pinned + `"]}}`, []string{"directory is missing"}},
		{"no known hosts", `{"p": {"host": "h", "user": "u", "directory": "/d", "password": "secret:x"}}`, []string{"knownHosts is missing"}},
		{"only comments in known hosts", `{"p": {"host": "h", "user": "u", "directory": "/d", "password": "secret:x", "knownHosts": ["# nothing", ""]}}`, []string{"knownHosts pins no host key"}},
		{"cert authority", `{"p": {"host": "h", "user": "u", "directory": "/d", "password": "secret:x", "knownHosts": ["@cert-authority ` + pinned + `"]}}`, []string{"@cert-authority lines are not supported"}},
		{"passphrase without key", `{"p": {"host": "h", "user": "u", "directory": "/d", "password": "secret:x", "passphrase": "secret:y", "knownHosts": ["` + pinned + `"]}}`, []string{"passphrase is given without a privateKey"}},
		{"two bad endpoints", `{"a": {"host": "h"}, "b": {"user": "u"}}`, []string{`endpoint "a": `, `endpoint "b": `}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEndpoints(section(t, tc.raw))
			if err == nil {
				t.Fatal("ParseEndpoints succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, secret := range []string{"hunter2", "-----BEGIN", `"pp"`} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes a secret value", err)
				}
			}
		})
	}
}

func TestParseKnownHosts(t *testing.T) {
	p, err := parseKnownHosts([]string{"# pinned", pinned, "@revoked " + strings.Replace(pinned, "sftp.example.com", "old", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.accepted) != 1 || len(p.revoked) != 1 {
		t.Errorf("parseKnownHosts: %d accepted, %d revoked; want 1, 1", len(p.accepted), len(p.revoked))
	}
	if got := p.algorithms(); len(got) != 1 || got[0] != "ssh-ed25519" {
		t.Errorf("algorithms = %v, want [ssh-ed25519]", got)
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"in/2026/report.csv", "report.csv"},
		{"../../etc/passwd", "passwd"},
		{"in/..", "01JTRANSFER"},
		{"in/bad\x00na\tme.txt", "badname.txt"},
		{`in\win\file.dat`, "file.dat"},
		{"", "01JTRANSFER"},
		{"in/.ferry-01JOTHER.part", "_.ferry-01JOTHER.part"},
		{"in/.ferry-notes.txt", ".ferry-notes.txt"},
	} {
		st := domain.State{ID: "01JTRANSFER", Request: domain.Requested{Source: domain.Source{Kind: "s3", Key: tc.key}}}
		if got := FileName(st); got != tc.want {
			t.Errorf("FileName(key %q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	if got, want := TempName(domain.State{ID: "01JTRANSFER"}), ".ferry-01JTRANSFER.part"; got != want {
		t.Errorf("TempName = %q, want %q", got, want)
	}
}
