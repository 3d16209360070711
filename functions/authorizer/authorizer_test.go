package authorizer

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// keys is an in-memory key store.
type keys map[string]store.APIKey

func (k keys) LookupAPIKey(_ context.Context, key string) (store.APIKey, error) {
	if key == "fry_down" {
		return store.APIKey{}, domain.Errorf(domain.KindUnavailable, "throttled")
	}
	if got, ok := k[key]; ok {
		return got, nil
	}
	return store.APIKey{}, domain.Errorf(domain.KindUnauthorized, "unknown API key")
}

func TestHandle(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{
		Keys: keys{"fry_good": {ID: "0123456789abcdef", Party: "org-a", Role: store.RolePartner}},
		Log:  slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	req := func(key string) events.APIGatewayV2CustomAuthorizerV2Request {
		return events.APIGatewayV2CustomAuthorizerV2Request{RouteKey: "GET /transfers/{id}", Headers: map[string]string{"x-api-key": key}}
	}

	resp, err := h.Handle(context.Background(), req("fry_good"))
	if err != nil || !resp.IsAuthorized || resp.Context[ContextParty] != "org-a" || resp.Context[ContextRole] != store.RolePartner ||
		resp.Context[ContextKeyID] != "0123456789abcdef" || resp.Context[ContextDenied] != nil {
		t.Errorf("good key: %+v, %v; want org-a's identity", resp, err)
	}

	resp, err = h.Handle(context.Background(), req("fry_stolen-and-revoked"))
	if err != nil || !resp.IsAuthorized || resp.Context[ContextDenied] == nil || resp.Context[ContextParty] != nil {
		t.Errorf("bad key: %+v, %v; want it marked denied, with no identity", resp, err)
	}
	if !strings.Contains(logs.String(), "credential refused") || strings.Contains(logs.String(), "stolen-and-revoked") {
		t.Errorf("the refusal is not logged, or the key is:\n%s", logs.String())
	}

	_, err = h.Handle(context.Background(), req("fry_down"))
	if domain.KindOf(err) != domain.KindUnavailable {
		t.Errorf("key store down: %v, want its error, so that API Gateway does not cache a refusal", err)
	}
}
