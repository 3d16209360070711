package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/live"
	"github.com/ferryhq/ferry/schema"
)

// conns is the connections table in memory: subscribers by topic and a
// cursor per connection and transfer, with Claim's condition.
type conns struct {
	mu      sync.Mutex
	subs    map[live.Topic][]live.Subscriber
	cursors map[string]int
	gone    []string
}

func (c *conns) Subscribers(_ context.Context, t live.Topic) ([]live.Subscriber, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.subs[t]), nil
}

func (c *conns) Claim(_ context.Context, id, transfer string, seq int) (int, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := c.cursors[id+"/"+transfer]
	if from >= seq {
		return 0, false, nil
	}
	c.cursors[id+"/"+transfer] = seq
	return from, true, nil
}

func (c *conns) Rewind(_ context.Context, id, transfer string, seq, from int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cursors[id+"/"+transfer] == seq {
		c.cursors[id+"/"+transfer] = from
	}
	return nil
}

func (c *conns) Disconnect(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gone = append(c.gone, id)
	for t, ss := range c.subs {
		c.subs[t] = slices.DeleteFunc(ss, func(s live.Subscriber) bool { return s.Connection == id })
	}
	return nil
}

// history is a transfer's events, for catch-ups.
type history struct{ events []domain.Event }

func (h history) EventStates(_ context.Context, id string, after, limit int) ([]domain.Event, []domain.State, error) {
	var evs []domain.Event
	var sts []domain.State
	for _, e := range h.events {
		if e.Seq > after && len(evs) < limit {
			evs = append(evs, e)
			sts = append(sts, domain.State{ID: id, Version: e.Seq, Request: domain.Requested{Sender: "lab-a", Recipient: "lab-b"}})
		}
	}
	return evs, sts, nil
}

// pusher records what each connection was sent; gone connections answer
// ErrGone, down ones an unavailable error.
type pusher struct {
	mu   sync.Mutex
	sent map[string][]schema.Detail
	gone map[string]bool
	down map[string]bool
}

func (p *pusher) Post(_ context.Context, id string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone[id] {
		return live.ErrGone
	}
	if p.down[id] {
		return domain.Errorf(domain.KindUnavailable, "throttled")
	}
	var f struct{ Event schema.Detail }
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	p.sent[id] = append(p.sent[id], f.Event)
	return nil
}

const id = "01J00000000000000000000001"

func detail(seq int) schema.Detail {
	return schema.Detail{TransferID: id, Seq: seq, Type: "ChunkSent", Sender: "lab-a", Recipient: "lab-b", Location: "s3://b/k", Actor: "ops (operator, api key 1)"}
}

func batch(ds ...schema.Detail) events.SQSEvent {
	var ev events.SQSEvent
	for i, d := range ds {
		b, _ := json.Marshal(map[string]any{"detail-type": "Transfer Chunk Sent", "source": "ferry", "detail": d})
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("m", i), Body: string(b)})
	}
	return ev
}

type fixture struct {
	h     *Handler
	conns *conns
	push  *pusher
}

func newFixture() fixture {
	c := &conns{subs: map[live.Topic][]live.Subscriber{
		live.PartyTopic("lab-a"):     {{Connection: "a1", Identity: live.Identity{Party: "lab-a", Role: "partner"}}},
		live.PartyTopic("lab-b"):     {{Connection: "b1", Identity: live.Identity{Party: "lab-b", Role: "partner"}}},
		live.PartyTopic("lab-c"):     {{Connection: "c1", Identity: live.Identity{Party: "lab-c", Role: "partner"}}},
		live.TransferTopic(id):       {{Connection: "op", Identity: live.Identity{Party: "ops", Role: "operator"}}, {Connection: "a1", Identity: live.Identity{Party: "lab-a", Role: "partner"}}},
		live.PartyTopic("elsewhere"): {{Connection: "x", Identity: live.Identity{Party: "elsewhere", Role: "partner"}}},
	}, cursors: map[string]int{}}
	var evs []domain.Event
	for seq := 1; seq <= 6; seq++ {
		evs = append(evs, domain.Event{TransferID: id, Seq: seq, At: time.Unix(int64(seq), 0), Payload: domain.ChunkSent{Index: seq, Bytes: 1}})
	}
	p := &pusher{sent: map[string][]schema.Detail{}, gone: map[string]bool{}, down: map[string]bool{}}
	h := &Handler{Connections: c, Events: history{evs}, Push: p, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return fixture{h, c, p}
}

func seqs(ds []schema.Detail) []int {
	var out []int
	for _, d := range ds {
		out = append(out, d.Seq)
	}
	return out
}

// TestOrderWhateverTheDelivery: events delivered out of order, twice, or
// with gaps reach each subscriber once each, in order, the gaps filled
// from the store; a connection that watches both the transfer and its
// party has each event once.
func TestOrderWhateverTheDelivery(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	for _, b := range [][]int{{2, 1}, {1}, {4}, {3, 4}, {6}} {
		var ds []schema.Detail
		for _, s := range b {
			ds = append(ds, detail(s))
		}
		resp, err := f.h.Handle(ctx, batch(ds...))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("batch %v: %v %+v", b, err, resp)
		}
	}
	want := []int{1, 2, 3, 4, 5, 6}
	for _, c := range []string{"a1", "b1", "op"} {
		if got := seqs(f.push.sent[c]); !slices.Equal(got, want) {
			t.Errorf("%s was sent %v, want %v", c, got, want)
		}
	}
	for _, c := range []string{"c1", "x"} {
		if len(f.push.sent[c]) != 0 {
			t.Errorf("%s, who may not see the transfer, was sent %v", c, seqs(f.push.sent[c]))
		}
	}
	if d := f.push.sent["a1"][0]; d.Location != "" || d.Actor != "" {
		t.Errorf("a partner was shown location %q, actor %q", d.Location, d.Actor)
	}
	if d := f.push.sent["op"][0]; d.Location == "" || d.Actor == "" {
		t.Errorf("the operator was not shown location and actor: %+v", d)
	}
}

// TestGoneAndDown: a connection that is gone is forgotten and holds up no
// one; one whose push fails for a while makes the record fail, and the
// retry sends it what it missed, once.
func TestGoneAndDown(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	f.push.gone["b1"] = true
	f.push.down["op"] = true
	resp, _ := f.h.Handle(ctx, batch(detail(1), detail(2)))
	if len(resp.BatchItemFailures) != 2 {
		t.Errorf("failures %+v, want both records (op is down)", resp.BatchItemFailures)
	}
	if !slices.Equal(f.conns.gone, []string{"b1"}) {
		t.Errorf("forgotten %v, want [b1]", f.conns.gone)
	}
	if got := seqs(f.push.sent["a1"]); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("a1 was sent %v while b1 was gone and op down, want [1 2]", got)
	}
	delete(f.push.down, "op")
	resp, _ = f.h.Handle(ctx, batch(detail(1), detail(2)))
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("the retry failed: %+v", resp.BatchItemFailures)
	}
	if got := seqs(f.push.sent["op"]); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("op was sent %v after the retry, want [1 2]", got)
	}
	if got := seqs(f.push.sent["a1"]); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("a1 was sent %v after the retry, want [1 2] once", got)
	}
}

// TestMalformedRecordsAreDropped: a record that is no transfer event is
// dropped, not retried, and the batch's others go out.
func TestMalformedRecordsAreDropped(t *testing.T) {
	f := newFixture()
	ev := batch(detail(1))
	ev.Records = append(ev.Records, events.SQSMessage{MessageId: "junk", Body: "not json"},
		events.SQSMessage{MessageId: "no-id", Body: `{"detail": {"seq": 1}}`})
	resp, err := f.h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("Handle = %+v, %v; want no failures", resp, err)
	}
	if got := seqs(f.push.sent["a1"]); !slices.Equal(got, []int{1}) {
		t.Errorf("a1 was sent %v, want [1]", got)
	}
}
