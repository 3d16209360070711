// Package storetest is the contract of ferry's event store, written once and
// run against every implementation, as watermill's tests.TestPubSub is for
// its Pub/Subs.
//
// Run holds every implementation of the Store interface to the contract
// that handlers rely on (Append, Load, Events, Project, FindByRef): the
// DynamoDB store.Store against every DynamoDB that ferry meets (an emulator
// in integration tests, the real service in a smoke test), and
// internal/testkit/memstore, the fake that handler unit tests use, in plain
// `go test`. RunDynamoDB adds the cases only the DynamoDB store has to keep:
// request and write counts, SDK resends, stream images, View and the
// history indexes.
//
//	storetest.Run(t, storetest.Harness{NewStore: func(t *testing.T) storetest.Store { return memstore.New() }})
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// Store is the part of an event store that ferry's handlers use, and that
// every implementation (store.Store on DynamoDB, internal/testkit/memstore in unit
// tests) must keep as store.Store documents it.
type Store interface {
	Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error)
	Load(ctx context.Context, id string) (domain.State, error)
	Events(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, error)
	Project(ctx context.Context, st domain.State) (bool, error)
	FindByRef(ctx context.Context, ref string) (string, error)
}

var _ Store = (*store.Store)(nil)

// Harness gives Run what it needs of the implementation under test.
type Harness struct {
	// NewStore returns a new, empty Store.
	NewStore func(t *testing.T) Store
}

// Run runs the store contract shared by every implementation as subtests of
// t. RunDynamoDB adds what only the DynamoDB store keeps.
func Run(t *testing.T, h Harness) {
	if h.NewStore == nil {
		t.Fatal("storetest: the harness needs NewStore")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"append and load round trip", testAppendLoad},
		{"a long history loads and pages", testLongHistory},
		{"concurrent appends of one version: exactly one wins", testRace},
		{"a multi-event append is atomic", testAtomic},
		{"an older view is never projected over a newer one", testProjectOrder},
		{"a transfer is found by its reference once its view is projected", testFindByRef},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

func newID() string { return ulid.MustNew(ulid.Now(), rand.Reader).String() }

var base = time.Date(2024, 6, 3, 18, 0, 0, 0, time.UTC)

// request returns the Requested event of a new transfer of chunks chunks.
func request(t *testing.T, id string, chunks int, at time.Time) domain.Event {
	t.Helper()
	evs, err := domain.Decide(domain.State{}, domain.Request{Requested: domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: "in", Key: "outbound/" + id},
		Route:       "r1",
		Destination: domain.Destination{Type: "null"},
		Sender:      "SENDER", Recipient: "RECIPIENT", Workflow: "WF", Filename: id + ".dat",
		Size: int64(chunks) * 4, ChunkSize: 4,
	}}, at)
	if err != nil {
		t.Fatal(err)
	}
	evs[0].TransferID = id
	return evs[0]
}

// decide runs Decide and fails the test if it refuses.
func decide(t *testing.T, st domain.State, c domain.Command, at time.Time) []domain.Event {
	t.Helper()
	evs, err := domain.Decide(st, c, at)
	if err != nil {
		t.Fatalf("decide %T at v%d: %v", c, st.Version, err)
	}
	return evs
}

func mustAppend(t *testing.T, s Store, prev domain.State, evs ...domain.Event) domain.State {
	t.Helper()
	st, err := s.Append(context.Background(), prev, evs...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return st
}

// started returns a transfer of chunks chunks, requested and started.
func started(t *testing.T, s Store, chunks int) domain.State {
	t.Helper()
	id := newID()
	st := mustAppend(t, s, domain.State{}, request(t, id, chunks, base))
	return mustAppend(t, s, st, decide(t, st, domain.Start{Ref: "up-1"}, base)...)
}

func chunk(t *testing.T, st domain.State, at time.Time) []domain.Event {
	t.Helper()
	n := st.ChunksSent + 1
	return decide(t, st, domain.RecordChunk{Index: n, Bytes: st.Request.Chunk(n).Length, Ref: fmt.Sprintf("etag-%d", n)}, at)
}

func checkEvents(t *testing.T, s Store, id string, want int) []domain.Event {
	t.Helper()
	evs, err := s.Events(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	if len(evs) != want {
		t.Fatalf("got %d events, want %d", len(evs), want)
	}
	for i, e := range evs {
		if e.Seq != i+1 || e.TransferID != id {
			t.Fatalf("event %d is %s v%d, want %s v%d", i, e.TransferID, e.Seq, id, i+1)
		}
	}
	return evs
}

func testAppendLoad(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.NewStore(t)
	id := newID()

	if _, err := s.Load(ctx, id); !errors.Is(err, store.ErrNotFound) || domain.KindOf(err) != domain.KindNotFound {
		t.Fatalf("load of a new id: err = %v, want ErrNotFound", err)
	}
	req := request(t, id, 3, base)
	st := mustAppend(t, s, domain.State{}, req)
	if want := domain.Fold(domain.State{}, req); !reflect.DeepEqual(st, want) {
		t.Fatalf("append returned %+v, want %+v", st, want)
	}
	got, err := s.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("load: got %+v, want %+v", got, st)
	}

	// Several events at once, then one.
	evs := decide(t, st, domain.Start{Ref: "up"}, base.Add(time.Second))
	st2 := domain.Fold(st, evs...)
	evs = append(evs, chunk(t, st2, base.Add(2*time.Second))...)
	st = mustAppend(t, s, st, evs...)
	st = mustAppend(t, s, st, chunk(t, st, base.Add(3*time.Second))...)
	if got, err = s.Load(ctx, id); err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("load: got %+v, %v, want %+v", got, err, st)
	}
	if got.Version != 4 || got.ChunksSent != 2 || !got.Started {
		t.Errorf("state %+v is not v4 with 2 chunks sent", got)
	}

	all := checkEvents(t, s, id, 4)
	if !reflect.DeepEqual(all[0], req) {
		t.Errorf("event 1: got %+v, want %+v", all[0], req)
	}
	if all[3].Type() != domain.TypeChunkSent || all[3].Payload.(domain.ChunkSent).Index != 2 {
		t.Errorf("event 4 is %+v", all[3])
	}
	page, err := s.Events(ctx, id, 2, 1)
	if err != nil || len(page) != 1 || page[0].Seq != 3 {
		t.Errorf("events after 2, limit 1: got %+v, %v", page, err)
	}
	if rest, err := s.Events(ctx, id, 4, 10); err != nil || len(rest) != 0 {
		t.Errorf("events after the last: got %+v, %v", rest, err)
	}

	t.Run("invalid appends write nothing", func(t *testing.T) {
		for name, evs := range map[string][]domain.Event{
			"gap":   {{TransferID: id, Seq: 6, At: base, Payload: domain.Retried{}}},
			"stale": {{TransferID: id, Seq: 4, At: base, Payload: domain.Retried{}}},
			"none":  nil,
			"too many": func() []domain.Event {
				evs := make([]domain.Event, store.MaxAppend+1)
				for i := range evs {
					evs[i] = domain.Event{TransferID: id, Seq: st.Version + 1 + i, At: base, Payload: domain.Retried{}}
				}
				return evs
			}(),
		} {
			if _, err := s.Append(ctx, st, evs...); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("%s: err = %v, want kind invalid", name, err)
			}
		}
		checkEvents(t, s, id, 4)
	})
}

func testRace(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.NewStore(t)
	const workers = 20
	st := started(t, s, 100)

	// race appends evs after prev from every worker at once and checks
	// that exactly one wins and the history has no gaps.
	race := func(t *testing.T, prev domain.State, evs []domain.Event) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, workers)
		start := make(chan struct{})
		for i := range workers {
			wg.Go(func() {
				<-start
				_, errs[i] = s.Append(ctx, prev, evs...)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrConflict) && domain.KindOf(err) == domain.KindConflict:
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d appends won, want 1", won)
		}
		checkEvents(t, s, prev.ID, prev.Version+len(evs))
	}

	t.Run("one version", func(t *testing.T) {
		race(t, st, chunk(t, st, base))
	})

	t.Run("several events", func(t *testing.T) {
		for range 3 {
			prev := started(t, s, 10)
			evs := chunk(t, prev, base)
			evs = append(evs, chunk(t, domain.Fold(prev, evs...), base)...)
			race(t, prev, evs)
		}
	})

	t.Run("reload and retry", func(t *testing.T) {
		// Every worker records chunks until each has won per times; losers
		// reload and decide again.
		const per = 3
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				for won := 0; won < per; {
					cur, err := s.Load(ctx, st.ID)
					if err != nil {
						errs <- err
						return
					}
					evs, err := domain.Decide(cur, domain.RecordChunk{Index: cur.ChunksSent + 1, Bytes: 4}, base)
					if err != nil {
						errs <- err
						return
					}
					_, err = s.Append(ctx, cur, evs...)
					switch {
					case err == nil:
						won++
					case !errors.Is(err, store.ErrConflict):
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		want := st.Version + 1 + workers*per
		evs := checkEvents(t, s, st.ID, want)
		for i, e := range evs[st.Version:] {
			if got := e.Payload.(domain.ChunkSent).Index; got != i+1 {
				t.Fatalf("event v%d records chunk %d, want %d", e.Seq, got, i+1)
			}
		}
	})
}

func testAtomic(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.NewStore(t)
	st := started(t, s, 10)
	// Someone else records chunk 1 first.
	mustAppend(t, s, st, chunk(t, st, base)...)

	var evs []domain.Event
	next := st
	for range 3 {
		e := chunk(t, next, base.Add(time.Minute))
		next = domain.Fold(next, e...)
		evs = append(evs, e...)
	}
	_, err := s.Append(ctx, st, evs...)
	if !errors.Is(err, store.ErrConflict) || domain.KindOf(err) != domain.KindConflict {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	all := checkEvents(t, s, st.ID, st.Version+1)
	if !all[len(all)-1].At.Equal(base) {
		t.Errorf("the stored chunk is not the first writer's")
	}
	if got, err := s.Load(ctx, st.ID); err != nil || got.Version != st.Version+1 {
		t.Errorf("load: got v%d, %v, want v%d", got.Version, err, st.Version+1)
	}
}

func testLongHistory(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.NewStore(t)
	const n = 200
	st := started(t, s, n)
	for st.Version < n {
		var batch []domain.Event
		next := st
		for len(batch) < store.MaxAppend && next.Version < n {
			evs := chunk(t, next, base.Add(time.Duration(next.Version)*time.Second))
			next = domain.Fold(next, evs...)
			batch = append(batch, evs...)
		}
		st = mustAppend(t, s, st, batch...)
	}
	got, err := s.Load(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) || got.Version != n || got.ChunksSent != n-2 {
		t.Errorf("load: got v%d with %d chunks, want v%d with %d", got.Version, got.ChunksSent, n, n-2)
	}
	checkEvents(t, s, st.ID, n)
	page, err := s.Events(ctx, st.ID, 50, 10)
	if err != nil || len(page) != 10 || page[0].Seq != 51 || page[9].Seq != 60 {
		t.Errorf("events 51..60: got %d events, %v", len(page), err)
	}
	if all, err := s.Events(ctx, st.ID, -1, 0); err != nil || len(all) != n {
		t.Errorf("events after -1: got %d events, %v, want all %d", len(all), err, n)
	}
	if none, err := s.Events(ctx, newID(), 0, 0); err != nil || len(none) != 0 {
		t.Errorf("events of a new id: got %+v, %v, want none and no error", none, err)
	}
}

// states returns the states after each of three events of a new transfer:
// requested, started with ref, one chunk sent.
func states(t *testing.T, ref string) (s1, s2, s3 domain.State) {
	t.Helper()
	s1 = domain.Fold(domain.State{}, request(t, newID(), 3, base))
	s2 = domain.Fold(s1, decide(t, s1, domain.Start{Ref: ref}, base.Add(time.Second))...)
	s3 = domain.Fold(s2, chunk(t, s2, base.Add(2*time.Second))...)
	return s1, s2, s3
}

func testProjectOrder(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.NewStore(t)
	s1, s2, s3 := states(t, "")
	steps := []struct {
		st    domain.State
		wrote bool
	}{
		{s1, true},
		{s3, true},
		{s2, false}, // a late record of an older version
		{s3, false}, // a duplicate
		{s1, false},
	}
	for i, step := range steps {
		wrote, err := s.Project(ctx, step.st)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if wrote != step.wrote {
			t.Errorf("step %d: project v%d wrote %t, want %t", i, step.st.Version, wrote, step.wrote)
		}
	}
	for name, st := range map[string]domain.State{"no id": {Version: 1}, "no version": {ID: newID()}} {
		if _, err := s.Project(ctx, st); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("project of a state with %s: err = %v, want kind invalid", name, err)
		}
	}
}

// findEventually calls FindByRef until it returns want (an id, or "" for
// not found) or five seconds pass: DynamoDB's global secondary indexes,
// which FindByRef reads, are eventually consistent.
func findEventually(t *testing.T, s Store, ref, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		id, err := s.FindByRef(context.Background(), ref)
		switch {
		case want == "" && errors.Is(err, store.ErrNotFound) && domain.KindOf(err) == domain.KindNotFound:
			return
		case want != "" && err == nil && id == want:
			return
		case err != nil && !errors.Is(err, store.ErrNotFound):
			t.Fatalf("find %q: %v", ref, err)
		}
		if time.Now().After(deadline) {
			if want == "" {
				t.Fatalf("find %q: got %q, %v, want ErrNotFound", ref, id, err)
			}
			t.Fatalf("find %q: got %q, %v, want %s", ref, id, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testFindByRef(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.NewStore(t)
	ref := "msg-" + newID()
	s1 := mustAppend(t, s, domain.State{}, request(t, newID(), 3, base))
	s2 := mustAppend(t, s, s1, decide(t, s1, domain.Start{Ref: ref}, base.Add(time.Second))...)
	if s2.Ref != ref {
		t.Fatalf("started with ref %q, state has %q", ref, s2.Ref)
	}

	// The events alone do not make the transfer findable: the read model
	// does, as publish projects it from the stream.
	findEventually(t, s, ref, "")
	if ok, err := s.Project(ctx, s1); err != nil || !ok {
		t.Fatalf("project v1: %t, %v", ok, err)
	}
	findEventually(t, s, ref, "")
	if ok, err := s.Project(ctx, s2); err != nil || !ok {
		t.Fatalf("project v2: %t, %v", ok, err)
	}
	findEventually(t, s, ref, s2.ID)

	t.Run("a newer view with another reference moves it", func(t *testing.T) {
		other := "msg-" + newID()
		st := s2
		st.Version, st.Ref = st.Version+1, other // a made-up later state
		if ok, err := s.Project(ctx, st); err != nil || !ok {
			t.Fatalf("project: %t, %v", ok, err)
		}
		findEventually(t, s, other, st.ID)
		findEventually(t, s, ref, "")
		// A late record of the older view does not move it back.
		if ok, err := s.Project(ctx, s2); err != nil || ok {
			t.Fatalf("project of the older view: %t, %v, want false", ok, err)
		}
		findEventually(t, s, other, st.ID)
		findEventually(t, s, ref, "")
	})
	t.Run("nobody has an unknown or empty reference", func(t *testing.T) {
		_, _, s3 := states(t, "")
		if ok, err := s.Project(ctx, s3); err != nil || !ok {
			t.Fatalf("project: %t, %v", ok, err)
		}
		findEventually(t, s, "msg-"+newID(), "")
		findEventually(t, s, "", "")
	})
}
