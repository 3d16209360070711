package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler(Config{API: "http://127.0.0.1:4572", Live: "ws://127.0.0.1:4573"})
	get := func(method, path string) (*http.Response, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Result(), string(b)
	}
	t.Run("config.json names the APIs", func(t *testing.T) {
		r, body := get("GET", "/config.json")
		if want := `{"api":"http://127.0.0.1:4572","live":"ws://127.0.0.1:4573"}`; r.StatusCode != 200 || body != want {
			t.Errorf("got %d %s, want %s", r.StatusCode, body, want)
		}
	})
	t.Run("the files are served, index.html at the root", func(t *testing.T) {
		for path, want := range map[string]string{"/": "<title>ferry console</title>", "/app.js": "sessionStorage", "/style.css": ":focus-visible"} {
			r, body := get("GET", path)
			if r.StatusCode != 200 || !strings.Contains(body, want) {
				t.Errorf("GET %s: %d, want a body with %q", path, r.StatusCode, want)
			}
		}
	})
	t.Run("a content security policy that allows the APIs only", func(t *testing.T) {
		r, _ := get("GET", "/")
		csp := r.Header.Get("Content-Security-Policy")
		for _, want := range []string{"connect-src 'self' http://127.0.0.1:4572 ws://127.0.0.1:4573;", "script-src 'self';", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
	})
	t.Run("not a file", func(t *testing.T) {
		if r, _ := get("GET", "/nope.js"); r.StatusCode != 404 {
			t.Errorf("GET /nope.js: %d, want 404", r.StatusCode)
		}
		if r, _ := get("POST", "/config.json"); r.StatusCode != 405 {
			t.Errorf("POST: %d, want 405", r.StatusCode)
		}
	})
}

func TestCSP(t *testing.T) {
	got := CSP("https://abc.execute-api.eu-west-2.amazonaws.com/", "wss://def.execute-api.eu-west-2.amazonaws.com/live", "")
	if !strings.Contains(got, "connect-src 'self' https://abc.execute-api.eu-west-2.amazonaws.com wss://def.execute-api.eu-west-2.amazonaws.com;") {
		t.Errorf("CSP = %q: the paths should be dropped", got)
	}
}
