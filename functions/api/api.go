// Package api is ferry's HTTP API behind API Gateway (an HTTP API, payload
// format 2.0): partners and operators follow transfers, replay, cancel and
// acknowledge them. api/openapi.yaml is its contract.
//
// The caller's identity comes from the authorizer (functions/authorizer) in
// the request context. A partner sees and acts only on the transfers its
// party sent or receives; any other transfer is 404, as if it did not
// exist, so ids cannot be probed. Errors are {"error": {"code", "message"}}
// with the codes of one table (errorOf).
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

// Store is what the API needs of the event store and its read model.
type Store interface {
	store.Appender
	Load(ctx context.Context, id string) (domain.State, error)
	Events(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, error)
	EventStates(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, []domain.State, error)
	History(ctx context.Context, q store.Query) (store.Page, error)
	ClaimIdempotencyKey(ctx context.Context, scope, key, id string, now time.Time) (string, error)
}

// Handler is the api Lambda.
type Handler struct {
	Store Store
	// Objects stores posted files in Bucket (the upload bucket), under
	// postbox keys; Intake decides their transfers, as for any upload.
	Objects Objects
	Bucket  string
	Intake  Requester
	// Presigner signs the uploads of POST /uploads, to the same bucket;
	// Multipart begins, completes and aborts those uploaded in parts.
	Presigner Presigner
	Multipart Multipart
	Now       func() time.Time
	Log       *slog.Logger
}

// Identity is the caller, as the authorizer found it. KeyID is its API
// key's id, or authorizer.TokenKeyIDPrefix and its token's subject.
type Identity struct {
	Party, Role, KeyID string
}

// actor names the caller in the events it causes: its party, role and API
// key, or the subject of its token.
func (id Identity) actor() string {
	if sub, ok := strings.CutPrefix(id.KeyID, authorizer.TokenKeyIDPrefix); ok {
		return fmt.Sprintf("%s (%s, token of %s)", id.Party, id.Role, sub)
	}
	return fmt.Sprintf("%s (%s, api key %s)", id.Party, id.Role, id.KeyID)
}

// sees reports whether the caller may see st.
func (id Identity) sees(st domain.State) bool {
	return id.Role == store.RoleOperator || (id.Party != "" && (st.Request.Sender == id.Party || st.Request.Recipient == id.Party))
}

// Handle answers one request. It never returns an error: every outcome,
// failures included, is a response.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	resp, who := h.serve(ctx, req)
	if resp.StatusCode >= 400 {
		h.Log.WarnContext(ctx, "request refused", "method", req.RequestContext.HTTP.Method, "path", req.RawPath,
			"status", resp.StatusCode, "party", who.Party, "keyId", who.KeyID, "body", resp.Body)
	}
	return resp, nil
}

func (h *Handler) serve(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, Identity) {
	who, denied := identityOf(req)
	if denied != "" {
		return failure(&apiError{http.StatusUnauthorized, "unauthorized", denied}), who
	}
	method := req.RequestContext.HTTP.Method
	parts := strings.Split(strings.Trim(req.RawPath, "/"), "/")
	var resp events.APIGatewayV2HTTPResponse
	var err error
	switch {
	case len(parts) == 1 && parts[0] == "transfers" && method == http.MethodGet:
		resp, err = h.list(ctx, who, req.QueryStringParameters)
	case len(parts) == 1 && parts[0] == "transfers" && method == http.MethodPost:
		resp, err = h.post(ctx, who, req)
	case len(parts) == 1 && parts[0] == "uploads" && method == http.MethodPost:
		resp, err = h.uploads(ctx, who, req)
	case len(parts) == 3 && parts[0] == "uploads" && parts[2] == "parts" && method == http.MethodGet:
		resp, err = h.uploadParts(ctx, who, parts[1], req.QueryStringParameters)
	case len(parts) == 3 && parts[0] == "uploads" && parts[2] == "complete" && method == http.MethodPost:
		resp, err = h.completeUpload(ctx, who, parts[1], req.Body)
	case len(parts) == 2 && parts[0] == "uploads" && method == http.MethodDelete:
		resp, err = h.abortUpload(ctx, who, parts[1])
	case len(parts) == 1 && parts[0] == "replays" && method == http.MethodPost:
		resp, err = h.replays(ctx, who, req.Body)
	case len(parts) == 2 && parts[0] == "transfers" && method == http.MethodGet:
		resp, err = h.get(ctx, who, parts[1])
	case len(parts) == 3 && parts[0] == "transfers" && parts[2] == "events" && method == http.MethodGet:
		resp, err = h.events(ctx, who, parts[1], req.QueryStringParameters)
	case len(parts) == 3 && parts[0] == "transfers" && method == http.MethodPost && commands[parts[2]] != nil:
		resp, err = h.command(ctx, who, parts[1], parts[2], req)
	default:
		err = &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", method, req.RawPath)}
	}
	if err != nil {
		return failure(errorOf(err)), who
	}
	return resp, who
}

// identityOf reads the authorizer's context: the identity, or why the
// credential was refused.
func identityOf(req events.APIGatewayV2HTTPRequest) (Identity, string) {
	var c map[string]any
	if a := req.RequestContext.Authorizer; a != nil {
		c = a.Lambda
	}
	s := func(k string) string { v, _ := c[k].(string); return v }
	if d := s(authorizer.ContextDenied); d != "" {
		return Identity{}, d
	}
	id := Identity{Party: s(authorizer.ContextParty), Role: s(authorizer.ContextRole), KeyID: s(authorizer.ContextKeyID)}
	if id.Party == "" || (id.Role != store.RolePartner && id.Role != store.RoleOperator) {
		return Identity{}, "no credential"
	}
	return id, ""
}

// visible loads a transfer the caller may see; any other is not found.
func (h *Handler) visible(ctx context.Context, who Identity, id string) (domain.State, error) {
	if !domain.ValidID(id) {
		return domain.State{}, &apiError{http.StatusBadRequest, "bad_request", "id: not a transfer id (26 characters of Crockford base32)"}
	}
	st, err := h.Store.Load(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !who.sees(st)) {
		return domain.State{}, &apiError{http.StatusNotFound, "not_found", "no transfer " + id}
	}
	return st, err
}

func (h *Handler) get(ctx context.Context, who Identity, id string) (events.APIGatewayV2HTTPResponse, error) {
	st, err := h.visible(ctx, who, id)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	return reply(http.StatusOK, transferOf(st)), nil
}

func (h *Handler) events(ctx context.Context, who Identity, id string, q map[string]string) (events.APIGatewayV2HTTPResponse, error) {
	after, err := intParam(q, "after", 0, 0, 1<<31-1)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	limit, err := intParam(q, "limit", 100, 1, 1000)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if _, err := h.visible(ctx, who, id); err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	evs, states, err := h.Store.EventStates(ctx, id, after, limit+1)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	page := eventPage{Items: []schema.Detail{}}
	for i, e := range evs[:min(len(evs), limit)] {
		page.Items = append(page.Items, schema.NewDetail(e, states[i]))
	}
	if len(evs) > limit {
		next := evs[limit-1].Seq
		page.Next = &next
	}
	return reply(http.StatusOK, page), nil
}

func (h *Handler) list(ctx context.Context, who Identity, q map[string]string) (events.APIGatewayV2HTTPResponse, error) {
	known := map[string]bool{"status": true, "sender": true, "recipient": true, "workflow": true, "route": true, "since": true, "until": true, "limit": true, "cursor": true}
	for k := range q {
		if !known[k] {
			return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusBadRequest, "bad_request", k + ": not a parameter of this query"}
		}
	}
	query := store.Query{Sender: q["sender"], Recipient: q["recipient"], Route: q["route"], Workflow: q["workflow"], Cursor: q["cursor"]}
	if s := q["status"]; s != "" {
		query.Status = domain.Status(s)
		if !query.Status.Valid() {
			return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusBadRequest, "bad_request", "status: not one of " + domain.StatusList()}
		}
	}
	var err error
	if query.Limit, err = intParam(q, "limit", store.DefaultLimit, 1, store.MaxLimit); err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &query.Since}, {"until", &query.Until}} {
		if v := q[p.name]; v != "" {
			if *p.to, err = time.Parse(time.RFC3339, v); err != nil {
				return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusBadRequest, "bad_request", p.name + ": not an RFC 3339 time"}
			}
		}
	}
	if query.Status == "" && query.Sender == "" && query.Recipient == "" && query.Route == "" {
		return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusBadRequest, "bad_request", "give status, sender, recipient or route"}
	}
	// A partner's query is about its own transfers: as sender unless it
	// names itself the recipient.
	if who.Role == store.RolePartner {
		switch {
		case query.Sender == who.Party || query.Recipient == who.Party:
		case query.Sender == "" && query.Recipient == "":
			query.Sender = who.Party
		default:
			return reply(http.StatusOK, transferPage{Items: []summary{}}), nil
		}
	}
	page, err := h.Store.History(ctx, query)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	out := transferPage{Items: []summary{}, Cursor: page.Cursor}
	for _, s := range page.Items {
		out.Items = append(out.Items, summaryOf(s))
	}
	return reply(http.StatusOK, out), nil
}

// commands are the operator commands the API takes, by path, each with
// who may give it.
var commands = map[string]func(who Identity, st domain.State, body commandBody) (domain.Command, error){
	"replay": func(who Identity, st domain.State, b commandBody) (domain.Command, error) {
		if b.Reason == "" {
			return nil, &apiError{http.StatusBadRequest, "bad_request", "reason: required: say why"}
		}
		return domain.Replay{Actor: who.actor(), Reason: b.Reason}, nil
	},
	"cancel": func(who Identity, st domain.State, b commandBody) (domain.Command, error) {
		if b.Reason == "" {
			return nil, &apiError{http.StatusBadRequest, "bad_request", "reason: required: say why"}
		}
		return domain.Cancel{Actor: who.actor(), Reason: b.Reason}, nil
	},
	"ack": func(who Identity, st domain.State, b commandBody) (domain.Command, error) {
		if st.Request.Recipient != who.Party {
			return nil, &apiError{http.StatusForbidden, "forbidden", "only the recipient acknowledges a transfer"}
		}
		return domain.Acknowledge{By: who.Party, Ref: b.Ref}, nil
	},
}

type commandBody struct {
	Reason string `json:"reason"`
	Ref    string `json:"ref"`
}

func (h *Handler) command(ctx context.Context, who Identity, id, name string, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	var body commandBody
	if strings.TrimSpace(req.Body) != "" {
		dec := json.NewDecoder(strings.NewReader(req.Body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusBadRequest, "bad_request", "body: " + err.Error()}
		}
	}
	st, err := h.visible(ctx, who, id)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	cmd, err := commands[name](who, st, body)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	d, err := store.DecideAppend(ctx, h.Store, st, cmd, h.Now().UTC())
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if d.Lost {
		return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusConflict, "conflict", fmt.Sprintf("transfer %s changed meanwhile (now past v%d); look again", id, st.Version)}
	}
	return reply(http.StatusAccepted, transferOf(d.State)), nil
}

func intParam(q map[string]string, name string, def, lo, hi int) (int, error) {
	v, ok := q[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &apiError{http.StatusBadRequest, "bad_request", fmt.Sprintf("%s: want a whole number %d-%d", name, lo, hi)}
	}
	return n, nil
}
