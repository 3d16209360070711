package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/ops"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// failedTransfers seeds n transfers that failed for good with code, and
// returns their ids in order.
func failedTransfers(st *memstore.Store, n int, code string) []string {
	var ids []string
	for i := range n {
		id := fmt.Sprintf("01FAILED%s%04d", code, i)
		st.Seed(id, t0, domain.Requested{Source: domain.Source{Kind: "s3", Bucket: "in", Key: "k"}, Route: "r", Destination: domain.Destination{Type: "null"}, Size: 1, ChunkSize: 1, Chunks: 1},
			domain.Started{}, domain.Failed{Kind: domain.KindNotFound, Code: code, Message: "gone", Attempt: 1})
		ids = append(ids, id)
	}
	return ids
}

func replays(st *memstore.Store, id string) (n int) {
	for _, ev := range st.History(id) {
		if _, ok := ev.Payload.(domain.Replayed); ok {
			n++
		}
	}
	return n
}

// failAgain records a new final failure of every replayed transfer, as a
// destination that still refuses everything would.
func failAgain(st *memstore.Store, ids []string) {
	for _, id := range ids {
		s, _ := st.Load(context.Background(), id)
		if s.Status == domain.StatusInProgress {
			evs, _ := domain.Decide(s, domain.Fail{Err: domain.Errorf(domain.KindNotFound, "still gone").WithCode("NoSuchBucket")}, t0)
			if _, err := st.Append(context.Background(), s, evs...); err != nil {
				panic(err)
			}
		}
	}
}

func TestBulkReplay(t *testing.T) {
	st := &memstore.Store{}
	ids := failedTransfers(st, 50, "NoSuchBucket")
	run := func(dryRun bool) string {
		var out bytes.Buffer
		r := bulkReplay{ops.BulkReplay{Store: st, Actor: "local:op", Reason: "bucket fixed", DryRun: dryRun, Max: 20, Now: time.Now}, &out}
		if err := r.run(context.Background(), ids); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	count := func() (replayed int) {
		for _, id := range ids {
			replayed += replays(st, id)
		}
		return replayed
	}

	out := run(true)
	if n := count(); n != 0 {
		t.Fatalf("--dry-run replayed %d transfers", n)
	}
	if got := strings.Count(out, "would replay 01"); got != 20 {
		t.Errorf("--dry-run listed %d transfers, want 20:\n%s", got, out)
	}

	run(false)
	if n := count(); n != 20 {
		t.Fatalf("first run replayed %d, want 20", n)
	}
	failAgain(st, ids) // the destination still refuses: FAILED again
	out = run(false)
	if n := count(); n != 40 {
		t.Fatalf("after the second run %d replays, want 40", n)
	}
	for _, id := range ids {
		if n := replays(st, id); n > 1 {
			t.Errorf("%s replayed %d times for one reason", id, n)
		}
	}
	if !strings.Contains(out, `replayed 20 of 50 selected (20 already replayed for "bucket fixed"`) {
		t.Errorf("summary does not say what was skipped:\n%s", out)
	}
	ev := st.History(ids[0])
	if p, ok := ev[len(ev)-2].Payload.(domain.Replayed); !ok || p.Actor != "local:op" || p.Reason != "bucket fixed" {
		t.Errorf("replay event = %+v, want actor and reason recorded", ev[len(ev)-2].Payload)
	}
}

func TestBulkReplayCodeAndStatus(t *testing.T) {
	st := &memstore.Store{}
	ids := append(failedTransfers(st, 3, "403"), failedTransfers(st, 2, "NoSuchBucket")...)
	st.Seed("01DELIVERED", t0, domain.Requested{Destination: domain.Destination{Type: "null"}, Size: 1, ChunkSize: 1, Chunks: 1},
		domain.Started{}, domain.ChunkSent{Index: 1, Bytes: 1}, domain.Delivered{Location: "null://x"})
	ids = append(ids, "01DELIVERED")
	var out bytes.Buffer
	r := bulkReplay{ops.BulkReplay{Store: st, Actor: "a", Reason: "r", Code: "403", Max: 100, Now: time.Now}, &out}
	if err := r.run(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		want := 0
		if strings.Contains(id, "403") {
			want = 1
		}
		if got := replays(st, id); got != want {
			t.Errorf("%s: %d replays, want %d", id, got, want)
		}
	}
}

func TestBulkReplayPaces(t *testing.T) {
	st := &memstore.Store{}
	ids := failedTransfers(st, 4, "503")
	r := bulkReplay{ops.BulkReplay{Store: st, Actor: "a", Reason: "r", Max: 100, Pace: 20 * time.Millisecond, Now: time.Now}, &bytes.Buffer{}}
	if err := r.run(context.Background(), ids); err != nil {
		t.Fatal(err)
	}
	var at []time.Time // when each Replayed was decided
	for _, id := range ids {
		h := st.History(id)
		if _, ok := h[len(h)-1].Payload.(domain.Replayed); !ok {
			t.Fatalf("%s was not replayed", id)
		}
		at = append(at, h[len(h)-1].At)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 20*time.Millisecond {
			t.Errorf("replays %d and %d %v apart, want at least the 20ms pace", i, i+1, gap)
		}
	}
}

func TestReplayEachRefusesWhatHasNotFailed(t *testing.T) {
	st := &memstore.Store{}
	st.Seed("01RUNNING", t0, domain.Requested{Destination: domain.Destination{Type: "null"}, Size: 1, ChunkSize: 1, Chunks: 1})
	failed := failedTransfers(st, 1, "500")
	var out bytes.Buffer
	err := replayEach(context.Background(), &out, st, []string{"01RUNNING", "01NOSUCH", failed[0]}, "a", "r")
	for _, want := range []string{"transfer 01RUNNING: refused, nothing recorded: only a failed transfer can be replayed", "no transfer 01NOSUCH"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	if n := len(st.History("01RUNNING")); n != 1 {
		t.Errorf("the running transfer has %d events, want its 1: nothing appended", n)
	}
	if replays(st, failed[0]) != 1 || !strings.Contains(out.String(), "replayed "+failed[0]) {
		t.Errorf("the failed transfer was not replayed: %s", out.String())
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]time.Duration{"10/s": 100 * time.Millisecond, "1/s": time.Second, "30/m": 2 * time.Second, "0.5/s": 2 * time.Second} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "10", "10/h", "0/s", "-1/s", "x/s", "5000/s"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
}
