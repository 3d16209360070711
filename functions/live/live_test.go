package live

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/live"
)

// subscriptions records what the handler asks of the connections table.
type subscriptions struct {
	connected map[string]live.Identity
	topics    map[string][]live.Topic
	cursors   map[string]int
}

func (s *subscriptions) Connect(_ context.Context, id string, who live.Identity) error {
	s.connected[id] = who
	return nil
}

func (s *subscriptions) Subscribe(_ context.Context, id string, _ live.Identity, t live.Topic, cursor string, seq int) error {
	s.topics[id] = append(s.topics[id], t)
	if cursor != "" {
		s.cursors[cursor] = seq
	}
	return nil
}

func (s *subscriptions) Unsubscribe(context.Context, string, live.Topic) error { return nil }

func (s *subscriptions) Disconnect(_ context.Context, id string) error {
	delete(s.connected, id)
	delete(s.topics, id)
	return nil
}

const transfer = "01J00000000000000000000001"

func setup(t *testing.T) (*Handler, *subscriptions) {
	st := memstore.New()
	st.Seed(transfer, time.Unix(0, 0), domain.Requested{Sender: "lab-a", Recipient: "lab-b", Size: 1, ChunkSize: 1, Chunks: 1}, domain.Started{})
	subs := &subscriptions{connected: map[string]live.Identity{}, topics: map[string][]live.Topic{}, cursors: map[string]int{}}
	return &Handler{Connections: subs, Transfers: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, subs
}

func call(t *testing.T, h *Handler, route, party, role, body string) (int, Frame) {
	t.Helper()
	var authz map[string]any
	if party != "" {
		authz = map[string]any{"principalId": party, authorizer.ContextParty: party, authorizer.ContextRole: role, authorizer.ContextKeyID: "k"}
	}
	resp, err := h.Handle(context.Background(), events.APIGatewayWebsocketProxyRequest{Body: body,
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{RouteKey: route, ConnectionID: "c=", Authorizer: authz}})
	if err != nil {
		t.Fatalf("%s %s: %v", route, body, err)
	}
	var f Frame
	if resp.Body != "" {
		if err := json.Unmarshal([]byte(resp.Body), &f); err != nil {
			t.Fatalf("%s: not a frame: %s", route, resp.Body)
		}
	}
	return resp.StatusCode, f
}

func TestConnect(t *testing.T) {
	h, subs := setup(t)
	if code, _ := call(t, h, "$connect", "", "", ""); code != 403 || len(subs.connected) != 0 {
		t.Errorf("$connect without an identity = %d, %d connections; want 403, none", code, len(subs.connected))
	}
	if code, _ := call(t, h, "$connect", "lab-a", "partner", ""); code != 200 || subs.connected["c="].Party != "lab-a" {
		t.Errorf("$connect = %d, connections %v; want 200 and lab-a's", code, subs.connected)
	}
	if code, _ := call(t, h, "$disconnect", "lab-a", "partner", ""); code != 200 || len(subs.connected) != 0 {
		t.Errorf("$disconnect = %d, connections %v; want none", code, subs.connected)
	}
}

// TestFrames: what a frame may subscribe to, and the answers; a refusal
// does not say whether a transfer exists.
func TestFrames(t *testing.T) {
	for _, c := range []struct {
		name, party, role, body string
		typ, code               string
	}{
		{"malformed", "lab-a", "partner", "{", "error", "bad_request"},
		{"unknown action", "lab-a", "partner", `{"action":"dance"}`, "error", "bad_request"},
		{"neither", "lab-a", "partner", `{"action":"subscribe"}`, "error", "bad_request"},
		{"both", "lab-a", "partner", `{"action":"subscribe","party":"lab-a","transfer":"` + transfer + `"}`, "error", "bad_request"},
		{"a bad id", "lab-a", "partner", `{"action":"subscribe","transfer":"../x"}`, "error", "bad_request"},
		{"its own party", "lab-a", "partner", `{"action":"subscribe","party":"lab-a"}`, "subscribed", ""},
		{"another party", "lab-a", "partner", `{"action":"subscribe","party":"lab-b"}`, "error", "not_found"},
		{"an operator, any party", "ops", "operator", `{"action":"subscribe","party":"lab-b"}`, "subscribed", ""},
		{"its transfer, as sender", "lab-a", "partner", `{"action":"subscribe","transfer":"` + transfer + `"}`, "subscribed", ""},
		{"its transfer, as recipient", "lab-b", "partner", `{"action":"subscribe","transfer":"` + transfer + `"}`, "subscribed", ""},
		{"another's transfer", "lab-c", "partner", `{"action":"subscribe","transfer":"` + transfer + `"}`, "error", "not_found"},
		{"no such transfer", "lab-c", "partner", `{"action":"subscribe","transfer":"01J00000000000000000000009"}`, "error", "not_found"},
		{"unsubscribe", "lab-a", "partner", `{"action":"unsubscribe","party":"lab-a"}`, "unsubscribed", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, subs := setup(t)
			code, f := call(t, h, "subscribe", c.party, c.role, c.body)
			if code != 200 || f.Type != c.typ || f.Code != c.code {
				t.Errorf("%s = %d %+v, want a %s frame %s", c.body, code, f, c.typ, c.code)
			}
			if c.typ == "error" && len(subs.topics) != 0 {
				t.Errorf("a refused frame subscribed %v", subs.topics)
			}
		})
	}
	t.Run("the same refusal for another's and for none", func(t *testing.T) {
		h, _ := setup(t)
		_, other := call(t, h, "subscribe", "lab-c", "partner", `{"action":"subscribe","transfer":"`+transfer+`"}`)
		_, none := call(t, h, "subscribe", "lab-c", "partner", `{"action":"subscribe","transfer":"01J00000000000000000000009"}`)
		other.Message, none.Message = "", ""
		if other != none {
			t.Errorf("another's transfer %+v, none %+v: want the same answer", other, none)
		}
	})
	t.Run("subscribing to a transfer starts at its version", func(t *testing.T) {
		h, subs := setup(t)
		_, f := call(t, h, "subscribe", "lab-a", "partner", `{"action":"subscribe","transfer":"`+transfer+`"}`)
		if f.Seq != 2 || f.Status != domain.StatusInProgress || subs.cursors[transfer] != 2 {
			t.Errorf("subscribed %+v, cursor %d; want seq 2 IN_PROGRESS, cursor 2", f, subs.cursors[transfer])
		}
	})
}
