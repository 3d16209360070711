package azblob

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// valid is a complete endpoint.
const valid = `{
	"serviceURL": "https://ferrytest.blob.core.windows.net/",
	"account": "ferrytest",
	"container": "inbound-files",
	"prefix": "from-ferry/",
	"sharedKey": "secret:ferry/azblob/ferrytest"
}`

// edited returns valid decoded, changed by fn, and encoded again.
func edited(t *testing.T, fn func(m map[string]any)) json.RawMessage {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(valid), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEndpointsDefaults(t *testing.T) {
	eps, err := ParseEndpoints(map[string]json.RawMessage{"partner": json.RawMessage(valid)})
	if err != nil {
		t.Fatalf("ParseEndpoints = %v", err)
	}
	got, want := eps["partner"], Endpoint{
		ServiceURL: "https://ferrytest.blob.core.windows.net/",
		Account:    "ferrytest",
		Container:  "inbound-files",
		Prefix:     "from-ferry/",
		SharedKey:  "secret:ferry/azblob/ferrytest",
		Timeout:    domain.Duration(DefaultTimeout),
	}
	if got != want {
		t.Errorf("endpoint = %+v, want %+v", got, want)
	}

	t.Run("given values are kept", func(t *testing.T) {
		raw := edited(t, func(m map[string]any) {
			m["timeout"] = "30s"
			delete(m, "sharedKey")
			m["sas"] = "ssm:/ferry/azblob/sas"
		})
		eps, err := ParseEndpoints(map[string]json.RawMessage{"p": raw})
		if err != nil {
			t.Fatal(err)
		}
		if e := eps["p"]; e.Timeout != domain.Duration(30*time.Second) || e.SAS != "ssm:/ferry/azblob/sas" || e.SharedKey != "" {
			t.Errorf("endpoint = %+v, want timeout 30s and the sas reference", e)
		}
	})
	t.Run("an empty section", func(t *testing.T) {
		eps, err := ParseEndpoints(nil)
		if err != nil || len(eps) != 0 {
			t.Errorf("ParseEndpoints(nil) = %v, %v; want an empty map", eps, err)
		}
	})
}

func TestParseEndpointsAccepts(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(m map[string]any)
	}{
		{"Azurite on IPv4 loopback", func(m map[string]any) {
			m["serviceURL"] = "http://127.0.0.1:10000/devstoreaccount1"
			m["account"] = "devstoreaccount1"
		}},
		{"Azurite on localhost", func(m map[string]any) { m["serviceURL"] = "http://localhost:10000/devstoreaccount1" }},
		{"Azurite on IPv6 loopback", func(m map[string]any) { m["serviceURL"] = "http://[::1]:10000/devstoreaccount1" }},
		{"no prefix", func(m map[string]any) { delete(m, "prefix") }},
		{"a prefix without a trailing slash", func(m map[string]any) { m["prefix"] = "a/b/report-" }},
		{"a SAS instead of a shared key", func(m map[string]any) { delete(m, "sharedKey"); m["sas"] = "secret:sas" }},
		{"a container name of three characters", func(m map[string]any) { m["container"] = "a-1" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseEndpoints(map[string]json.RawMessage{"p": edited(t, c.edit)}); err != nil {
				t.Errorf("ParseEndpoints = %v, want no error", err)
			}
		})
	}
}

func TestParseEndpointsRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(m map[string]any)
		want []string // each must appear in the error
	}{
		{"an unknown field", func(m map[string]any) { m["bucket"] = "x" }, []string{`endpoint "p":`, `unknown field "bucket"`}},
		{"no service URL", func(m map[string]any) { delete(m, "serviceURL") }, []string{"serviceURL: is missing"}},
		{"http to a remote host", func(m map[string]any) { m["serviceURL"] = "http://ferrytest.blob.core.windows.net/" },
			[]string{"serviceURL: http is allowed only for a loopback host", "use https"}},
		{"another scheme", func(m map[string]any) { m["serviceURL"] = "ftp://example.com/" }, []string{`serviceURL: scheme "ftp"`}},
		{"a relative URL", func(m map[string]any) { m["serviceURL"] = "/devstoreaccount1" }, []string{"serviceURL: has no host"}},
		{"a SAS in the URL", func(m map[string]any) { m["serviceURL"] = "https://a.blob.core.windows.net/?sv=1&sig=2" },
			[]string{"serviceURL: must not have a query"}},
		{"no account", func(m map[string]any) { delete(m, "account") }, []string{"account is missing"}},
		{"a bad account", func(m map[string]any) { m["account"] = "Ferry_Test" }, []string{`account "Ferry_Test"`}},
		{"no container", func(m map[string]any) { delete(m, "container") }, []string{"container is missing"}},
		{"a bad container", func(m map[string]any) { m["container"] = "Inbound--files" }, []string{`container "Inbound--files"`}},
		{"a container name too short", func(m map[string]any) { m["container"] = "ab" }, []string{`container "ab"`}},
		{"a prefix climbing out", func(m map[string]any) { m["prefix"] = "a/../b/" }, []string{`prefix: has a "." or ".." segment`}},
		{"a prefix with a leading slash", func(m map[string]any) { m["prefix"] = "/a/" }, []string{"prefix: has an empty segment"}},
		{"a prefix with a backslash", func(m map[string]any) { m["prefix"] = `a\b/` }, []string{"prefix: holds a backslash"}},
		{"a prefix with a control character", func(m map[string]any) { m["prefix"] = "a\nb/" }, []string{"prefix: holds a control character"}},
		{"no credential", func(m map[string]any) { delete(m, "sharedKey") }, []string{"one of sharedKey and sas is needed"}},
		{"both credentials", func(m map[string]any) { m["sas"] = "secret:sas" }, []string{"sharedKey and sas are both given"}},
		{"a literal shared key", func(m map[string]any) { m["sharedKey"] = "c2VjcmV0IGtleQ==" }, []string{"sharedKey must be a secret:NAME or ssm:NAME reference"}},
		{"a literal SAS", func(m map[string]any) { delete(m, "sharedKey"); m["sas"] = "sv=2024&sig=abc" }, []string{"sas must be a secret:NAME or ssm:NAME reference"}},
		{"a negative timeout", func(m map[string]any) { m["timeout"] = "-1s" }, []string{"timeout must not be negative"}},
		{"a timeout that is no duration", func(m map[string]any) { m["timeout"] = "soon" }, []string{`endpoint "p":`, "soon"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eps, err := ParseEndpoints(map[string]json.RawMessage{"p": edited(t, c.edit)})
			if err == nil {
				t.Fatalf("ParseEndpoints = %+v, want an error", eps)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, secret := range []string{"c2VjcmV0IGtleQ==", "sig=abc"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q echoes a secret value", err)
				}
			}
		})
	}
}

func TestParseEndpointsReportsEveryProblem(t *testing.T) {
	raw := map[string]json.RawMessage{
		"good": json.RawMessage(valid),
		"bad": json.RawMessage(`{"serviceURL": "http://example.com/", "account": "A", "container": "",
			"prefix": "../", "sharedKey": "key", "timeout": "-2s"}`),
		"worse": json.RawMessage(`{"serviceURL": 7}`),
	}
	_, err := ParseEndpoints(raw)
	if err == nil {
		t.Fatal("ParseEndpoints accepted bad endpoints")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range []string{
		"azblob: endpoint \"bad\": serviceURL: http is allowed only for a loopback host",
		`azblob: endpoint "bad": account "A"`,
		"azblob: endpoint \"bad\": container is missing",
		`azblob: endpoint "bad": prefix: has a "." or ".." segment`,
		"azblob: endpoint \"bad\": sharedKey must be a secret:NAME or ssm:NAME reference",
		"azblob: endpoint \"bad\": timeout must not be negative",
		"azblob: endpoint \"worse\": ",
	} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line of the error begins %q; the error:\n%s", w, err)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "endpoint good") {
			t.Errorf("the good endpoint is reported: %q", l)
		}
		if !strings.HasPrefix(l, "azblob: endpoint ") {
			t.Errorf("line %q does not name its endpoint", l)
		}
	}
}
