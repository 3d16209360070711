// Package apigw emulates, for `ferry local`, an API Gateway HTTP API with a
// Lambda authorizer in front of one Lambda integration (payload format
// 2.0): it turns each HTTP request into the events.APIGatewayV2HTTPRequest
// the Lambda gets, with the authorizer's context, and the Lambda's
// response back into HTTP, so the api handler runs locally unchanged.
//
// What it keeps of API Gateway's behaviour: a request without the identity
// source header is 401 {"message":"Unauthorized"} without calling the
// authorizer; an authorizer that says no is 403 {"message":"Forbidden"},
// one that fails is 500; authorizer answers are cached per identity value
// for the TTL; bodies over 10 MiB are 413 and binary bodies reach the
// Lambda base64-encoded; header names are lowercased and repeated values
// joined with commas. With a CORS configuration it answers preflight
// requests itself, before the authorizer, and adds the Access-Control-*
// headers to the responses (see CORS).
package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/oklog/ulid/v2"
)

// MaxBody is API Gateway's payload limit for HTTP APIs.
const MaxBody = 10 << 20

// MaxInvoke is Lambda's limit on a synchronous invocation's request
// payload; API Gateway answers 413 when the event is larger.
const MaxInvoke = 6 << 20

// Authorizer is a Lambda authorizer with the simple response format.
type Authorizer func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error)

// Handler is the integration's Lambda.
type Handler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Gateway is an http.Handler in front of Handler.
type Gateway struct {
	Authorizer Authorizer
	// IdentityHeader is the authorizer's identity source
	// ($request.header.NAME).
	IdentityHeader string
	// CacheTTL is how long an authorizer answer is reused for the same
	// identity value (API Gateway's authorizerResultTtlInSeconds); 0
	// turns the cache off.
	CacheTTL time.Duration
	Handler  Handler
	// CORS is the API's CORS configuration; nil for none.
	CORS *CORS
	Log  *slog.Logger
	Now  func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	resp    events.APIGatewayV2CustomAuthorizerSimpleResponse
	expires time.Time
}

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// ServeHTTP answers one request as API Gateway would.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.CORS != nil && preflight(r) {
		g.CORS.answerPreflight(w, r)
		return
	}
	g.CORS.decorate(w, r)
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		gatewayError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if len(body) > MaxBody {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	req := g.request(r, body)
	identity := r.Header.Get(g.IdentityHeader)
	if identity == "" {
		gatewayError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	auth, err := g.authorize(r.Context(), identity, req)
	if err != nil {
		g.Log.ErrorContext(r.Context(), "authorizer failed", "error", err)
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	if !auth.IsAuthorized {
		gatewayError(w, http.StatusForbidden, "Forbidden")
		return
	}
	req.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: auth.Context}
	if ev, _ := json.Marshal(req); len(ev) > MaxInvoke {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	resp, err := g.Handler(r.Context(), req)
	if err != nil {
		g.Log.ErrorContext(r.Context(), "integration failed", "error", err)
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	out := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if out, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
			return
		}
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Apigw-Requestid", req.RequestContext.RequestID)
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// request builds the Lambda's event for r (payload format 2.0, the
// $default route).
func (g *Gateway) request(r *http.Request, body []byte) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		query[k] = strings.Join(vs, ",")
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := g.now()
	req := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              "$default",
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:  "$default",
			Stage:     "$default",
			RequestID: ulid.Make().String(),
			Time:      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: ip, UserAgent: r.UserAgent(),
			},
		},
	}
	if len(query) == 0 {
		req.QueryStringParameters = nil
	}
	if len(body) > 0 {
		if textual(r.Header.Get("Content-Type")) {
			req.Body = string(body)
		} else {
			req.Body, req.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return req
}

// authorize asks the authorizer, or its cached answer for identity.
func (g *Gateway) authorize(ctx context.Context, identity string, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	now := g.now()
	if g.CacheTTL > 0 {
		g.mu.Lock()
		c, ok := g.cache[identity]
		g.mu.Unlock()
		if ok && now.Before(c.expires) {
			return c.resp, nil
		}
	}
	resp, err := g.Authorizer(ctx, events.APIGatewayV2CustomAuthorizerV2Request{
		Version: "2.0", Type: "REQUEST", RouteKey: req.RouteKey, RawPath: req.RawPath, RawQueryString: req.RawQueryString,
		IdentitySource: []string{identity}, Headers: req.Headers, QueryStringParameters: req.QueryStringParameters,
		RequestContext: req.RequestContext,
	})
	if err != nil {
		return resp, err
	}
	if g.CacheTTL > 0 {
		g.mu.Lock()
		if g.cache == nil {
			g.cache = map[string]cached{}
		}
		g.cache[identity] = cached{resp: resp, expires: now.Add(g.CacheTTL)}
		g.mu.Unlock()
	}
	return resp, nil
}

// textual reports whether API Gateway passes a body of this content type
// as text; any other is base64-encoded.
func textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/xml" || strings.HasSuffix(mt, "+xml") || mt == "application/x-www-form-urlencoded"
}

// gatewayError writes one of API Gateway's own error responses.
func gatewayError(w http.ResponseWriter, status int, message string) {
	b, _ := json.Marshal(map[string]string{"message": message})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = io.Copy(w, bytes.NewReader(b))
}

// Serve runs g on l until ctx is done, then lets the requests in flight
// finish (up to 10 seconds).
func Serve(ctx context.Context, l net.Listener, g *Gateway) error {
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	case err := <-errc:
		return err
	}
}
