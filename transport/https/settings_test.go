package https

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

func TestParseEndpointsDefaults(t *testing.T) {
	eps, err := ParseEndpoints(map[string]json.RawMessage{
		"plain": json.RawMessage(`{"url": "https://a.example/in"}`),
		"key":   json.RawMessage(`{"url": "https://b.example/in", "auth": {"type": "apiKey", "key": "secret:k"}}`),
		"jwt": json.RawMessage(`{"url": "https://c.example/in", "method": "put", "mode": "ranged",
			"auth": {"type": "jwt", "issuer": "ferry", "privateKey": "ssm:/k", "tokenURL": "https://c.example/token"}}`),
		"soap": json.RawMessage(`{"url": "https://d.example/ws", "soap": {"namespace": "urn:x", "operation": "Submit"}, "timeout": "30s", "maxErrorBody": "2KiB"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := eps["plain"]
	if p.Method != "POST" || p.Mode != ModeWhole || p.Auth.Type != AuthNone || time.Duration(p.Timeout) != DefaultTimeout || p.MaxErrorBody != DefaultMaxErrorBody || p.FollowRedirects {
		t.Errorf("plain endpoint defaults: %+v", p)
	}
	if got := eps["key"].Auth.Header; got != DefaultAPIKeyHeader {
		t.Errorf("apiKey header %q, want %q", got, DefaultAPIKeyHeader)
	}
	j := eps["jwt"]
	if j.Method != "PUT" || j.Mode != ModeRanged || j.Auth.Subject != "ferry" || j.Auth.Audience != "https://c.example/token" {
		t.Errorf("jwt endpoint: %+v", j)
	}
	s := eps["soap"]
	if s.SOAP == nil || s.SOAP.Version != "1.1" || time.Duration(s.Timeout) != 30*time.Second || s.MaxErrorBody != 2048 {
		t.Errorf("soap endpoint: %+v %+v", s, s.SOAP)
	}
}

func TestParseEndpointsReportsEveryProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want []string // each must appear in the error
	}{
		{"unknown field", `{"url": "https://a.example", "colour": "red"}`, []string{`endpoint "bad":`, `unknown field "colour"`}},
		{"url missing", `{}`, []string{"url: missing"}},
		{"plain http", `{"url": "http://a.example"}`, []string{`url: scheme "http": want https`}},
		{"user info", `{"url": "https://u:p@a.example"}`, []string{"url: must not carry user info"}},
		{"method, mode", `{"url": "https://a.example", "method": "GET", "mode": "parts"}`, []string{`method: "GET" is not POST or PUT`, `mode: "parts"`}},
		{"auth type", `{"url": "https://a.example", "auth": {"type": "kerberos"}}`, []string{`auth.type: "kerberos" is not one of`}},
		{"apiKey literal key", `{"url": "https://a.example", "auth": {"type": "apiKey", "key": "hunter2"}}`, []string{"auth.key: must be a secret:NAME"}},
		{"basic missing", `{"url": "https://a.example", "auth": {"type": "basic"}}`, []string{"auth.username: required", "auth.password: required"}},
		{"oauth2 missing", `{"url": "https://a.example", "auth": {"type": "oauth2", "tokenURL": "http://id.example"}}`,
			[]string{"auth.clientId: required", "auth.clientSecret: required", `auth.tokenURL: scheme "http"`}},
		{"jwt missing", `{"url": "https://a.example", "auth": {"type": "jwt"}}`, []string{"auth.issuer: required", "auth.audience: required", "auth.privateKey: required"}},
		{"field of another type", `{"url": "https://a.example", "auth": {"type": "basic", "username": "u", "password": "secret:p", "clientId": "c"}}`,
			[]string{"auth.clientId: does not apply to auth type basic"}},
		{"headers", `{"url": "https://a.example", "auth": {"type": "basic", "username": "u", "password": "secret:p"},
			"headers": {"Content-Length": "1", "Authorization": "x", "bad name": "v", "X-Ok": "a\nb"}}`,
			[]string{"headers: Content-Length is set by the transport", "headers: Authorization is set by auth basic", `headers: "bad name" is not a valid header name`, "headers: X-Ok has a control character"}},
		{"tls refs", `{"url": "https://a.example", "caBundle": "-----BEGIN", "clientCert": "secret:c"}`,
			[]string{"caBundle: must be a secret:NAME", "clientCert, clientKey: give both or neither"}},
		{"limits", `{"url": "https://a.example", "timeout": "-1s", "maxErrorBody": "1MiB"}`, []string{"timeout: must be positive", "maxErrorBody: must be between"}},
		{"soap", `{"url": "https://a.example", "mode": "ranged", "soap": {"version": "2.0", "namespace": "", "operation": "a b", "action": "x\"y"}}`,
			[]string{`soap.version: "2.0"`, `soap.operation: "a b"`, "soap.namespace: want an absolute URI", "soap.action: must not hold quotes", `soap: needs mode "whole"`}},
		{"probe", `{"url": "https://a.example", "probe": {"method": "POST", "url": "http://a.example/health"}}`,
			[]string{`probe.method: "POST" is not HEAD, GET or OPTIONS`, `probe.url: scheme "http": want https`}},
		{"soap headers", `{"url": "https://a.example", "soap": {"namespace": "urn:x", "operation": "Op"}, "headers": {"SOAPAction": "x"}}`,
			[]string{"headers: SOAPAction is set by soap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEndpoints(map[string]json.RawMessage{"bad": json.RawMessage(tc.raw)})
			if err == nil {
				t.Fatal("ParseEndpoints succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), `https: endpoint "bad": `) {
				t.Errorf("error %q does not name the endpoint", err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "u:p") {
				t.Errorf("error %q echoes a secret", err)
			}
		})
	}
}

func TestParseEndpointsNamesEachEndpoint(t *testing.T) {
	_, err := ParseEndpoints(map[string]json.RawMessage{
		"one": json.RawMessage(`{"url": "http://a.example"}`),
		"two": json.RawMessage(`{"url": "https://b.example", "mode": "x"}`),
		"ok":  json.RawMessage(`{"url": "https://c.example"}`),
	})
	got := err.Error()
	for _, w := range []string{`https: endpoint "one": url:`, `https: endpoint "two": mode:`} {
		if !strings.Contains(got, w) {
			t.Errorf("error\n%s\ndoes not say %q", got, w)
		}
	}
	if strings.Contains(got, "endpoint ok") {
		t.Errorf("error\n%s\nblames a valid endpoint", got)
	}
}

func TestEveryCredentialMustBeAReference(t *testing.T) {
	for _, tc := range []struct{ field, auth string }{
		{"key", `{"type": "apiKey", "key": "v"}`},
		{"password", `{"type": "basic", "username": "u", "password": "v"}`},
		{"clientSecret", `{"type": "oauth2", "tokenURL": "https://t.example", "clientId": "c", "clientSecret": "v"}`},
		{"privateKey", `{"type": "jwt", "issuer": "i", "audience": "a", "privateKey": "v"}`},
	} {
		t.Run(tc.field, func(t *testing.T) {
			_, err := ParseEndpoints(map[string]json.RawMessage{"e": json.RawMessage(`{"url": "https://a.example", "auth": ` + tc.auth + `}`)})
			if err == nil || !strings.Contains(err.Error(), "auth."+tc.field+": must be a secret:NAME") {
				t.Errorf("error %v, want auth.%s refused as a value", err, tc.field)
			}
		})
		t.Run(tc.field+" as a reference", func(t *testing.T) {
			ref := strings.Replace(tc.auth, `"v"`, `"secret:v"`, 1)
			if _, err := ParseEndpoints(map[string]json.RawMessage{"e": json.RawMessage(`{"url": "https://a.example", "auth": ` + ref + `}`)}); err != nil {
				t.Errorf("ParseEndpoints: %v", err)
			}
		})
	}
	if !domain.IsSecretRef("ssm:/x") {
		t.Fatal("ssm references are secret references")
	}
}

// TestPackageExample parses the endpoint the package comment shows.
func TestPackageExample(t *testing.T) {
	section := `{
	  "lab": {
	    "url": "https://lab.example.org/api/reports",
	    "method": "POST",
	    "mode": "whole",
	    "auth": {"type": "oauth2", "tokenURL": "https://id.example.org/token",
	             "clientId": "ferry", "clientSecret": "secret:lab/client", "scope": "upload"},
	    "headers": {"X-Org": "ferry", "X-Tenant-Key": "ssm:/lab/tenant"},
	    "caBundle": "secret:lab/ca", "clientCert": "secret:lab/cert", "clientKey": "secret:lab/key",
	    "timeout": "5m", "maxErrorBody": "1KiB"
	  }
	}`
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(section), &raw); err != nil {
		t.Fatal(err)
	}
	eps, err := ParseEndpoints(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ep := eps["lab"]; ep.Auth.ClientID != "ferry" || time.Duration(ep.Timeout) != 5*time.Minute || ep.MaxErrorBody != 1024 {
		t.Errorf("lab endpoint %+v", ep)
	}
}
