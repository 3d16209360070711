package memstore

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// TestSignatures checks that Store's methods that stand in for store.Store's
// have the same signatures.
func TestSignatures(t *testing.T) {
	rs, ms := reflect.TypeFor[*store.Store](), reflect.TypeFor[*Store]()
	for _, name := range []string{"Load", "Append", "Events", "FindByRef", "Project"} {
		want, ok := rs.MethodByName(name)
		if !ok {
			t.Fatalf("store.Store has no method %s", name)
		}
		got, ok := ms.MethodByName(name)
		if !ok {
			t.Errorf("Store has no method %s", name)
			continue
		}
		// Method types include the receiver, which differs.
		w, g := want.Type, got.Type
		same := w.NumIn() == g.NumIn() && w.NumOut() == g.NumOut() && w.IsVariadic() == g.IsVariadic()
		for i := 1; same && i < w.NumIn(); i++ {
			same = w.In(i) == g.In(i)
		}
		for i := 0; same && i < w.NumOut(); i++ {
			same = w.Out(i) == g.Out(i)
		}
		if !same {
			t.Errorf("%s: Store has %v, store.Store %v", name, g, w)
		}
	}
}

var (
	ctx = context.Background()
	t0  = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
)

const (
	idA = "01JNZ0AAAAAAAAAAAAAAAAAAAA"
	idB = "01JNZ0BBBBBBBBBBBBBBBBBBBB"
)

var req = domain.Requested{
	Source:      domain.Source{Kind: "s3", Bucket: "b", Key: "k"},
	Destination: domain.Destination{Type: "null"},
	Size:        25, ChunkSize: 10, Chunks: 3,
}

func ev(id string, seq int, p domain.Payload) domain.Event {
	return domain.Event{TransferID: id, Seq: seq, At: t0.Add(time.Duration(seq) * time.Second), Payload: p}
}

func TestAppendLoad(t *testing.T) {
	s := New()
	if _, err := s.Load(ctx, idA); !errors.Is(err, store.ErrNotFound) || domain.KindOf(err) != domain.KindNotFound {
		t.Fatalf("Load of a new transfer = %v, want store.ErrNotFound", err)
	}
	s.Log = &Journal{}
	first := []domain.Event{ev(idA, 1, req), ev(idA, 2, domain.Started{Ref: "u"})}
	st, err := s.Append(ctx, domain.State{}, first...)
	if err != nil {
		t.Fatal(err)
	}
	if want := domain.Fold(domain.State{}, first...); !reflect.DeepEqual(st, want) {
		t.Errorf("Append = %+v, want %+v", st, want)
	}
	third := ev(idA, 3, domain.ChunkSent{Index: 1, Bytes: 10, Ref: "e1"})
	if st, err = s.Append(ctx, st, third); err != nil {
		t.Fatal(err)
	}
	loaded, err := s.Load(ctx, idA)
	if err != nil || !reflect.DeepEqual(loaded, st) || loaded.Version != 3 {
		t.Errorf("Load = %+v, %v; want %+v", loaded, err, st)
	}
	all := append(first, third)
	if h := s.History(idA); !reflect.DeepEqual(h, all) {
		t.Errorf("History = %+v, want %+v", h, all)
	}
	if !reflect.DeepEqual(s.Appended(), all) {
		t.Errorf("Appended = %+v, want %+v", s.Appended(), all)
	}
	if got, want := s.Log.All(), []string{"append " + idA + " Requested", "append " + idA + " Started", "append " + idA + " ChunkSent"}; !slices.Equal(got, want) {
		t.Errorf("journal = %q, want %q", got, want)
	}
	if s.Appends() != 2 || s.Loads(idA) != 2 || s.Loads(idB) != 0 {
		t.Errorf("Appends %d, Loads %d/%d; want 2, 2/0", s.Appends(), s.Loads(idA), s.Loads(idB))
	}
	if ids := s.IDs(); !slices.Equal(ids, []string{idA}) {
		t.Errorf("IDs = %v, want [%s]", ids, idA)
	}
}

func TestAppendConflict(t *testing.T) {
	s := New()
	_, states := s.Seed(idA, t0, req, domain.Started{})
	stale := states[0]
	_, err := s.Append(ctx, stale, ev(idA, 2, domain.Started{Ref: "late"}))
	if !errors.Is(err, store.ErrConflict) || domain.KindOf(err) != domain.KindConflict {
		t.Fatalf("Append after a stale state = %v, want store.ErrConflict", err)
	}
	if _, err := s.Append(ctx, domain.State{}, ev(idA, 1, req)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Append of an existing v1 = %v, want store.ErrConflict", err)
	}
	if h := s.History(idA); len(h) != 2 || h[1].Payload != (domain.Started{}) {
		t.Errorf("history %+v changed by a conflicting append", h)
	}
	if s.Appended() != nil {
		t.Errorf("Appended = %+v after conflicts only, want nil", s.Appended())
	}

	t.Run("concurrent appends of one version: exactly one wins", func(t *testing.T) {
		s := New()
		_, states := s.Seed(idA, t0, req)
		var wg sync.WaitGroup
		var won atomic.Int32
		for range 8 {
			wg.Go(func() {
				if _, err := s.Append(ctx, states[0], ev(idA, 2, domain.Started{})); err == nil {
					won.Add(1)
				} else if !errors.Is(err, store.ErrConflict) {
					t.Errorf("a loser's error is %v, want store.ErrConflict", err)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 || len(s.History(idA)) != 2 {
			t.Errorf("%d winners, %d events; want 1, 2", n, len(s.History(idA)))
		}
	})
}

func TestAppendInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		prev func(s *Store) domain.State
		evs  []domain.Event
	}{
		{"no events", nil, nil},
		{"no transfer id", nil, []domain.Event{ev("", 1, req)}},
		{"first is not Requested", nil, []domain.Event{ev(idA, 1, domain.Started{})}},
		{"a gap in versions", nil, []domain.Event{ev(idA, 1, req), ev(idA, 3, domain.Started{})}},
		{"version not after prev", nil, []domain.Event{ev(idA, 2, req)}},
		{"two transfers", nil, []domain.Event{ev(idA, 1, req), ev(idB, 2, domain.Started{})}},
		{"no payload", nil, []domain.Event{ev(idA, 1, nil)}},
		{"state of another transfer", func(s *Store) domain.State {
			_, st := s.Seed(idB, t0, req)
			return st[0]
		}, []domain.Event{ev(idA, 2, domain.Started{})}},
		{"prev newer than the history", func(s *Store) domain.State {
			_, st := s.Seed(idA, t0, req, domain.Started{})
			s.Seed(idA, t0, req)
			return st[1]
		}, []domain.Event{ev(idA, 3, domain.ChunkSent{Index: 1})}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			var prev domain.State
			if tt.prev != nil {
				prev = tt.prev(s)
			}
			before := s.History(idA)
			got, err := s.Append(ctx, prev, tt.evs...)
			if domain.KindOf(err) != domain.KindInvalid || errors.Is(err, store.ErrConflict) {
				t.Errorf("Append = %v, want a %s error", err, domain.KindInvalid)
			}
			if !reflect.DeepEqual(got, prev) {
				t.Errorf("Append returned %+v, want prev %+v", got, prev)
			}
			if after := s.History(idA); !reflect.DeepEqual(after, before) {
				t.Errorf("history %+v after a refused append, want %+v", after, before)
			}
		})
	}
}

func TestHooks(t *testing.T) {
	down := domain.Errorf(domain.KindUnavailable, "throttled")
	s := New()
	s.Seed(idA, t0, req, domain.Started{Ref: "msg-1"})
	s.AppendErr = func(prev domain.State, _ []domain.Event) error {
		if prev.ID == idA {
			return down
		}
		return nil
	}
	s.LoadErr = func(id string) error {
		if id == idA {
			return down
		}
		return nil
	}
	s.FindErr = func(ref string) error {
		if ref == "msg-1" {
			return down
		}
		return nil
	}
	s.ProjectErr = func(st domain.State) error {
		if st.ID == idA {
			return down
		}
		return nil
	}
	st := domain.Fold(domain.State{}, s.History(idA)...)
	if _, err := s.Append(ctx, st, ev(idA, 3, domain.ChunkSent{Index: 1})); err != down {
		t.Errorf("Append = %v, want the hook's error", err)
	}
	if _, err := s.Append(ctx, domain.State{}, ev(idB, 1, req)); err != nil {
		t.Errorf("Append of %s = %v, want nil", idB, err)
	}
	if _, err := s.Load(ctx, idA); err != down {
		t.Errorf("Load = %v, want the hook's error", err)
	}
	if _, err := s.FindByRef(ctx, "msg-1"); err != down {
		t.Errorf("FindByRef = %v, want the hook's error", err)
	}
	if _, err := s.Project(ctx, st); err != down {
		t.Errorf("Project = %v, want the hook's error", err)
	}
	if n := len(s.History(idA)); n != 2 {
		t.Errorf("%s has %d events, want its 2", idA, n)
	}
	if s.Appends() != 2 || s.Loads(idA) != 1 || len(s.Projected()) != 0 {
		t.Errorf("Appends %d, Loads %d, Projected %v; want 2, 1, none", s.Appends(), s.Loads(idA), s.Projected())
	}
	if got := s.FindCalls(); !slices.Equal(got, []string{"msg-1"}) {
		t.Errorf("FindCalls = %q, want [msg-1]", got)
	}
}

func TestEvents(t *testing.T) {
	s := New()
	evs, _ := s.Seed(idA, t0, req, domain.Started{}, domain.ChunkSent{Index: 1}, domain.ChunkSent{Index: 2})
	for _, tt := range []struct {
		after, limit int
		want         []domain.Event
	}{
		{0, 0, evs},
		{-1, 0, evs},
		{1, 0, evs[1:]},
		{1, 2, evs[1:3]},
		{4, 0, nil},
	} {
		got, err := s.Events(ctx, idA, tt.after, tt.limit)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Events(after %d, limit %d) = %+v, %v; want %+v", tt.after, tt.limit, got, err, tt.want)
		}
	}
	if got, err := s.Events(ctx, idB, 0, 0); len(got) != 0 || err != nil {
		t.Errorf("Events of a missing transfer = %+v, %v; want none, nil", got, err)
	}
}

func TestFindByRef(t *testing.T) {
	s := New()
	_, statesA := s.Seed(idA, t0, req, domain.Started{Ref: "msg-a"})
	s.Seed(idB, t0, req)
	if _, err := s.FindByRef(ctx, "msg-a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindByRef(msg-a) before its view is projected = %v, want store.ErrNotFound", err)
	}
	if _, err := s.Project(ctx, statesA[1]); err != nil {
		t.Fatal(err)
	}
	if id, err := s.FindByRef(ctx, "msg-a"); id != idA || err != nil {
		t.Errorf("FindByRef(msg-a) = %q, %v; want %s", id, err, idA)
	}
	for _, ref := range []string{"msg-b", ""} {
		if _, err := s.FindByRef(ctx, ref); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FindByRef(%q) = %v, want store.ErrNotFound", ref, err)
		}
	}
	if got := s.FindCalls(); !slices.Equal(got, []string{"msg-a", "msg-a", "msg-b", ""}) {
		t.Errorf("FindCalls = %q", got)
	}
}

func TestProject(t *testing.T) {
	s := New()
	_, states := s.Seed(idA, t0, req, domain.Started{}, domain.ChunkSent{Index: 1})
	for i, tt := range []struct {
		st    domain.State
		wrote bool
	}{
		{states[1], true},
		{states[0], false}, // older: the view stays at v2
		{states[1], false}, // the same version again
		{states[2], true},
	} {
		if wrote, err := s.Project(ctx, tt.st); wrote != tt.wrote || err != nil {
			t.Errorf("call %d: Project(v%d) = %t, %v; want %t", i+1, tt.st.Version, wrote, err, tt.wrote)
		}
	}
	if got, want := s.Projected(), []domain.State{states[1], states[0], states[1], states[2]}; !reflect.DeepEqual(got, want) {
		t.Errorf("Projected = %+v, want %+v", got, want)
	}
	if _, err := s.Project(ctx, domain.State{}); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("Project of a state without id = %v, want %s", err, domain.KindInvalid)
	}
}

func TestSeedAndPut(t *testing.T) {
	s := New()
	evs, states := s.Seed(idA, t0, req, domain.Started{})
	if len(evs) != 2 || evs[1].Seq != 2 || !evs[1].At.Equal(t0.Add(time.Second)) {
		t.Errorf("Seed events %+v, want v1, v2 one second apart from t0", evs)
	}
	if !reflect.DeepEqual(states[1], domain.Fold(domain.State{}, evs...)) {
		t.Errorf("Seed state %+v, want the fold of its events", states[1])
	}
	other := ev(idA, 3, domain.ChunkSent{Index: 1})
	s.Put(other)
	if h := s.History(idA); len(h) != 3 || !reflect.DeepEqual(h[2], other) {
		t.Errorf("History after Put = %+v", h)
	}
	if _, err := s.Append(ctx, states[1], ev(idA, 3, domain.ChunkSent{Index: 1})); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Append of the version Put stored = %v, want store.ErrConflict", err)
	}
	if s.Appends() != 1 || s.Appended() != nil {
		t.Errorf("Appends %d, Appended %+v; Seed and Put are not appends", s.Appends(), s.Appended())
	}
}

func TestJournal(t *testing.T) {
	var j Journal
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { j.Add("call %d", i) })
	}
	wg.Wait()
	got := j.All()
	slices.Sort(got)
	if want := []string{"call 0", "call 1", "call 2", "call 3"}; !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
	var none *Journal
	none.Add("dropped")
	if got := none.All(); got != nil {
		t.Errorf("a nil Journal holds %q", got)
	}
}

func TestEventRecordDecodes(t *testing.T) {
	st := domain.State{}
	for i, p := range []domain.Payload{
		req,
		domain.Started{Ref: "upload-1"},
		domain.ChunkSent{Index: 1, Bytes: 10, Ref: "e1"},
		domain.Failed{Kind: domain.KindUnavailable, Code: "503", Message: "down", Retryable: true, Attempt: 1, NextAttemptAt: t0.Add(time.Minute)},
		domain.Retried{Attempt: 2},
	} {
		e := domain.Event{TransferID: idA, Seq: i + 1, At: t0.Add(time.Duration(i)*time.Second + 123456789), Payload: p}
		st = domain.Evolve(st, e)
		rec := EventRecord(t, strconv.Itoa(101+i), e, st)
		if rec.EventName != "INSERT" || rec.Change.StreamViewType != "NEW_IMAGE" {
			t.Errorf("%s: record %s %s, want INSERT NEW_IMAGE", e.Type(), rec.EventName, rec.Change.StreamViewType)
		}
		if !reflect.DeepEqual(rec.Change.Keys["pk"], rec.Change.NewImage["pk"]) || !reflect.DeepEqual(rec.Change.Keys["sk"], rec.Change.NewImage["sk"]) {
			t.Errorf("%s: keys %v do not match the image", e.Type(), rec.Change.Keys)
		}
		if !store.IsEventImage(rec.Change.NewImage) {
			t.Fatalf("%s: store.IsEventImage = false", e.Type())
		}
		gotE, gotS, err := store.DecodeImage(rec.Change.NewImage)
		if err != nil {
			t.Fatalf("%s: %v", e.Type(), err)
		}
		if !reflect.DeepEqual(gotE, e) || !reflect.DeepEqual(gotS, st) {
			t.Errorf("%s: decoded %+v / %+v\nwant %+v / %+v", e.Type(), gotE, gotS, e, st)
		}
	}
}
