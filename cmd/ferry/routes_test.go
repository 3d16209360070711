package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRoutesCheck: every problem of a routing table at once, each with
// where it is; a table that parses but names an endpoint it does not
// define is refused as the functions would refuse it at start.
func TestRoutesCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, body string
		code       int
		want       []string
	}{
		{"good", `{"routes": [{"name": "a", "match": {"prefix": "outbound/"}, "destination": {"type": "null"}}]}`, 0, []string{"1 routes, ok"}},
		{"syntax", "{\"routes\": [\n  {\"name\": \"a\",}\n]}", 1, []string{"line 2, column"}},
		{"wrong type", "{\"routes\": [\n  {\"name\": 7}\n]}", 1, []string{"line 2, column", "name"}},
		{"several problems", `{"routes": [
			{"name": "a", "match": {"prefix": "outbound/"}, "destination": {"type": "s3"}},
			{"name": "a", "match": {"prefix": "outbound/"}, "destination": {"type": "teleport"}}]}`, 1,
			[]string{"route 1 (a)", "route 2 (a)", "problem(s)"}},
		{"undefined endpoint", `{"routes": [{"name": "p", "match": {"prefix": "outbound/"}, "destination": {"type": "sftp", "endpoint": "partner"}}]}`, 1,
			[]string{`sftp endpoint "partner" is not defined`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := runCLI("routes", "check", write(c.name+".json", c.body))
			if code != c.code {
				t.Errorf("exit %d, want %d:\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
