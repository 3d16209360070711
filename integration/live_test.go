//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/coder/websocket"

	"github.com/ferryhq/ferry/internal/testkit/hydra"
	"github.com/ferryhq/ferry/live"
)

// liveFrame is a frame of the live channel, as a client reads it.
type liveFrame struct {
	Type, Topic, Status, Code, Message string
	Seq                                int
	Event                              *struct {
		TransferID, Type, Location, Actor string
		Seq, Chunk                        int
	}
}

// liveClient reads frames in a goroutine of its own: a Read whose context
// ends closes a coder/websocket connection, so waits are on the channel.
type liveClient struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan []byte
}

// dialLive connects to ferry local's WebSocket API with token; it returns
// the HTTP status of a refused upgrade.
func dialLive(t *testing.T, token string) (*liveClient, int) {
	t.Helper()
	stack.mu.Lock()
	base := stack.local.live
	stack.mu.Unlock()
	u := base + "/"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", base, err)
		}
		return nil, resp.StatusCode
	}
	ws.SetReadLimit(1 << 20)
	c := &liveClient{t, ws, make(chan []byte, 1000)}
	go func() {
		defer close(c.frames)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			c.frames <- b
		}
	}()
	t.Cleanup(func() { _ = ws.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

func (c *liveClient) send(v any) {
	c.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads a frame, or returns nil after wait.
func (c *liveClient) next(wait time.Duration) *liveFrame {
	c.t.Helper()
	var b []byte
	select {
	case got, ok := <-c.frames:
		if !ok {
			c.t.Fatal("the connection closed")
		}
		b = got
	case <-time.After(wait):
		return nil
	}
	var f liveFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return &f
}

// ask sends a frame and returns the answer.
func (c *liveClient) ask(v any) liveFrame {
	c.t.Helper()
	c.send(v)
	f := c.next(10 * time.Second)
	if f == nil {
		c.t.Fatalf("no answer to %v", v)
	}
	return *f
}

// events reads the events of transfer id until its Delivered.
func (c *liveClient) events(id string) []liveFrame {
	c.t.Helper()
	var out []liveFrame
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		f := c.next(time.Until(deadline))
		if f == nil {
			break
		}
		if f.Type != "event" || f.Event == nil || f.Event.TransferID != id {
			continue
		}
		out = append(out, *f)
		if f.Event.Type == "Delivered" {
			return out
		}
	}
	c.t.Fatalf("transfer %s: no Delivered over the live channel; had %+v", id, out)
	return nil
}

// TestLive: partners' WebSocket clients watch their own transfers. A's
// client, subscribed to its party, receives a three-chunk transfer's events
// Requested → ChunkSent ×3 → Delivered, in order, without the delivered
// location; B's client receives nothing of it and may watch neither it nor
// A. Without a token the upgrade is 401, with a forged one 403; a malformed
// frame answers an error frame and the connection goes on; an operator sees
// the transfer's state on subscribing; a connection that vanished without
// $disconnect is forgotten on the next event, when @connections answers
// 410.
func TestLive(t *testing.T) {
	if _, code := dialLive(t, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: upgrade %d, want 401", code)
	}
	if _, code := dialLive(t, "fry_"+"a234567a234567a234567a234567a234567a234567a234567a2345"); code != http.StatusForbidden {
		t.Errorf("a forged token: upgrade %d, want 403", code)
	}
	pa, pb := uniq("live-a"), uniq("live-b")
	a, _ := dialLive(t, apiKey(t, pa, "partner"))
	b, _ := dialLive(t, apiKey(t, pb, "partner"))
	if f := a.ask([]byte("not json")); f.Type != "error" || f.Code != "bad_request" {
		t.Errorf("a malformed frame: %+v, want an error frame", f)
	}
	if f := a.ask(map[string]string{"action": "dance"}); f.Type != "error" || f.Code != "bad_request" {
		t.Errorf("an unknown action: %+v, want an error frame", f)
	}
	if f := a.ask(map[string]string{"action": "subscribe", "party": pa}); f.Type != "subscribed" || f.Topic != "party:"+pa {
		t.Fatalf("A subscribes to its party: %+v", f)
	}
	if f := b.ask(map[string]string{"action": "subscribe", "party": pb}); f.Type != "subscribed" {
		t.Fatalf("B subscribes to its party: %+v", f)
	}
	if f := b.ask(map[string]string{"action": "subscribe", "party": pa}); f.Type != "error" || f.Code != "not_found" {
		t.Errorf("B subscribes to A's party: %+v, want not_found", f)
	}

	// A connection whose $disconnect was lost: its items, as $connect and
	// subscribe left them, for a connection API Gateway no longer has.
	stale := "c3RhbGUtY29ubg=="
	ddb := dynamodb.NewFromConfig(stack.awsCfg)
	conns := &live.Connections{DB: ddb, Table: stack.res.ConnectionsTable}
	if err := conns.Connect(context.Background(), stale, live.Identity{Party: pa, Role: "partner"}); err != nil {
		t.Fatal(err)
	}
	if err := conns.Subscribe(context.Background(), stale, live.Identity{Party: pa, Role: "partner"}, live.PartyTopic(pa), "", 0); err != nil {
		t.Fatal(err)
	}

	const size = 12 << 20 // three 5 MiB chunks on to-partner-a
	id, _ := stack.upload(t, "outbound/"+pa+".bin", size, map[string]string{"sender": pa, "recipient": "partner-a"})
	evs := a.events(id)
	var kinds []string
	for i, f := range evs {
		kinds = append(kinds, f.Event.Type)
		if i > 0 && f.Event.Seq != evs[i-1].Event.Seq+1 {
			t.Errorf("event %d has seq %d after %d: not in order, or one is missing", i, f.Event.Seq, evs[i-1].Event.Seq)
		}
		if f.Event.Location != "" || f.Event.Actor != "" {
			t.Errorf("a partner was shown location %q, actor %q", f.Event.Location, f.Event.Actor)
		}
	}
	chunks := 0
	for _, ty := range kinds {
		if ty == "ChunkSent" {
			chunks++
		}
	}
	if len(evs) == 0 || evs[0].Event.Seq != 1 || kinds[0] != "Requested" || chunks != 3 {
		t.Errorf("A received %v (from seq %d), want Requested first and 3 ChunkSent before Delivered", kinds, evs[0].Event.Seq)
	}
	if f := b.next(2 * time.Second); f != nil {
		t.Errorf("B received %+v of A's transfer", f)
	}
	if f := b.ask(map[string]string{"action": "subscribe", "transfer": id}); f.Type != "error" || f.Code != "not_found" {
		t.Errorf("B subscribes to A's transfer: %+v, want not_found", f)
	}
	if f := b.ask(map[string]string{"action": "subscribe", "transfer": "01J0000000000000000000000X"}); f.Type != "error" || f.Code != "not_found" {
		t.Errorf("B subscribes to a transfer that does not exist: %+v, want the same not_found", f)
	}

	op, _ := dialLive(t, apiKey(t, uniq("live-op"), "operator"))
	if f := op.ask(map[string]string{"action": "subscribe", "transfer": id}); f.Type != "subscribed" || f.Status != "DELIVERED" || f.Seq != evs[len(evs)-1].Event.Seq {
		t.Errorf("the operator subscribes to A's transfer: %+v, want it DELIVERED at seq %d", f, evs[len(evs)-1].Event.Seq)
	}

	out, err := ddb.Query(context.Background(), &dynamodb.QueryInput{
		TableName: aws.String(stack.res.ConnectionsTable), KeyConditionExpression: aws.String("pk = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: "C#" + stale}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 0 {
		t.Errorf("the stale connection still has %d items after an event it should have had", len(out.Items))
	}
	subs, err := conns.Subscribers(context.Background(), live.PartyTopic(pa))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if s.Connection == stale {
			t.Errorf("the stale connection still subscribes to %s", pa)
		}
	}
}

// TestLiveTokens: $connect takes an OIDC issuer's JWT (Ory Hydra's) as it
// takes an API key; the same token with its signature spoiled is refused.
func TestLiveTokens(t *testing.T) {
	ctx := context.Background()
	h := stack.peers.hydra
	c := hydra.Client{ID: uniq("live-jwt"), Secret: "integration-secret-live", Audience: []string{oidcAudience}}
	if err := h.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	tok, err := h.Token(ctx, c, oidcAudience)
	if err != nil {
		t.Fatal(err)
	}
	forged := tok[:strings.LastIndex(tok, ".")+1] + "c2lnbmVkLWJ5LW5vYm9keQ"
	if _, code := dialLive(t, forged); code != http.StatusForbidden {
		t.Errorf("a token with a forged signature: upgrade %d, want 403", code)
	}
	conn, code := dialLive(t, tok)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("Hydra's token: upgrade %d, want a connection", code)
	}
	if f := conn.ask(map[string]string{"action": "subscribe", "party": c.ID}); f.Type != "subscribed" || f.Topic != "party:"+c.ID {
		t.Errorf("the token's party subscribes to itself: %+v", f)
	}
}
