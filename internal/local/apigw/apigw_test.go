package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

func TestGateway(t *testing.T) {
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	var authCalls int
	var got events.APIGatewayV2HTTPRequest
	g := &Gateway{
		IdentityHeader: "Authorization",
		CacheTTL:       5 * time.Minute,
		Now:            func() time.Time { return now },
		Log:            slog.New(slog.DiscardHandler),
		Authorizer: func(_ context.Context, r events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
			authCalls++
			switch r.IdentitySource[0] {
			case "good":
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{"party": "org-a"}}, nil
			case "broken":
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, errors.New("key store down")
			}
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
		},
		Handler: func(_ context.Context, r events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			got = r
			return events.APIGatewayV2HTTPResponse{StatusCode: 202, Headers: map[string]string{"Content-Type": "application/octet-stream"},
				Body: base64.StdEncoding.EncodeToString([]byte{0, 1, 2}), IsBase64Encoded: true}, nil
		},
	}
	do := func(key, contentType string, body []byte, target string) *http.Response {
		req := httptest.NewRequest("POST", target, bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", key)
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec.Result()
	}
	body := func(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }

	if r := do("", "text/plain", nil, "/transfers"); r.StatusCode != 401 || body(r) != `{"message":"Unauthorized"}` || authCalls != 0 {
		t.Errorf("no key: %d, authorizer called %d times; want API Gateway's 401 without asking it", r.StatusCode, authCalls)
	}
	if r := do("bad", "text/plain", nil, "/transfers"); r.StatusCode != 403 || body(r) != `{"message":"Forbidden"}` {
		t.Errorf("refused: %d, want 403", r.StatusCode)
	}
	if r := do("broken", "text/plain", nil, "/transfers"); r.StatusCode != 500 {
		t.Errorf("authorizer failing: %d, want 500", r.StatusCode)
	}

	r := do("good", "application/octet-stream", []byte{0xff, 0xfe}, "/transfers?recipient=org-b&x=1&x=2")
	if r.StatusCode != 202 || body(r) != "\x00\x01\x02" || r.Header.Get("Apigw-Requestid") == "" {
		t.Errorf("response %d, want 202 with the decoded body and a request id", r.StatusCode)
	}
	if !got.IsBase64Encoded || got.Body != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) {
		t.Errorf("binary body reached the Lambda as %q (base64 %t)", got.Body, got.IsBase64Encoded)
	}
	if got.RawPath != "/transfers" || got.QueryStringParameters["recipient"] != "org-b" || got.QueryStringParameters["x"] != "1,2" ||
		got.Headers["x-multi"] != "a,b" || got.Headers["authorization"] != "good" || got.RequestContext.HTTP.Method != "POST" ||
		got.RequestContext.Authorizer == nil || got.RequestContext.Authorizer.Lambda["party"] != "org-a" || got.Version != "2.0" {
		t.Errorf("event = %+v", got)
	}

	do("good", "application/json", []byte(`{"reason":"x"}`), "/transfers/x/replay")
	if got.IsBase64Encoded || got.Body != `{"reason":"x"}` {
		t.Errorf("JSON body reached the Lambda as %q (base64 %t), want as text", got.Body, got.IsBase64Encoded)
	}

	calls := authCalls
	do("good", "text/plain", nil, "/transfers")
	if authCalls != calls {
		t.Errorf("authorizer asked again within the TTL")
	}
	now = now.Add(6 * time.Minute)
	do("good", "text/plain", nil, "/transfers")
	if authCalls != calls+1 {
		t.Errorf("authorizer not asked again after the TTL")
	}

	if r := do("good", "application/octet-stream", make([]byte, MaxBody+1), "/transfers"); r.StatusCode != 413 {
		t.Errorf("body over 10 MiB: %d, want 413", r.StatusCode)
	}
	if r := do("good", "application/octet-stream", make([]byte, 5<<20), "/transfers"); r.StatusCode != 413 || !strings.Contains(body(r), "Too Large") {
		t.Errorf("5 MiB binary body (about 6.7 MB base64, over Lambda's 6 MB): %d, want 413", r.StatusCode)
	}
}

func TestGatewayCORS(t *testing.T) {
	var authCalls, handlerCalls int
	g := &Gateway{
		IdentityHeader: "Authorization",
		Log:            slog.New(slog.DiscardHandler),
		CORS: &CORS{
			AllowOrigins: []string{"http://127.0.0.1:4574"}, AllowHeaders: []string{"authorization", "content-type"},
			AllowMethods: []string{"GET", "POST"}, MaxAge: 10 * time.Minute,
		},
		Authorizer: func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
			authCalls++
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true}, nil
		},
		Handler: func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			handlerCalls++
			return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "{}"}, nil
		},
	}
	do := func(method, origin string, headers ...string) *http.Response {
		req := httptest.NewRequest(method, "/transfers?status=FAILED", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		return rec.Result()
	}
	t.Run("preflight from the console is answered without the authorizer", func(t *testing.T) {
		r := do("OPTIONS", "http://127.0.0.1:4574", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
		if r.StatusCode != 204 || authCalls != 0 || handlerCalls != 0 {
			t.Fatalf("preflight: %d, authorizer %d, handler %d; want 204 from the gateway alone", r.StatusCode, authCalls, handlerCalls)
		}
		for k, want := range map[string]string{
			"Access-Control-Allow-Origin": "http://127.0.0.1:4574", "Access-Control-Allow-Methods": "GET,POST",
			"Access-Control-Allow-Headers": "authorization,content-type", "Access-Control-Max-Age": "600",
		} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
	t.Run("preflight from another origin gets no CORS headers", func(t *testing.T) {
		r := do("OPTIONS", "https://evil.example", "Access-Control-Request-Method", "GET")
		if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("got %d, Allow-Origin %q; want 204 without it", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("preflight of a method not allowed gets no CORS headers", func(t *testing.T) {
		r := do("OPTIONS", "http://127.0.0.1:4574", "Access-Control-Request-Method", "PUT")
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("Allow-Origin %q for PUT", r.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("actual requests carry the allowed origin, errors too", func(t *testing.T) {
		r := do("GET", "http://127.0.0.1:4574", "Authorization", "Bearer k")
		if r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:4574" || handlerCalls != 1 {
			t.Errorf("GET: %d, Allow-Origin %q, handler %d", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), handlerCalls)
		}
		r = do("GET", "http://127.0.0.1:4574")
		if r.StatusCode != 401 || r.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:4574" {
			t.Errorf("GET without a key: %d, Allow-Origin %q; want a 401 the console can read", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
		}
		r = do("GET", "https://evil.example", "Authorization", "Bearer k")
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("another origin got Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("an OPTIONS that is not a preflight goes to the API", func(t *testing.T) {
		before := handlerCalls
		if r := do("OPTIONS", "", "Authorization", "Bearer k"); r.StatusCode != 200 || handlerCalls != before+1 {
			t.Errorf("got %d, handler called %d times", r.StatusCode, handlerCalls-before)
		}
	})
}
