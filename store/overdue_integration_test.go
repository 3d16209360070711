//go:build integration

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

func TestExpectationWindows(t *testing.T) {
	s, _ := newTable(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	seen, err := s.ExpectationSeen(ctx, "labs", "daily", t0)
	if err != nil || !seen.Equal(t0) {
		t.Fatalf("first sighting = %s, %v; want %s", seen, err, t0)
	}
	if seen, err = s.ExpectationSeen(ctx, "labs", "daily", t0.Add(time.Hour)); err != nil || !seen.Equal(t0) {
		t.Fatalf("second sighting = %s, %v; want the first, %s", seen, err, t0)
	}

	win := func(day int, outcome string) store.WindowRecord {
		end := t0.AddDate(0, 0, day)
		return store.WindowRecord{Route: "labs", Expectation: "daily", Window: domain.Window{Start: end.Add(-24 * time.Hour), End: end},
			Outcome: outcome, Got: 0, Want: 1, Checked: end.Add(time.Minute)}
	}
	record := func(w store.WindowRecord, want bool) {
		t.Helper()
		claimed, err := s.RecordWindow(ctx, w)
		if err != nil || claimed != want {
			t.Fatalf("RecordWindow(%s %s) = %t, %v; want %t", w.Window.End, w.Outcome, claimed, err, want)
		}
	}
	record(win(0, store.OutcomeMet), true)
	record(win(0, store.OutcomeMissed), false) // judged already
	record(win(1, store.OutcomeMissed), true)
	record(win(1, store.OutcomeMissed), true) // its event was never published: claimed again
	if err := s.MarkWindow(ctx, win(1, store.OutcomeMissed)); err != nil {
		t.Fatal(err)
	}
	record(win(1, store.OutcomeMissed), false)
	record(win(2, store.OutcomeMissed), true)
	record(win(3, store.OutcomeMissed), true)
	other := win(2, store.OutcomeMissed)
	other.Expectation = "weekly"
	record(other, true)

	judged, err := s.JudgedWindows(ctx, "labs", "daily", t0, t0.AddDate(0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	if len(judged) != 2 { // the window ending at from is not after it
		t.Fatalf("judged windows after %s = %v, want days 1 and 2", t0, judged)
	}
	if w := judged[t0.AddDate(0, 0, 1).UnixNano()]; w.Outcome != store.OutcomeMissed || !w.Published || !w.Window.Start.Equal(t0) || w.Want != 1 {
		t.Errorf("day 1 = %+v, want missed and published, from %s", w, t0)
	}
	if w := judged[t0.AddDate(0, 0, 2).UnixNano()]; w.Published {
		t.Errorf("day 2 = %+v, want unpublished", w)
	}

	// The missed windows, newest first, a page at a time; days 1 to 3 of
	// daily and day 2 of weekly.
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		ws, next, err := s.OverdueWindows(ctx, t0, t0.AddDate(0, 0, 3), 1, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			got = append(got, w.Window.End.Format("02")+" "+w.Expectation)
		}
		if next == "" || pages > 10 {
			break
		}
		cursor = next
	}
	want := []string{"06 daily", "05 weekly", "05 daily", "04 daily"}
	if len(got) != len(want) {
		t.Fatalf("missed windows = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("missed windows = %v, want %v", got, want)
			break
		}
	}
	ws, _, err := s.OverdueWindows(ctx, t0.AddDate(0, 0, 2), t0.AddDate(0, 0, 2), 10, "")
	if err != nil || len(ws) != 2 {
		t.Errorf("missed windows ending on day 2 = %v, %v; want daily's and weekly's", ws, err)
	}
	if _, _, err := s.OverdueWindows(ctx, t0, t0, 10, "not a cursor"); err == nil {
		t.Error("a malformed cursor was accepted")
	}
}
