package authorizer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
)

// TokenParameter is the query parameter that carries the credential of a
// WebSocket connection: browsers cannot set headers on one.
const TokenParameter = "token"

// HandleWebSocket authorizes a WebSocket $connect (a REQUEST authorizer,
// which must answer with an IAM policy). The credential is the token query
// parameter: an API key or a JWT, as the HTTP API takes. A refused credential is
// denied (API Gateway answers 403 and no connection opens); an unreadable
// key store is an error (500), as for the HTTP API.
func (h *Handler) HandleWebSocket(ctx context.Context, req events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	k, _, err := h.identify(ctx, req.QueryStringParameters[TokenParameter])
	policy := func(effect string) events.APIGatewayCustomAuthorizerPolicy {
		return events.APIGatewayCustomAuthorizerPolicy{Version: "2012-10-17", Statement: []events.IAMPolicyStatement{{
			Action: []string{"execute-api:Invoke"}, Effect: effect, Resource: []string{req.MethodArn},
		}}}
	}
	switch kind := domain.KindOf(err); {
	case err == nil:
		return events.APIGatewayCustomAuthorizerResponse{PrincipalID: k.Party, PolicyDocument: policy("Allow"), Context: map[string]any{
			ContextParty: k.Party, ContextRole: k.Role, ContextKeyID: k.ID,
		}}, nil
	case kind == domain.KindUnauthorized:
		h.Log.WarnContext(ctx, "credential refused", "route", "$connect", "sourceIp", req.RequestContext.Identity.SourceIP, "reason", err.Error())
		return events.APIGatewayCustomAuthorizerResponse{PrincipalID: "refused", PolicyDocument: policy("Deny")}, nil
	default:
		h.Log.ErrorContext(ctx, "key store unavailable", "route", "$connect", "error", err)
		return events.APIGatewayCustomAuthorizerResponse{}, err
	}
}

// Dispatch is the Lambda entry point of the authorizer function, which
// serves both APIs: an HTTP API's request (payload format 2.0) goes to
// Handle, a WebSocket API's REQUEST authorizer event to HandleWebSocket.
func (h *Handler) Dispatch(ctx context.Context, raw json.RawMessage) (any, error) {
	var probe struct {
		Version string `json:"version"`
		Type    string `json:"type"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("authorizer: not an event: %w", err)
	}
	switch {
	case probe.Version == "2.0":
		var req events.APIGatewayV2CustomAuthorizerV2Request
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, fmt.Errorf("authorizer: %w", err)
		}
		return h.Handle(ctx, req)
	case probe.Type == "REQUEST":
		var req events.APIGatewayCustomAuthorizerRequestTypeRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, fmt.Errorf("authorizer: %w", err)
		}
		return h.HandleWebSocket(ctx, req)
	default:
		return nil, fmt.Errorf("authorizer: an event of neither API (version %q, type %q)", probe.Version, probe.Type)
	}
}
