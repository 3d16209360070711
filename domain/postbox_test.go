package domain

import "testing"

func TestPostboxKey(t *testing.T) {
	const id = "01JNZ0AAAAAAAAAAAAAAAAAAAA"
	key := PostboxKey("org-a", id, "report.csv")
	if key != "outbound/postbox/org-a/"+id+"/report.csv" {
		t.Fatalf("PostboxKey = %s", key)
	}
	if party, got, ok := ParsePostboxKey(key); !ok || party != "org-a" || got != id {
		t.Errorf("ParsePostboxKey(%s) = %s, %s, %t", key, party, got, ok)
	}
	for _, k := range []string{
		"outbound/report.csv",
		"outbound/postbox/org-a/report.csv",
		"outbound/postbox/org-a/not-an-id/report.csv",
		"outbound/postbox/-org/" + id + "/report.csv",
		"outbound/postbox/org-a/" + id + "/",
		"inbound/postbox/org-a/" + id + "/report.csv",
	} {
		if _, _, ok := ParsePostboxKey(k); ok {
			t.Errorf("ParsePostboxKey(%s) took it for a postbox key", k)
		}
	}
	for name, want := range map[string]bool{"org-a": true, "X26ABC1": true, "a@b.nhs.uk": true, "": false, "-a": false, "a/b": false, "a b": false} {
		if ValidParty(name) != want {
			t.Errorf("ValidParty(%q) = %t", name, !want)
		}
	}
}
