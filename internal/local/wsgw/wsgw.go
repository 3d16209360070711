// Package wsgw emulates, for `ferry local`, an API Gateway WebSocket API
// with a REQUEST authorizer on $connect and one Lambda integration for
// every route, and the stage's @connections management API, on one
// loopback port:
//
//   - GET / upgrades to a WebSocket. The identity source (a query
//     parameter) missing is 401 and the authorizer is not called; a Deny
//     is 403, an authorizer error 500; then $connect runs, and a non-2xx
//     answer refuses the connection with its status.
//   - Each text frame is routed by its JSON action field
//     ($request.body.action) to that route if the API has it, else to
//     $default; the Lambda's response body, if any, is sent back as a
//     frame (the routes' route responses). A frame over 128 KiB closes the
//     connection (1009), as API Gateway does.
//   - Closing, by either side, runs $disconnect.
//   - POST /@connections/{id} sends its body to the connection as a frame;
//     DELETE closes it; GET describes it; a connection that is not open
//     answers 410 GoneException.
//
// Every route's event is the events.APIGatewayWebsocketProxyRequest the
// Lambda gets in AWS, with the authorizer's context, so the handlers run
// unchanged. Like API Gateway, it checks no Origin: the token is the
// credential. Requests to the management API are not checked for a
// signature (as moto checks none).
package wsgw

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
	"github.com/oklog/ulid/v2"
)

// MaxFrame is API Gateway's WebSocket message size limit.
const MaxFrame = 128 << 10

// Authorizer is the $connect route's REQUEST authorizer.
type Authorizer func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error)

// Handler is the routes' Lambda.
type Handler func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// Gateway is the emulated WebSocket API and its management API.
type Gateway struct {
	Authorizer Authorizer
	// IdentityQuery is the authorizer's identity source
	// (route.request.querystring.NAME).
	IdentityQuery string
	Handler       Handler
	// Routes are the API's route keys besides $connect, $disconnect and
	// $default.
	Routes []string
	// APIID, Stage and MethodARN describe the API to the Lambdas; MethodARN
	// is the $connect route's execute-api ARN.
	APIID, Stage, MethodARN string
	Log                     *slog.Logger

	mu    sync.Mutex
	conns map[string]*conn
}

type conn struct {
	ws          *websocket.Conn
	authorizer  map[string]any
	connectedAt time.Time
	sourceIP    string
}

// ServeHTTP answers the upgrade and the management API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, "/@connections/"); ok {
		g.manage(w, r, id)
		return
	}
	if r.URL.Path != "/" {
		message(w, http.StatusNotFound, "Not Found")
		return
	}
	g.connect(w, r)
}

func message(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func newConnectionID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b) // with '=', as API Gateway's are
}

func (g *Gateway) connect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := r.URL.Query().Get(g.IdentityQuery)
	if token == "" {
		message(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	id := newConnectionID()
	query := map[string]string{}
	for k, v := range r.URL.Query() {
		query[k] = strings.Join(v, ",")
	}
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[k] = strings.Join(v, ",")
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	auth, err := g.Authorizer(ctx, events.APIGatewayCustomAuthorizerRequestTypeRequest{
		Type: "REQUEST", MethodArn: g.MethodARN, Headers: headers, QueryStringParameters: query,
		RequestContext: events.APIGatewayCustomAuthorizerRequestTypeRequestContext{
			Stage: g.Stage, APIID: g.APIID, RequestID: ulid.Make().String(),
			Identity: events.APIGatewayCustomAuthorizerRequestTypeRequestIdentity{SourceIP: ip},
		},
	})
	if err != nil {
		g.Log.Error("authorizer failed", "error", err)
		message(w, http.StatusInternalServerError, "Internal server error")
		return
	}
	if !allows(auth) {
		message(w, http.StatusForbidden, "Forbidden")
		return
	}
	ctxMap := map[string]any{"principalId": auth.PrincipalID}
	for k, v := range auth.Context {
		ctxMap[k] = v
	}
	c := &conn{authorizer: ctxMap, connectedAt: time.Now(), sourceIP: ip}
	resp, err := g.Handler(ctx, g.event(id, c, "$connect", "CONNECT", "", headers, query))
	if err != nil || resp.StatusCode < 200 || resp.StatusCode > 299 {
		status := resp.StatusCode
		if err != nil || status == 0 {
			status = http.StatusInternalServerError
		}
		message(w, status, http.StatusText(status))
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		g.disconnect(id, c)
		return
	}
	ws.SetReadLimit(MaxFrame)
	c.ws = ws
	g.mu.Lock()
	if g.conns == nil {
		g.conns = map[string]*conn{}
	}
	g.conns[id] = c
	g.mu.Unlock()
	defer g.disconnect(id, c)
	// The connection outlives the upgrade request's context.
	g.read(context.WithoutCancel(ctx), id, c)
}

// allows reports whether an authorizer's policy allows the connection.
func allows(a events.APIGatewayCustomAuthorizerResponse) bool {
	allowed := false
	for _, s := range a.PolicyDocument.Statement {
		if s.Effect == "Deny" {
			return false
		}
		allowed = allowed || s.Effect == "Allow"
	}
	return allowed
}

func (g *Gateway) read(ctx context.Context, id string, c *conn) {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return // closed, by either side, or a frame over MaxFrame (1009)
		}
		if typ != websocket.MessageText {
			continue
		}
		route := "$default"
		var sel struct {
			Action string `json:"action"`
		}
		if json.Unmarshal(data, &sel) == nil && slices.Contains(g.Routes, sel.Action) {
			route = sel.Action
		}
		resp, err := g.Handler(ctx, g.event(id, c, route, "MESSAGE", string(data), nil, nil))
		body := resp.Body
		if err != nil {
			g.Log.Error("route failed", "route", route, "connection", id, "error", err)
			b, _ := json.Marshal(map[string]string{"message": "Internal server error", "connectionId": id})
			body = string(b)
		}
		if body != "" {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.ws.Write(wctx, websocket.MessageText, []byte(body))
			cancel()
			if err != nil {
				return
			}
		}
	}
}

func (g *Gateway) disconnect(id string, c *conn) {
	g.mu.Lock()
	delete(g.conns, id)
	g.mu.Unlock()
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
	if _, err := g.Handler(context.Background(), g.event(id, c, "$disconnect", "DISCONNECT", "", nil, nil)); err != nil {
		g.Log.Error("$disconnect failed", "connection", id, "error", err)
	}
}

func (g *Gateway) event(id string, c *conn, route, typ, body string, headers, query map[string]string) events.APIGatewayWebsocketProxyRequest {
	now := time.Now()
	return events.APIGatewayWebsocketProxyRequest{
		Headers: headers, QueryStringParameters: query, Body: body,
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			RouteKey: route, EventType: typ, ConnectionID: id, Authorizer: c.authorizer,
			Stage: g.Stage, APIID: g.APIID, RequestID: ulid.Make().String(), MessageDirection: "IN",
			ConnectedAt: c.connectedAt.UnixMilli(), RequestTimeEpoch: now.UnixMilli(),
			Identity: events.APIGatewayRequestIdentity{SourceIP: c.sourceIP},
		},
	}
}

// manage is the @connections management API.
func (g *Gateway) manage(w http.ResponseWriter, r *http.Request, id string) {
	g.mu.Lock()
	c := g.conns[id]
	g.mu.Unlock()
	if c == nil {
		w.Header().Set("X-Amzn-Errortype", "GoneException")
		message(w, http.StatusGone, "")
		return
	}
	switch r.Method {
	case http.MethodPost:
		data, err := io.ReadAll(io.LimitReader(r.Body, MaxFrame+1))
		if err != nil || len(data) > MaxFrame {
			w.Header().Set("X-Amzn-Errortype", "PayloadTooLargeException")
			message(w, http.StatusRequestEntityTooLarge, "Message too long")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				message(w, http.StatusInternalServerError, "the connection did not take the frame in time")
				return
			}
			w.Header().Set("X-Amzn-Errortype", "GoneException")
			message(w, http.StatusGone, "")
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodDelete:
		_ = c.ws.Close(websocket.StatusNormalClosure, "closed by the service")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connectedAt": c.connectedAt.UTC().Format(time.RFC3339), "identity": map[string]string{"sourceIp": c.sourceIP},
		})
	default:
		message(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

// Serve serves g on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, g *Gateway) error {
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		g.mu.Lock()
		for _, c := range g.conns {
			_ = c.ws.Close(websocket.StatusGoingAway, "ferry local is stopping")
		}
		g.mu.Unlock()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	case err := <-errc:
		return err
	}
}
