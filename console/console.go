// Package console is ferry's web console: static files (plain HTML, CSS
// and ES modules, no build step) that sign in with an API key, query the
// history, show a transfer's timeline live over the WebSocket API and
// replay failed transfers. It reads the HTTP API's and the WebSocket API's
// URLs from config.json beside it: ferry local serves one made for it
// (Handler), a deployment writes one into the console's bucket
// (scripts/deploy-console.sh).
package console

import (
	"embed"
	"encoding/json"
	"net/http"
	"strings"
)

// Files are the console's files, served as they are.
//
//go:embed *.html *.js *.css
var Files embed.FS

// Config is config.json: where the console finds the APIs.
type Config struct {
	// API is the HTTP API's base URL, e.g. http://127.0.0.1:4572.
	API string `json:"api"`
	// Live is the WebSocket API's URL, e.g. ws://127.0.0.1:4573.
	Live string `json:"live"`
}

// Handler serves Files and /config.json with cfg, with the headers the
// deployed console's CloudFront response headers policy sets: a content
// security policy that lets the page talk only to its own origin and the
// two APIs, no framing, no sniffing, no referrer.
func Handler(cfg Config) http.Handler {
	files := http.FileServerFS(Files)
	conf, _ := json.Marshal(cfg)
	csp := CSP(cfg.API, cfg.Live)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/config.json" {
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			_, _ = w.Write(conf)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// CSP is the console's content security policy, allowing connections to
// the given origins (URLs; their paths are dropped) besides its own.
func CSP(connect ...string) string {
	src := []string{"'self'"}
	for _, u := range connect {
		if i := strings.Index(u, "://"); i >= 0 {
			if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
				u = u[:i+3+j]
			}
		}
		if u != "" {
			src = append(src, u)
		}
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + strings.Join(src, " ") +
		"; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}
