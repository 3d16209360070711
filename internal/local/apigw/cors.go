package apigw

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORS is an HTTP API's CorsConfiguration. With it, API Gateway answers
// a preflight request (OPTIONS with Origin and
// Access-Control-Request-Method) itself, without the authorizer or the
// integration, and adds Access-Control-Allow-Origin (and the exposed
// headers, and credentials if allowed) to every response to an allowed
// origin; a disallowed origin gets no Access-Control-* headers, so the
// browser refuses the response.
type CORS struct {
	// AllowOrigins are origins (scheme://host[:port]) or "*".
	AllowOrigins []string
	// AllowHeaders and AllowMethods answer preflights; "*" allows any.
	AllowHeaders, AllowMethods []string
	ExposeHeaders              []string
	// MaxAge is how long a browser may cache a preflight's answer; 0
	// sends none.
	MaxAge           time.Duration
	AllowCredentials bool
}

// allowed returns the Access-Control-Allow-Origin value for origin, ""
// if it is not allowed.
func (c *CORS) allowed(origin string) string {
	if c == nil || origin == "" {
		return ""
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				return origin
			}
			return "*"
		}
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return origin
		}
	}
	return ""
}

// preflight reports whether r is a CORS preflight request.
func preflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// answerPreflight answers a preflight request as API Gateway does: 204,
// with the Access-Control-* headers when the origin is allowed.
func (c *CORS) answerPreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if allow := c.allowed(r.Header.Get("Origin")); allow != "" && c.allowsMethod(r.Header.Get("Access-Control-Request-Method")) {
		h.Set("Access-Control-Allow-Origin", allow)
		h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowMethods, ","))
		if len(c.AllowHeaders) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowHeaders, ","))
		}
		if c.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.MaxAge/time.Second)))
		}
		if c.AllowCredentials {
			h.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *CORS) allowsMethod(m string) bool {
	return slices.ContainsFunc(c.AllowMethods, func(a string) bool { return a == "*" || strings.EqualFold(a, m) })
}

// decorate adds the CORS headers of a response to an actual request from
// an allowed origin.
func (c *CORS) decorate(w http.ResponseWriter, r *http.Request) {
	if c == nil {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	allow := c.allowed(r.Header.Get("Origin"))
	if allow == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ","))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
