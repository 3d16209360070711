package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/bus"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// checker answers each destination with what its map says, counting calls.
type checker struct {
	mu    sync.Mutex
	err   map[string]error
	creds map[string][]transport.Credential
	calls map[string]int
}

func (c *checker) Check(_ context.Context, d domain.Destination) ([]transport.Credential, error) {
	key := d.Bucket + d.Endpoint
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[key]++
	return c.creds[key], c.err[key]
}

type mailbox struct{ err error }

func (m mailbox) Check(context.Context) ([]transport.Credential, error) { return nil, m.err }

func table() domain.Routes {
	return domain.Routes{Routes: []domain.Route{
		{Name: "a", Destination: domain.Destination{Type: "s3", Bucket: "lake"}},
		{Name: "b", Destination: domain.Destination{Type: "sftp", Endpoint: "partner"}},
		{Name: "c", Destination: domain.Destination{Type: "s3", Bucket: "lake", Prefix: "other/"}},
		{Name: "d", Destination: domain.Destination{Type: "null"}},
		{Name: "e", Destination: domain.Destination{Type: "mesh"}},
	}}
}

func TestTargetsAreTheDistinctDestinationsInTableOrder(t *testing.T) {
	c := &checker{}
	checkers := map[string]transport.Checker{"s3": c, "sftp": c}
	boxes := map[string]Mailbox{"X26ABC2": mailbox{}, "X26ABC1": mailbox{}}
	ts, err := Targets(table(), checkers, boxes, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range ts {
		got = append(got, tg.Partner+"="+strings.Join(tg.Routes, ","))
	}
	want := "s3 lake=a,c sftp partner=b mesh X26ABC1=e mesh X26ABC2=e"
	if strings.Join(got, " ") != want {
		t.Fatalf("targets %q, want %q", strings.Join(got, " "), want)
	}
	ts, err = Targets(table(), checkers, boxes, "b")
	if err != nil || len(ts) != 1 || ts[0].Partner != "sftp partner" {
		t.Fatalf("--route b: %+v, %v", ts, err)
	}
	if _, err := Targets(table(), checkers, boxes, "nope"); domain.KindOf(err) != domain.KindNotFound || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown route: %v, want a not-found error naming it", err)
	}
}

func TestRunReportsEachPartnerWithItsReason(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	soon := transport.Credential{Name: "caBundle", Subject: "CN=soon", Expires: now.Add(10 * 24 * time.Hour)}
	later := transport.Credential{Name: "clientCert", Subject: "CN=later", Expires: now.Add(90 * 24 * time.Hour)}
	targets := []Target{
		{Partner: "ok", Check: func(context.Context) ([]transport.Credential, error) { return []transport.Credential{later, soon}, nil }},
		{Partner: "refused", Check: func(context.Context) ([]transport.Credential, error) {
			return nil, &domain.Error{Kind: domain.KindUnauthorized, Code: "403", Message: "password refused"}
		}},
		{Partner: "slow", Check: func(ctx context.Context) ([]transport.Credential, error) { <-ctx.Done(); return nil, ctx.Err() }},
		{Partner: "buggy", Check: func(context.Context) ([]transport.Credential, error) { panic("boom") }},
	}
	rs := Runner{Timeout: 50 * time.Millisecond, Now: func() time.Time { return now }}.Run(context.Background(), targets)
	if len(rs) != 4 {
		t.Fatalf("%d results", len(rs))
	}
	if r := rs[0]; !r.Healthy || len(r.Credentials) != 2 || len(r.Expiring) != 1 || r.Expiring[0].Subject != "CN=soon" {
		t.Errorf("ok: %+v", r)
	}
	if r := rs[1]; r.Healthy || r.Kind != "unauthorized" || r.Code != "403" || !strings.Contains(r.Reason, "password refused") {
		t.Errorf("refused: %+v", r)
	}
	if r := rs[2]; r.Healthy || r.Kind != "unavailable" || !strings.Contains(r.Reason, "no answer within 50ms") {
		t.Errorf("slow: %+v", r)
	}
	if r := rs[3]; r.Healthy || !strings.Contains(r.Reason, "boom") {
		t.Errorf("buggy: %+v", r)
	}
	if s := Summary(rs); s != "4 partners checked: 1 healthy, 3 unhealthy" {
		t.Errorf("summary %q", s)
	}
}

func TestNoticeIsTheLatestThresholdPassed(t *testing.T) {
	day := 24 * time.Hour
	for left, want := range map[time.Duration]int{
		31 * day: 0, 30 * day: 30, 20 * day: 30, 14 * day: 14, 10 * day: 14, 7 * day: 7, 2 * day: 7,
		day: 1, time.Hour: 1, -day: 1,
	} {
		if got := Notice(left); got != want {
			t.Errorf("Notice(%s) = %d, want %d", left, got, want)
		}
	}
}

func TestBackoffDoublesToADay(t *testing.T) {
	for n, want := range map[int]time.Duration{3: time.Hour, 4: 2 * time.Hour, 6: 8 * time.Hour, 8: 24 * time.Hour, 30: 24 * time.Hour} {
		if got := backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// memState keeps the handler's state as the store does, for these tests
// of the handler's decisions; integration/health_test.go runs the handler
// against the real store and bus.
type memState struct {
	states  map[string]store.PartnerHealth
	notices map[string]bool // published
}

func (m *memState) PartnerHealth(_ context.Context, p string) (store.PartnerHealth, bool, error) {
	h, ok := m.states[p]
	return h, ok, nil
}

func (m *memState) PutPartnerHealth(_ context.Context, h store.PartnerHealth, prev time.Time) error {
	if cur, ok := m.states[h.Partner]; ok != !prev.IsZero() || ok && !cur.Checked.Equal(prev) {
		return store.ErrConflict
	}
	m.states[h.Partner] = h
	return nil
}

func (m *memState) ClaimNotice(_ context.Context, p, key string, _ time.Time) (bool, error) {
	if m.notices[p+key] {
		return false, nil
	}
	m.notices[p+key] = false
	return true, nil
}

func (m *memState) MarkNotice(_ context.Context, p, key string) error {
	m.notices[p+key] = true
	return nil
}

type memBus struct {
	fail   bool
	events []string // "detail-type partner"
}

func (b *memBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	if b.fail {
		return nil, errors.New("bus down")
	}
	for _, e := range in.Entries {
		var d struct {
			Partner string `json:"partner"`
			Notice  int    `json:"notice"`
		}
		_ = json.Unmarshal([]byte(aws.ToString(e.Detail)), &d)
		s := aws.ToString(e.DetailType) + " " + d.Partner
		if d.Notice > 0 {
			s += " " + strconv.Itoa(d.Notice)
		}
		b.events = append(b.events, s)
	}
	return &eventbridge.PutEventsOutput{}, nil
}

func TestHandlerAnnouncesChangesOnceAndLosesNone(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	var failing error
	creds := []transport.Credential{{Name: "caBundle", Subject: "CN=soon", Expires: now.Add(10 * 24 * time.Hour)}}
	st := &memState{states: map[string]store.PartnerHealth{}, notices: map[string]bool{}}
	b := &memBus{}
	h := &Handler{
		Targets: []Target{
			{Partner: "https peer", Type: "https", Routes: []string{"r"}, Check: func(context.Context) ([]transport.Credential, error) { return creds, failing }},
			{Partner: "s3 lake", Type: "s3", Routes: []string{"s"}, Check: func(context.Context) ([]transport.Credential, error) { return nil, nil }},
		},
		Store: st, Bus: bus.Bus{Client: b}, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	run := func(step string, want ...string) {
		t.Helper()
		b.events = nil
		_ = h.Handle(context.Background())
		if strings.Join(b.events, "; ") != strings.Join(want, "; ") {
			t.Fatalf("%s: published %q, want %q", step, b.events, want)
		}
		now = now.Add(time.Minute)
	}
	run("first run, healthy", "Credential Expiring https peer 14")
	run("again: nothing new")
	failing = &domain.Error{Kind: domain.KindUnavailable, Message: "connection refused"}
	run("goes down", "Partner Unhealthy https peer")
	run("stays down")
	failing = nil
	b.fail = true
	if err := h.Handle(context.Background()); err == nil {
		t.Fatal("a run whose events could not be published reports no error")
	}
	now = now.Add(time.Minute)
	b.fail = false
	run("comes back: the event the bus refused is published now", "Partner Healthy https peer")
	now = now.Add(8 * 24 * time.Hour)
	run("7 days before expiry", "Credential Expiring https peer 7")
	run("and only once")
}

func TestHandlerBacksOffRefusedCredentials(t *testing.T) {
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	calls := 0
	var logs strings.Builder
	st := &memState{states: map[string]store.PartnerHealth{}, notices: map[string]bool{}}
	b := &memBus{}
	h := &Handler{
		Targets: []Target{{Partner: "mesh X26ABC2", Type: "mesh", Check: func(context.Context) ([]transport.Credential, error) {
			calls++
			return nil, &domain.Error{Kind: domain.KindUnauthorized, Message: "mailbox password refused"}
		}}},
		Store: st, Bus: bus.Bus{Client: b}, Now: func() time.Time { return now }, Log: slog.New(slog.NewJSONHandler(&logs, nil)), MetricsNamespace: "ferry/test",
	}
	for range 6 {
		_ = h.Handle(context.Background())
		now = now.Add(time.Minute)
	}
	if calls != AuthBackoffAfter {
		t.Fatalf("%d logins in 6 runs a minute apart, want %d then a pause", calls, AuthBackoffAfter)
	}
	if len(b.events) != 1 || b.events[0] != "Partner Unhealthy mesh X26ABC2" {
		t.Fatalf("events %q, want one Partner Unhealthy", b.events)
	}
	if n := strings.Count(logs.String(), `"UnhealthyPartners":1`); n != 6 {
		t.Errorf("%d of 6 runs counted the partner unhealthy (backing off included), want 6", n)
	}
	now = now.Add(AuthBackoffFirst)
	_ = h.Handle(context.Background())
	if calls != AuthBackoffAfter+1 {
		t.Fatalf("after the pause: %d logins, want one more", calls)
	}
}
