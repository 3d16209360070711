package authorizer

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

func TestHandleWebSocket(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{
		Keys: keys{"fry_good": {ID: "0123456789abcdef", Party: "org-a", Role: store.RolePartner}},
		Log:  slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	const arn = "arn:aws:execute-api:eu-west-2:1:api/live/$connect"
	req := func(token string) events.APIGatewayCustomAuthorizerRequestTypeRequest {
		return events.APIGatewayCustomAuthorizerRequestTypeRequest{Type: "REQUEST", MethodArn: arn, QueryStringParameters: map[string]string{TokenParameter: token}}
	}
	effect := func(r events.APIGatewayCustomAuthorizerResponse) string {
		if len(r.PolicyDocument.Statement) != 1 || len(r.PolicyDocument.Statement[0].Resource) != 1 || r.PolicyDocument.Statement[0].Resource[0] != arn {
			return "malformed"
		}
		return r.PolicyDocument.Statement[0].Effect
	}
	resp, err := h.HandleWebSocket(context.Background(), req("fry_good"))
	if err != nil || effect(resp) != "Allow" || resp.Context[ContextParty] != "org-a" || resp.Context[ContextKeyID] != "0123456789abcdef" {
		t.Errorf("good key: %+v, %v; want Allow with org-a's identity", resp, err)
	}
	resp, err = h.HandleWebSocket(context.Background(), req("fry_stolen"))
	if err != nil || effect(resp) != "Deny" || resp.Context[ContextParty] != nil {
		t.Errorf("bad key: %+v, %v; want Deny, no identity", resp, err)
	}
	if strings.Contains(logs.String(), "fry_stolen") {
		t.Errorf("the key is logged:\n%s", logs.String())
	}
	if _, err := h.HandleWebSocket(context.Background(), req("fry_down")); domain.KindOf(err) != domain.KindUnavailable {
		t.Errorf("key store down: %v, want its error", err)
	}

	// Dispatch tells the two APIs' events apart.
	for _, c := range []struct {
		name string
		ev   any
		want string
	}{
		{"http api", events.APIGatewayV2CustomAuthorizerV2Request{Version: "2.0", Headers: map[string]string{"x-api-key": "fry_good"}}, "simple"},
		{"websocket", req("fry_good"), "policy"},
	} {
		raw, _ := json.Marshal(c.ev)
		got, err := h.Dispatch(context.Background(), raw)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		switch got.(type) {
		case events.APIGatewayV2CustomAuthorizerSimpleResponse:
			if c.want != "simple" {
				t.Errorf("%s: a simple response", c.name)
			}
		case events.APIGatewayCustomAuthorizerResponse:
			if c.want != "policy" {
				t.Errorf("%s: a policy response", c.name)
			}
		default:
			t.Errorf("%s: %T", c.name, got)
		}
	}
	if _, err := h.Dispatch(context.Background(), json.RawMessage(`{"hello": 1}`)); err == nil {
		t.Error("an event of neither API was dispatched")
	}
}
