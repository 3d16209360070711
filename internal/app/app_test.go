package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/advance"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/functions/health"
)

func TestWithDefaultsBudget(t *testing.T) {
	if got := (Config{}).WithDefaults().Budget; got != advance.DefaultBudget {
		t.Errorf("empty config's budget = %+v, want advance.DefaultBudget %+v", got, advance.DefaultBudget)
	}
	c := Config{Budget: advance.Budget{MaxChunks: 3}}.WithDefaults()
	if want := (advance.Budget{MaxChunks: 3, MaxTime: advance.DefaultBudget.MaxTime}); c.Budget != want {
		t.Errorf("budget = %+v, want %+v (the set field kept)", c.Budget, want)
	}
	if d := Defaults(); d.Budget != (advance.Budget{MaxChunks: 8, MaxTime: 2 * time.Minute}) {
		t.Errorf("Defaults().Budget = %+v, want 8 chunks or 2 minutes", d.Budget)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"FERRY_TABLE":             "t",
		"FERRY_EVENT_BUS":         "b",
		"FERRY_EVENT_SOURCE":      "s",
		"FERRY_RETRY_QUEUE_URL":   "http://q",
		"FERRY_ROUTES":            "ssm:/r",
		"FERRY_S3_PATH_STYLE":     "true",
		"_HANDLER":                "advance",
		"FERRY_MESH_POLL_MINUTES": "5",
		"FERRY_METRICS_NAMESPACE": "ferry/prod",
		"FERRY_OIDC_ISSUER":       "https://id.example",
		"FERRY_OIDC_AUDIENCE":     "ferry",
		"FERRY_OIDC_PARTY_CLAIM":  "client_id",
		"FERRY_OIDC_ROLE_CLAIM":   "roles",
	}
	got := ConfigFromEnv(func(k string) string { return env[k] })
	want := Config{Table: "t", EventBus: "b", EventSource: "s", RetryQueueURL: "http://q", Routes: "ssm:/r", S3PathStyle: true, Handler: "advance", MESHPollMinutes: 5, MetricsNamespace: "ferry/prod",
		OIDC: authorizer.OIDC{Issuer: "https://id.example", Audience: "ferry", PartyClaim: "client_id", RoleClaim: "roles"}}
	if got != want {
		t.Errorf("ConfigFromEnv = %+v, want %+v", got, want)
	}
	env["FERRY_S3_PATH_STYLE"] = "yes"
	if ConfigFromEnv(func(k string) string { return env[k] }).S3PathStyle {
		t.Error(`FERRY_S3_PATH_STYLE=yes turned path style on; only "true" should`)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	env["FERRY_OIDC_ISSUER"] = "http://id.example"
	if err := ConfigFromEnv(func(k string) string { return env[k] }).Validate(); err == nil || !strings.Contains(err.Error(), "FERRY_OIDC_ISSUER") {
		t.Errorf("a plain-http issuer: Validate = %v, want it refused", err)
	}
	if d := (Config{}).WithDefaults().OIDC; d.Issuer != "" || d.PartyClaim != authorizer.DefaultPartyClaim || d.RoleClaim != authorizer.DefaultRoleClaim {
		t.Errorf("default OIDC = %+v, want no issuer and the default claims", d)
	}
	for _, v := range []string{"5m", "0", "-2", "x"} {
		env["FERRY_MESH_POLL_MINUTES"] = v
		err := ConfigFromEnv(func(k string) string { return env[k] }).Validate()
		if err == nil || !strings.Contains(err.Error(), "FERRY_MESH_POLL_MINUTES") {
			t.Errorf("FERRY_MESH_POLL_MINUTES=%s: Validate = %v, want it refused", v, err)
		}
	}
}

func TestCheckTransports(t *testing.T) {
	transports := map[string]advance.Transport{"s3": nil, "null": nil}
	rs := domain.Routes{Routes: []domain.Route{
		{Name: "ok", Destination: domain.Destination{Type: "s3", Bucket: "b"}},
		{Name: "blob", Destination: domain.Destination{Type: "azblob", Endpoint: "lake"}},
		{Name: "mesh", Destination: domain.Destination{Type: "mesh"}},
	}}
	err := checkTransports(rs, transports)
	for _, want := range []string{"route 2 (blob): no azblob transport is configured", "route 3 (mesh): a mesh destination needs the routing file's mesh section"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkTransports = %v, want it to say %q", err, want)
		}
	}
	rs.MESH = []byte(`{}`)
	transports["azblob"] = nil
	if err := checkTransports(rs, transports); err != nil {
		t.Errorf("every destination has its transport: %v", err)
	}
}

// TestEndpointTransportsReportEveryProblem: bad endpoints of several
// transports are all named when the routing table loads.
func TestEndpointTransportsReportEveryProblem(t *testing.T) {
	rs := domain.Routes{
		SFTP:   map[string]json.RawMessage{"partner": json.RawMessage(`{"host": "h", "user": "u", "directory": "/in"}`)},
		HTTPS:  map[string]json.RawMessage{"lab": json.RawMessage(`{"url": "http://lab.example"}`)},
		Azblob: map[string]json.RawMessage{"lake": json.RawMessage(`{"account": "acct", "container": "c", "sharedKey": "plain-key"}`)},
		Email:  map[string]json.RawMessage{"relay": json.RawMessage(`{"host": "smtp.example", "from": "a@x.example", "to": ["b@y.example"], "password": "plain"}`)},
	}
	transports := map[string]advance.Transport{}
	err := endpointTransports(transports, rs, nil, nil, nil)
	for _, want := range []string{`sftp: endpoint "partner"`, `https: endpoint "lab"`, `azblob: endpoint "lake"`, `email: endpoint "relay"`, "knownHosts", "sharedKey"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if len(transports) != 0 {
		t.Errorf("transports %v built from bad settings", transports)
	}
}

func TestRefsOfNamesEachSecretOfAPartnersSettings(t *testing.T) {
	routes, err := domain.ParseRoutes([]byte(`{
	  "routes": [{"name": "r", "match": {"prefix": "outbound/"}, "destination": {"type": "sftp", "endpoint": "p"}}],
	  "sftp": {"p": {"host": "h", "user": "u", "directory": "/in", "privateKey": "secret:ferry/p/key", "password": "ssm:/ferry/p/pw", "knownHosts": ["h ssh-ed25519 AAAA"]}},
	  "mesh": {"url": "ssm:/ferry/mesh/url", "sharedKey": "secret:ferry/mesh/shared", "mailboxes": [
	    {"id": "X26ABC1", "password": "secret:ferry/mesh/one"}, {"id": "X26ABC2", "password": "secret:ferry/mesh/two"}]}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(refsOf(routes, health.Target{Type: "sftp", Name: "p"}))
	if want := "[{privateKey secret:ferry/p/key}]"; got != want {
		t.Errorf("sftp p: %s, want %s (ssm parameters carry no tags ferry reads)", got, want)
	}
	got = fmt.Sprint(refsOf(routes, health.Target{Type: "mesh", Name: "X26ABC2"}))
	if want := "[{mailbox X26ABC2.password secret:ferry/mesh/two} {sharedKey secret:ferry/mesh/shared}]"; got != want {
		t.Errorf("mesh X26ABC2: %s, want %s", got, want)
	}
}

func TestParseExpiryTakesATimeOrADate(t *testing.T) {
	for in, want := range map[string]string{"2027-03-31": "2027-03-31T00:00:00Z", " 2027-03-31T12:00:00+01:00 ": "2027-03-31T11:00:00Z"} {
		got, err := parseExpiry(in)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("parseExpiry(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseExpiry("next March"); err == nil {
		t.Error("parseExpiry took \"next March\"")
	}
}
