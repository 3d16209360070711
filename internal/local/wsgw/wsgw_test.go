package wsgw

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// gateway is a Gateway whose authorizer allows the token "good" and whose
// handler echoes each event's route and records them.
func gateway(t *testing.T) (*httptest.Server, *[]events.APIGatewayWebsocketProxyRequest, *sync.Mutex) {
	var mu sync.Mutex
	var seen []events.APIGatewayWebsocketProxyRequest
	g := &Gateway{
		IdentityQuery: "token", Routes: []string{"subscribe"}, APIID: "api", Stage: "live", MethodARN: "arn:connect",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorizer: func(_ context.Context, r events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
			effect := "Deny"
			if r.QueryStringParameters["token"] == "good" && r.MethodArn == "arn:connect" {
				effect = "Allow"
			}
			return events.APIGatewayCustomAuthorizerResponse{PrincipalID: "p", Context: map[string]any{"party": "lab-a"},
				PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{Statement: []events.IAMPolicyStatement{{Effect: effect, Resource: []string{r.MethodArn}}}}}, nil
		},
		Handler: func(_ context.Context, r events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
			if r.RequestContext.EventType != "MESSAGE" {
				return events.APIGatewayProxyResponse{StatusCode: 200}, nil
			}
			return events.APIGatewayProxyResponse{StatusCode: 200, Body: "route " + r.RequestContext.RouteKey}, nil
		},
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv, &seen, &mu
}

func TestUpgrade(t *testing.T) {
	srv, seen, mu := gateway(t)
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")
	for _, c := range []struct {
		query string
		want  int
	}{{"", 401}, {"?token=bad", 403}} {
		_, resp, err := websocket.Dial(context.Background(), ws+"/"+c.query, nil)
		if err == nil || resp == nil || resp.StatusCode != c.want {
			t.Errorf("upgrade %q: %v %v, want %d", c.query, resp, err, c.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(*seen) != 0 {
		t.Errorf("a refused upgrade reached the handler: %+v", *seen)
	}
}

func TestRoutesAndManagement(t *testing.T) {
	srv, seen, mu := gateway(t)
	ctx := context.Background()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/?token=good", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	ask := func(frame string) string {
		t.Helper()
		if err := conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for frame, want := range map[string]string{
		`{"action":"subscribe"}`: "route subscribe", `{"action":"dance"}`: "route $default", `not json`: "route $default",
	} {
		if got := ask(frame); got != want {
			t.Errorf("%s answered %q, want %q", frame, got, want)
		}
	}
	mu.Lock()
	id := (*seen)[0].RequestContext.ConnectionID
	if (*seen)[0].RequestContext.RouteKey != "$connect" || (*seen)[1].RequestContext.Authorizer.(map[string]any)["party"] != "lab-a" {
		t.Errorf("events %+v: want $connect first, the authorizer's context on each", *seen)
	}
	mu.Unlock()

	post := func(id, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(srv.URL+"/@connections/"+id, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(id, `{"type":"event"}`); resp.StatusCode != 200 {
		t.Errorf("POST @connections = %d", resp.StatusCode)
	}
	if _, b, err := conn.Read(ctx); err != nil || string(b) != `{"type":"event"}` {
		t.Errorf("pushed frame %q, %v", b, err)
	}
	if resp := post("nobody=", "x"); resp.StatusCode != 410 || resp.Header.Get("X-Amzn-Errortype") != "GoneException" {
		t.Errorf("POST to no connection = %d %s, want 410 GoneException", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"))
	}
	if resp := post(id, string(bytes.Repeat([]byte("x"), MaxFrame+1))); resp.StatusCode != 413 {
		t.Errorf("a frame over 128 KiB = %d, want 413", resp.StatusCode)
	}

	// A frame over the limit closes the connection (1009), and
	// $disconnect runs.
	_ = conn.Write(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), MaxFrame+1))
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Errorf("after a frame over the limit: %v, want close 1009", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		last := (*seen)[len(*seen)-1].RequestContext.RouteKey
		mu.Unlock()
		if last == "$disconnect" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no $disconnect after the connection closed (last %s)", last)
		}
	}
	if resp := post(id, "x"); resp.StatusCode != 410 {
		t.Errorf("POST to a closed connection = %d, want 410", resp.StatusCode)
	}
}
