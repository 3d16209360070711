package domain

import (
	"strings"
	"testing"
	"time"
)

func TestEmailKey(t *testing.T) {
	const id = "01JNZ0AAAAAAAAAAAAAAAAAAAA"
	key := EmailKey(id, "report.csv")
	if key != "outbound/email/"+id+"/report.csv" {
		t.Fatalf("EmailKey = %s", key)
	}
	if got, ok := ParseEmailKey(key); !ok || got != id {
		t.Errorf("ParseEmailKey(%s) = %s, %t", key, got, ok)
	}
	for _, k := range []string{
		"outbound/report.csv",
		"outbound/email/report.csv",
		"outbound/email/not-an-id/report.csv",
		"outbound/email/" + id + "/",
		"outbound/email/" + id + "/a/b.csv",
		"email/" + id + "/report.csv",
	} {
		if _, ok := ParseEmailKey(k); ok {
			t.Errorf("ParseEmailKey(%s) took it for an attachment's key", k)
		}
	}
}

func TestEmailTransferID(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	a := EmailTransferID("msg-1", "Files@In.Example", 1, at)
	if a != EmailTransferID("msg-1", "files@in.example", 1, at) {
		t.Error("the recipient's case changes the id")
	}
	for _, other := range []string{
		EmailTransferID("msg-1", "files@in.example", 2, at),
		EmailTransferID("msg-1", "other@in.example", 1, at),
		EmailTransferID("msg-2", "files@in.example", 1, at),
	} {
		if other == a {
			t.Errorf("two attachments share id %s", a)
		}
	}
	if !ValidID(a) {
		t.Errorf("%s is not a transfer id", a)
	}
}

func TestEmailPolicyAllows(t *testing.T) {
	p := EmailPolicy{AllowedSenders: []string{"partner.example", "@lab.example", "Ann@Other.Example"}}
	for addr, want := range map[string]bool{
		"bob@partner.example":      true,
		"BOB@PARTNER.EXAMPLE":      true,
		"x@lab.example":            true,
		"ann@other.example":        true,
		"bob@other.example":        false,
		"bob@sub.partner.example":  false,
		"bob@partner.example.evil": false,
		"partner.example":          false,
		"":                         false,
	} {
		if got := p.Allows(addr); got != want {
			t.Errorf("Allows(%q) = %t, want %t", addr, got, want)
		}
	}
	if !(EmailPolicy{}).Allows("anyone@anywhere.example") {
		t.Error("a policy without allowedSenders refuses a sender")
	}
}

func TestEmailPolicyCheck(t *testing.T) {
	pass := Verdicts{"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS"}
	with := func(name, status string) Verdicts {
		v := Verdicts{}
		for k, s := range pass {
			v[k] = s
		}
		v[name] = status
		return v
	}
	tests := []struct {
		name    string
		policy  EmailPolicy
		v       Verdicts
		failing string // the verdict named in the reason, "" for none
	}{
		{"all pass", EmailPolicy{}, pass, ""},
		{"virus fails by default", EmailPolicy{}, with("virus", "FAIL"), "virus"},
		{"virus gray fails by default", EmailPolicy{}, with("virus", "GRAY"), "virus"},
		{"dmarc fail fails by default", EmailPolicy{}, with("dmarc", "FAIL"), "dmarc"},
		{"dmarc gray passes by default", EmailPolicy{}, with("dmarc", "GRAY"), ""},
		{"spf fail passes by default", EmailPolicy{}, with("spf", "FAIL"), ""},
		{"spam fail passes by default", EmailPolicy{}, with("spam", "FAIL"), ""},
		{"spf required", EmailPolicy{Verdicts: map[string]string{"spf": RulePass}}, with("spf", "GRAY"), "spf"},
		{"dkim notFail", EmailPolicy{Verdicts: map[string]string{"dkim": RuleNotFail}}, with("dkim", "FAIL"), "dkim"},
		{"virus waived", EmailPolicy{Verdicts: map[string]string{"virus": RuleAny}}, with("virus", "FAIL"), ""},
		{"missing virus", EmailPolicy{}, Verdicts{"dmarc": "PASS"}, "virus"},
		{"verdict case", EmailPolicy{}, Verdicts{"virus": "pass", "dmarc": "pass"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.v)
			switch {
			case tt.failing == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case tt.failing != "" && err == nil:
				t.Fatalf("Check = nil, want a failure of %s", tt.failing)
			case err != nil && (!strings.HasPrefix(err.Message, tt.failing+" verdict") || err.Code != "VERDICT_FAILED" || err.Kind != KindInvalid):
				t.Fatalf("Check = %+v, want VERDICT_FAILED naming %s", err, tt.failing)
			}
		})
	}
}

func TestEmailRoutes(t *testing.T) {
	rs, err := ParseRoutes([]byte(`{"routes": [
	  {"name": "lab", "match": {"emailTo": "Files@In.Example"}, "destination": {"type": "null"},
	   "email": {"allowedSenders": ["lab.example"], "body": true, "verdicts": {"spf": "pass"}, "maxSize": "1MiB"}},
	  {"name": "in-domain", "match": {"emailTo": "@in.example"}, "destination": {"type": "null"}},
	  {"name": "uploads", "match": {"prefix": "outbound/"}, "destination": {"type": "null"}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		u    Upload
		want string
	}{
		{Upload{Key: "outbound/email/x/a.csv", EmailTo: "files@in.example"}, "lab"},
		{Upload{Key: "outbound/email/x/a.csv", EmailTo: "other@IN.example"}, "in-domain"},
		{Upload{Key: "outbound/email/x/a.csv", EmailTo: "files@elsewhere.example"}, "uploads"},
		{Upload{Key: "outbound/a.csv"}, "uploads"},
	} {
		r, ok := rs.Find(tt.u)
		if !ok || r.Name != tt.want {
			t.Errorf("Find(%+v) = %s, %t, want %s", tt.u, r.Name, ok, tt.want)
		}
	}
	if p := rs.Routes[0].EmailPolicy(); !p.Body || p.MaxMessage() != 1<<20 {
		t.Errorf("route lab's policy = %+v", p)
	}
	if got := rs.Routes[1].EmailPolicy().MaxMessage(); got != DefaultMaxEmailSize {
		t.Errorf("default MaxMessage = %d", got)
	}

	_, err = ParseRoutes([]byte(`{"routes": [{"name": "bad", "destination": {"type": "null"},
	  "email": {"allowedSenders": ["@"], "verdicts": {"virus": "maybe", "dnssec": "pass"}}}]}`))
	for _, want := range []string{"empty address", `rule "maybe"`, `unknown verdict "dnssec"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRoutes of a bad email policy: %v, want it to say %s", err, want)
		}
	}
}
