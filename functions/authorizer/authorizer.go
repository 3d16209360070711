// Package authorizer is the HTTP API's Lambda authorizer. It maps the
// caller's credential, the Authorization header's Bearer value, to an
// identity — the party the credential acts as and its role — which API
// Gateway hands the api function in the request's authorizer context, and
// caches for the identity source's TTL.
//
// The credential is a ferry API key (fry_…, looked up in the key store) or,
// when an OIDC issuer is configured (see OIDC), a JWT access token of that
// issuer. Both share the one header because an HTTP API calls its
// authorizer only when every identity source is present.
//
// A credential ferry does not accept (an unknown or revoked key, a bad or
// expired token, an Authorization header that is not Bearer) is still let
// through, marked denied, so that the api function answers 401 with its own
// error body: an HTTP API's simple-response authorizer can only refuse with
// 403. A request without the header never reaches it (API Gateway answers
// 401). API Gateway caches an answer, a refusal too, per header value for
// the TTL, so a token may be accepted until then past its expiry.
package authorizer

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// Header carries the credential: "Bearer " and an API key or a JWT.
const Header = "Authorization"

// The authorizer context's keys.
const (
	ContextParty = "party"
	ContextRole  = "role"
	// ContextKeyID is the API key's id, or TokenKeyIDPrefix and a token's
	// subject.
	ContextKeyID = "keyId"
	// ContextDenied holds why a credential was refused; the api function
	// answers 401 when it is set.
	ContextDenied = "denied"
)

// tokenDenied starts the denial of a token; why follows.
const tokenDenied = "the token is not valid"

// Keys is what the authorizer needs of the key store.
type Keys interface {
	LookupAPIKey(ctx context.Context, key string) (store.APIKey, error)
}

// Tokens verifies JWTs (a *Verifier).
type Tokens interface {
	Identity(ctx context.Context, token string) (store.APIKey, error)
}

// Handler is the authorizer Lambda.
type Handler struct {
	Keys Keys
	// Tokens is nil when JWTs are not accepted.
	Tokens Tokens
	Log    *slog.Logger
}

// Handle authorizes one request. It returns an error (API Gateway then
// answers 500) only when the key store or the token issuer's keys cannot be
// read, so that an outage is not cached as a refusal.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	var k store.APIKey
	var err error
	denied := "want an Authorization header of Bearer and an API key or a token"
	if cred, ok := Bearer(HeaderValue(req.Headers, Header)); ok {
		k, denied, err = h.identify(ctx, cred)
	} else {
		err = domain.Errorf(domain.KindUnauthorized, "not a Bearer credential")
	}
	switch kind := domain.KindOf(err); {
	case err == nil:
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{
			ContextParty: k.Party, ContextRole: k.Role, ContextKeyID: k.ID,
		}}, nil
	case kind == domain.KindUnauthorized:
		h.Log.WarnContext(ctx, "credential refused", "route", req.RouteKey, "sourceIp", req.RequestContext.HTTP.SourceIP, "reason", err.Error())
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{
			ContextDenied: denied,
		}}, nil
	default:
		h.Log.ErrorContext(ctx, "credentials unavailable", "route", req.RouteKey, "error", err)
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, err
	}
}

// identify maps a credential — an API key, or a JWT when Tokens is set —
// to its identity. denied is what to tell the caller when err refuses it
// (domain.KindUnauthorized): for a token, why, which the verifier's
// messages may tell without the token.
func (h *Handler) identify(ctx context.Context, cred string) (k store.APIKey, denied string, err error) {
	if strings.HasPrefix(cred, store.KeyPrefix) || h.Tokens == nil {
		k, err = h.Keys.LookupAPIKey(ctx, cred)
		return k, "the API key is not valid", err
	}
	k, err = h.Tokens.Identity(ctx, cred)
	denied = tokenDenied
	var e *domain.Error
	if domain.KindOf(err) == domain.KindUnauthorized && errors.As(err, &e) {
		denied += ": " + e.Message
	}
	return k, denied, err
}

// Bearer returns the credential of an Authorization header value of the
// Bearer scheme (RFC 6750; the scheme's case does not matter), or false.
func Bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" || strings.ContainsAny(cred, " \t") {
		return "", false
	}
	return cred, true
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
