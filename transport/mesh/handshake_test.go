package mesh

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/testkit/fakeclock"
)

// handshakeServer counts handshakes (POST /messageexchange/{mailbox});
// fail, while set, makes them answer 500.
type handshakeServer struct {
	*httptest.Server
	count atomic.Int32
	fail  atomic.Bool
}

func newHandshakeServer(t *testing.T) *handshakeServer {
	t.Helper()
	s := &handshakeServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || strings.Count(r.URL.Path, "/") != 2 {
			http.NotFound(w, r)
			return
		}
		s.count.Add(1)
		if s.fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// memRecord is a HandshakeRecord in memory, standing in for the table that
// processes share (store.Store is tested against the emulator).
type memRecord struct {
	mu       sync.Mutex
	at       map[string]time.Time
	err      error // returned by every call while set
	claims   int
	released []time.Time
}

func (m *memRecord) ClaimHandshake(_ context.Context, mailbox string, now time.Time, every time.Duration) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims++
	if m.err != nil {
		return time.Time{}, false, m.err
	}
	if last, ok := m.at[mailbox]; ok && !last.Before(now.Add(-every)) {
		return last, false, nil
	}
	if m.at == nil {
		m.at = map[string]time.Time{}
	}
	m.at[mailbox] = now
	return now, true, nil
}

func (m *memRecord) ReleaseHandshake(_ context.Context, mailbox string, claimedAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.released = append(m.released, claimedAt)
	if m.at[mailbox].Equal(claimedAt) {
		delete(m.at, mailbox)
	}
	return m.err
}

func handshakeClient(t *testing.T, url string, clock *fakeclock.Clock, rec HandshakeRecord, log *slog.Logger) *Client {
	t.Helper()
	return testClient(t, url, func(c *ClientConfig) {
		c.Now = clock.Now
		c.Log = log
		if rec != nil {
			c.Handshakes = rec
		}
	})
}

func TestEnsureHandshakeOncePerDay(t *testing.T) {
	srv := newHandshakeServer(t)
	clock := fakeclock.New(testNow)
	c := handshakeClient(t, srv.URL, clock, nil, nil)
	ctx := ctxTimeout(t, 5*time.Second)
	ensure := func(want int32, when string) {
		t.Helper()
		if err := c.EnsureHandshake(ctx); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if got := srv.count.Load(); got != want {
			t.Fatalf("%s: %d handshakes, want %d", when, got, want)
		}
	}
	ensure(1, "first call")
	ensure(1, "second call")
	clock.Advance(HandshakeInterval - time.Minute)
	ensure(1, "a minute short of a day later")
	clock.Advance(time.Minute)
	ensure(2, "a day after the first")

	t.Run("concurrent calls handshake once", func(t *testing.T) {
		srv := newHandshakeServer(t)
		c := handshakeClient(t, srv.URL, fakeclock.New(testNow), nil, nil)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if err := c.EnsureHandshake(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := srv.count.Load(); got != 1 {
			t.Errorf("%d handshakes, want 1", got)
		}
	})

	t.Run("a failed handshake is tried again", func(t *testing.T) {
		srv := newHandshakeServer(t)
		c := handshakeClient(t, srv.URL, fakeclock.New(testNow), nil, nil)
		srv.fail.Store(true)
		if err := c.EnsureHandshake(ctx); domain.KindOf(err) != domain.KindUnavailable {
			t.Fatalf("EnsureHandshake = %v, want the handshake's 500 (unavailable)", err)
		}
		srv.fail.Store(false)
		if err := c.EnsureHandshake(ctx); err != nil {
			t.Fatal(err)
		}
		if got := srv.count.Load(); got != 2 {
			t.Errorf("%d handshakes, want the failed one repeated", got)
		}
	})
}

func TestEnsureHandshakeSharedAcrossProcesses(t *testing.T) {
	srv := newHandshakeServer(t)
	clock := fakeclock.New(testNow)
	rec := &memRecord{}
	ctx := ctxTimeout(t, 5*time.Second)
	// Two clients of one mailbox sharing the record: two Lambda instances.
	a := handshakeClient(t, srv.URL, clock, rec, nil)
	b := handshakeClient(t, srv.URL, clock, rec, nil)
	for _, c := range []*Client{a, b, a, b} {
		if err := c.EnsureHandshake(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.count.Load(); got != 1 {
		t.Fatalf("%d handshakes by two processes on day one, want 1", got)
	}
	if rec.claims != 2 {
		t.Errorf("%d claims, want 2 (one per process; later calls remember)", rec.claims)
	}
	clock.Advance(HandshakeInterval + time.Second)
	for _, c := range []*Client{b, a, b} {
		if err := c.EnsureHandshake(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.count.Load(); got != 2 {
		t.Errorf("%d handshakes after a second day, want 2", got)
	}

	t.Run("a claim whose handshake failed is released", func(t *testing.T) {
		srv := newHandshakeServer(t)
		rec := &memRecord{}
		a := handshakeClient(t, srv.URL, clock, rec, nil)
		b := handshakeClient(t, srv.URL, clock, rec, nil)
		srv.fail.Store(true)
		if err := a.EnsureHandshake(ctx); err == nil {
			t.Fatal("EnsureHandshake succeeded against a failing MESH")
		}
		if len(rec.released) != 1 || !rec.released[0].Equal(clock.Now()) {
			t.Fatalf("released %v, want the claim made at %s", rec.released, clock.Now())
		}
		srv.fail.Store(false)
		if err := b.EnsureHandshake(ctx); err != nil {
			t.Fatal(err)
		}
		if got := srv.count.Load(); got != 2 {
			t.Errorf("%d handshakes, want the other process to try again", got)
		}
	})
}

func TestEnsureHandshakeWhenRecordUnavailable(t *testing.T) {
	srv := newHandshakeServer(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	rec := &memRecord{err: &domain.Error{Kind: domain.KindUnavailable, Message: "claim handshake: throttled", Err: errors.New("ThrottlingException")}}
	c := handshakeClient(t, srv.URL, fakeclock.New(testNow), rec, log)
	ctx := ctxTimeout(t, 5*time.Second)
	if err := c.EnsureHandshake(ctx); err != nil {
		t.Fatalf("EnsureHandshake = %v, want it to handshake anyway", err)
	}
	if got := srv.count.Load(); got != 1 {
		t.Fatalf("%d handshakes, want 1", got)
	}
	if !strings.Contains(logs.String(), "shared handshake record unavailable") || !strings.Contains(logs.String(), "X26ABC1") {
		t.Errorf("log = %q, want a warning naming the mailbox", logs.String())
	}
	noSecrets(t, logs.String())
	if err := c.EnsureHandshake(ctx); err != nil || srv.count.Load() != 1 {
		t.Errorf("second call: %v, %d handshakes; want it remembered", err, srv.count.Load())
	}
}
