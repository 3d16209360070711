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

// keys is an in-memory key store, and token verifier: it knows the
// credentials it holds; one ending in "down" finds it unavailable.
type keys map[string]store.APIKey

func (k keys) LookupAPIKey(_ context.Context, key string) (store.APIKey, error) {
	return k.lookup(key, "unknown API key")
}

func (k keys) Identity(_ context.Context, token string) (store.APIKey, error) {
	return k.lookup(token, "token: expired")
}

func (k keys) lookup(cred, refusal string) (store.APIKey, error) {
	if strings.HasSuffix(cred, "down") {
		return store.APIKey{}, domain.Errorf(domain.KindUnavailable, "throttled")
	}
	if got, ok := k[cred]; ok {
		return got, nil
	}
	return store.APIKey{}, domain.Errorf(domain.KindUnauthorized, "%s", refusal)
}

func TestHandle(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{
		Keys: keys{"fry_good": {ID: "0123456789abcdef", Party: "org-a", Role: store.RolePartner}},
		Log:  slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	req := func(key string) events.APIGatewayV2CustomAuthorizerV2Request {
		return events.APIGatewayV2CustomAuthorizerV2Request{RouteKey: "GET /transfers/{id}", Headers: map[string]string{"authorization": "Bearer " + key}}
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

	for _, header := range []string{"fry_good", "Basic Zm9vOmJhcg==", "Bearer", "Bearer fry_good extra", "Token fry_good"} {
		resp, err = h.Handle(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"Authorization": header}})
		if err != nil || !resp.IsAuthorized || resp.Context[ContextDenied] == nil || resp.Context[ContextParty] != nil {
			t.Errorf("Authorization: %s: %+v, %v; want it marked denied", header, resp, err)
		}
	}
	resp, err = h.Handle(context.Background(), events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"Authorization": "bearer  fry_good"}})
	if err != nil || resp.Context[ContextParty] != "org-a" {
		t.Errorf("lower-case scheme: %+v, %v; want org-a's identity", resp, err)
	}
	resp, _ = h.Handle(context.Background(), req("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"))
	if resp.Context[ContextDenied] == nil {
		t.Errorf("a token without an issuer configured: %+v, want it denied", resp)
	}
}

func TestHandleTokens(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{
		Keys:   keys{"fry_good": {ID: "0123456789abcdef", Party: "org-a", Role: store.RolePartner}},
		Tokens: keys{"eyJ.good.sig": {ID: "jwt:lab-b", Party: "lab-b", Role: store.RoleOperator}},
		Log:    slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	req := func(cred string) events.APIGatewayV2CustomAuthorizerV2Request {
		return events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": "Bearer " + cred}}
	}
	for cred, want := range map[string]string{"eyJ.good.sig": "lab-b", "fry_good": "org-a"} {
		if resp, err := h.Handle(context.Background(), req(cred)); err != nil || resp.Context[ContextParty] != want {
			t.Errorf("%s: %+v, %v; want %s's identity", cred, resp, err, want)
		}
	}
	resp, err := h.Handle(context.Background(), req("eyJ.stale.sig"))
	if err != nil || resp.Context[ContextDenied] != "the token is not valid: token: expired" {
		t.Errorf("bad token: %+v, %v; want it denied", resp, err)
	}
	if strings.Contains(logs.String(), "eyJ.stale.sig") || !strings.Contains(logs.String(), "expired") {
		t.Errorf("the refusal's reason is not logged, or the token is:\n%s", logs.String())
	}
	if _, err := h.Handle(context.Background(), req("jwks-down")); domain.KindOf(err) != domain.KindUnavailable {
		t.Errorf("issuer down: %v, want its error", err)
	}
}
