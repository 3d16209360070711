// Package live is the WebSocket API's function: $connect records the
// connection with the caller's identity (the authorizer's context),
// $disconnect forgets it, and subscribe and unsubscribe frames choose
// what it watches — one transfer, or a party's transfers. Every frame a
// client sends gets one frame back (the routes' responses): subscribed,
// unsubscribed or an error. What a caller may not see is refused as if it
// did not exist, so ids cannot be probed.
//
// Frames are JSON:
//
//	→ {"action": "subscribe", "transfer": "01J…"}   or {"action": "subscribe", "party": "lab-a"}
//	← {"type": "subscribed", "topic": "transfer:01J…", "seq": 4, "status": "IN_PROGRESS"}
//	← {"type": "event", "event": {…the EventBridge detail…}}   (from functions/notify)
//	← {"type": "error", "code": "not_found", "message": "…"}
package live

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/live"
	"github.com/ferryhq/ferry/store"
)

// Connections is what the function needs of the connections table.
type Connections interface {
	Connect(ctx context.Context, id string, who live.Identity) error
	Subscribe(ctx context.Context, id string, who live.Identity, topic live.Topic, cursor string, seq int) error
	Unsubscribe(ctx context.Context, id string, topic live.Topic) error
	Disconnect(ctx context.Context, id string) error
}

// Transfers reads a transfer, to check that the caller may watch it.
type Transfers interface {
	Load(ctx context.Context, id string) (domain.State, error)
}

// Handler is the live Lambda.
type Handler struct {
	Connections Connections
	Transfers   Transfers
	Log         *slog.Logger
}

// Frame is a frame the service sends a client.
type Frame struct {
	Type    string        `json:"type"`
	Topic   live.Topic    `json:"topic,omitempty"`
	Seq     int           `json:"seq,omitempty"`
	Status  domain.Status `json:"status,omitempty"`
	Code    string        `json:"code,omitempty"`
	Message string        `json:"message,omitempty"`
	Event   any           `json:"event,omitempty"`
}

type request struct {
	Action   string `json:"action"`
	Transfer string `json:"transfer"`
	Party    string `json:"party"`
}

// Handle answers one WebSocket event. Only an unreadable store is an
// error (API Gateway then answers 500 or drops the frame); every refusal
// is a frame.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	rc := req.RequestContext
	who := identityOf(rc.Authorizer)
	switch rc.RouteKey {
	case "$connect":
		if who.Party == "" {
			return events.APIGatewayProxyResponse{StatusCode: http.StatusForbidden}, nil
		}
		if err := h.Connections.Connect(ctx, rc.ConnectionID, who); err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
		h.Log.InfoContext(ctx, "connected", "connection", rc.ConnectionID, "party", who.Party, "keyId", who.KeyID)
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
	case "$disconnect":
		if err := h.Connections.Disconnect(ctx, rc.ConnectionID); err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
		return events.APIGatewayProxyResponse{StatusCode: http.StatusOK}, nil
	}
	f, err := h.frame(ctx, rc.ConnectionID, who, req.Body)
	var de *domain.Error
	if err != nil && !errors.As(err, &de) {
		return events.APIGatewayProxyResponse{}, err
	}
	if err != nil {
		f = errorFrame(de)
		if de.Kind == domain.KindUnavailable {
			h.Log.ErrorContext(ctx, "frame failed", "connection", rc.ConnectionID, "party", who.Party, "error", err)
		} else {
			h.Log.WarnContext(ctx, "frame refused", "connection", rc.ConnectionID, "party", who.Party, "keyId", who.KeyID, "reason", de.Message)
		}
	}
	b, _ := json.Marshal(f)
	return events.APIGatewayProxyResponse{StatusCode: http.StatusOK, Body: string(b)}, nil
}

func (h *Handler) frame(ctx context.Context, conn string, who live.Identity, body string) (Frame, error) {
	var r request
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return Frame{}, domain.Errorf(domain.KindInvalid, "a frame is a JSON object with an action: %v", err)
	}
	if r.Action != "subscribe" && r.Action != "unsubscribe" {
		return Frame{}, domain.Errorf(domain.KindInvalid, "action %q: want subscribe or unsubscribe", r.Action)
	}
	topic, st, err := h.topic(ctx, who, r)
	if err != nil {
		return Frame{}, err
	}
	if r.Action == "unsubscribe" {
		if err := h.Connections.Unsubscribe(ctx, conn, topic); err != nil {
			return Frame{}, err
		}
		return Frame{Type: "unsubscribed", Topic: topic}, nil
	}
	if err := h.Connections.Subscribe(ctx, conn, who, topic, st.ID, st.Version); err != nil {
		return Frame{}, err
	}
	h.Log.InfoContext(ctx, "subscribed", "connection", conn, "party", who.Party, "topic", topic)
	return Frame{Type: "subscribed", Topic: topic, Seq: st.Version, Status: st.Status}, nil
}

// topic checks what a frame asks to watch: a transfer the caller may see
// (st is its state), or a party the caller is (any party, for operators).
func (h *Handler) topic(ctx context.Context, who live.Identity, r request) (live.Topic, domain.State, error) {
	switch {
	case (r.Transfer == "") == (r.Party == ""):
		return "", domain.State{}, domain.Errorf(domain.KindInvalid, "give a transfer or a party, not both")
	case r.Party != "":
		if !domain.ValidParty(r.Party) {
			return "", domain.State{}, domain.Errorf(domain.KindInvalid, "party: not a party name")
		}
		if who.Role != store.RoleOperator && r.Party != who.Party {
			return "", domain.State{}, domain.Errorf(domain.KindNotFound, "no party %s that you may watch", r.Party)
		}
		return live.PartyTopic(r.Party), domain.State{}, nil
	}
	notFound := domain.Errorf(domain.KindNotFound, "no transfer %s that you may see", r.Transfer)
	if !domain.ValidID(r.Transfer) {
		return "", domain.State{}, domain.Errorf(domain.KindInvalid, "transfer: not a transfer id (26 characters of Crockford base32)")
	}
	st, err := h.Transfers.Load(ctx, r.Transfer)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", domain.State{}, notFound
	case err != nil:
		return "", domain.State{}, err
	case !Sees(who, st.Request):
		return "", domain.State{}, notFound
	}
	if r.Action == "unsubscribe" {
		st = domain.State{}
	}
	return live.TransferTopic(r.Transfer), st, nil
}

// Sees reports whether who may see a transfer: an operator, its sender or
// its recipient.
func Sees(who live.Identity, r domain.Requested) bool {
	return who.Role == store.RoleOperator || (who.Party != "" && (r.Sender == who.Party || r.Recipient == who.Party))
}

func errorFrame(e *domain.Error) Frame {
	code := map[domain.Kind]string{
		domain.KindInvalid: "bad_request", domain.KindNotFound: "not_found", domain.KindConflict: "conflict",
		domain.KindUnavailable: "unavailable",
	}[e.Kind]
	if code == "" {
		code = "internal"
	}
	msg := e.Message
	if e.Kind == domain.KindUnavailable {
		msg = "a service ferry depends on is unavailable; try again"
	}
	return Frame{Type: "error", Code: code, Message: msg}
}

// identityOf reads the authorizer's context, which API Gateway passes to
// every route of the connection.
func identityOf(a any) live.Identity {
	m, _ := a.(map[string]any)
	get := func(k string) string { v, _ := m[k].(string); return v }
	return live.Identity{Party: get(authorizer.ContextParty), Role: get(authorizer.ContextRole), KeyID: get(authorizer.ContextKeyID)}
}
