// Package authorizer is the HTTP API's Lambda authorizer. It maps the
// caller's credential, an X-API-Key header, to an identity — the party the
// key acts as and its role — which API Gateway hands the api function in
// the request's authorizer context, and caches for the identity source's
// TTL.
//
// A key ferry does not know (or has revoked) is still let through, marked
// unauthenticated, so that the api function answers 401 with its own error
// body: an HTTP API's simple-response authorizer can only refuse with 403.
// A request without the header never reaches it (API Gateway answers 401).
package authorizer

import (
	"context"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// Header carries the API key.
const Header = "X-API-Key"

// The authorizer context's keys.
const (
	ContextParty = "party"
	ContextRole  = "role"
	ContextKeyID = "keyId"
	// ContextDenied holds why a credential was refused; the api function
	// answers 401 when it is set.
	ContextDenied = "denied"
)

// Keys is what the authorizer needs of the key store.
type Keys interface {
	LookupAPIKey(ctx context.Context, key string) (store.APIKey, error)
}

// Handler is the authorizer Lambda.
type Handler struct {
	Keys Keys
	Log  *slog.Logger
}

// Handle authorizes one request. It returns an error (API Gateway then
// answers 500) only when the key store cannot be read, so that an outage
// is not cached as a refusal.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	key := HeaderValue(req.Headers, Header)
	k, err := h.Keys.LookupAPIKey(ctx, key)
	switch kind := domain.KindOf(err); {
	case err == nil:
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{
			ContextParty: k.Party, ContextRole: k.Role, ContextKeyID: k.ID,
		}}, nil
	case kind == domain.KindUnauthorized:
		h.Log.WarnContext(ctx, "credential refused", "route", req.RouteKey, "sourceIp", req.RequestContext.HTTP.SourceIP, "reason", err.Error())
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{
			ContextDenied: "the API key is not valid",
		}}, nil
	default:
		h.Log.ErrorContext(ctx, "key store unavailable", "route", req.RouteKey, "error", err)
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, err
	}
}

// HeaderValue returns the value of a request header, whatever its case
// (API Gateway lowercases them; a local server may not).
func HeaderValue(headers map[string]string, name string) string {
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
