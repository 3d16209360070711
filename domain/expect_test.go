package domain

import (
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestExpectationWindowsDeadlineOnWeekdays(t *testing.T) {
	e := Expectation{Name: "labs", By: "06:00", Days: []string{"weekdays"}}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	// Thursday 3 December 2026 to Tuesday 8 December: Thu, Fri, Mon, Tue.
	got := e.Windows(utc("2026-12-03T05:00:00Z"), utc("2026-12-08T06:00:00Z"), 100)
	want := []string{"2026-12-03T06:00:00Z", "2026-12-04T06:00:00Z", "2026-12-07T06:00:00Z", "2026-12-08T06:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("windows = %v, want ends %v", got, want)
	}
	for i, w := range got {
		if !w.End.Equal(utc(want[i])) || !w.Start.Equal(w.End.Add(-24*time.Hour)) {
			t.Errorf("window %d = %s..%s, want the 24 hours before %s", i, w.Start, w.End, want[i])
		}
	}
	// The end is inclusive, the start exclusive: a window ending exactly
	// at from was judged before.
	if got := e.Windows(utc("2026-12-03T06:00:00Z"), utc("2026-12-04T05:59:59Z"), 100); len(got) != 0 {
		t.Errorf("windows ending after 06:00 Thursday, before 06:00 Friday = %v, want none", got)
	}
	if got := e.Windows(utc("2026-12-01T00:00:00Z"), utc("2026-12-31T00:00:00Z"), 2); len(got) != 2 || !got[0].End.Equal(utc("2026-12-01T06:00:00Z")) {
		t.Errorf("limit 2 = %v, want the oldest two", got)
	}
}

func TestExpectationWindowsWithinAndZone(t *testing.T) {
	// 06:00 in London is 05:00 UTC in summer (BST), 06:00 in winter.
	e := Expectation{Name: "gp", By: "06:00", Within: Duration(2 * time.Hour), Zone: "Europe/London", Days: []string{"sun"}}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	summer := e.Windows(utc("2026-07-01T00:00:00Z"), utc("2026-07-08T00:00:00Z"), 10)
	if len(summer) != 1 || !summer[0].End.Equal(utc("2026-07-05T05:00:00Z")) || !summer[0].Start.Equal(utc("2026-07-05T03:00:00Z")) {
		t.Errorf("summer windows = %v, want 03:00-05:00 UTC on Sunday 5 July", summer)
	}
	winter := e.Windows(utc("2026-12-01T00:00:00Z"), utc("2026-12-08T00:00:00Z"), 10)
	if len(winter) != 1 || !winter[0].End.Equal(utc("2026-12-06T06:00:00Z")) {
		t.Errorf("winter windows = %v, want one ending 06:00 UTC on Sunday 6 December", winter)
	}
}

func TestExpectationWindowsCadence(t *testing.T) {
	e := Expectation{Name: "hourly", Every: Duration(time.Hour)}
	got := e.Windows(utc("2026-12-03T10:30:00Z"), utc("2026-12-03T13:00:00Z"), 100)
	want := []string{"2026-12-03T11:00:00Z", "2026-12-03T12:00:00Z", "2026-12-03T13:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("windows = %v, want ends %v", got, want)
	}
	for i, w := range got {
		if !w.End.Equal(utc(want[i])) || w.End.Sub(w.Start) != time.Hour {
			t.Errorf("window %d = %s..%s, want the hour to %s", i, w.Start, w.End, want[i])
		}
	}
	// Across midnight, and back to back: each window starts where the last ended.
	short := Expectation{Name: "s", Every: Duration(20 * time.Second)}
	ws := short.Windows(utc("2026-12-03T23:59:00Z"), utc("2026-12-04T00:01:00Z"), 100)
	if len(ws) != 6 {
		t.Fatalf("20s windows over two minutes = %d, want 6", len(ws))
	}
	for i := 1; i < len(ws); i++ {
		if !ws[i].Start.Equal(ws[i-1].End) {
			t.Errorf("window %d starts %s, the one before ended %s", i, ws[i].Start, ws[i-1].End)
		}
	}
	// The day daylight saving ends in London has 25 hours: its six-hourly
	// windows start at the clock's 00:00, 06:00, 12:00 and 18:00 and
	// cover it all, the first one seven hours long.
	london := Expectation{Name: "l", Every: Duration(6 * time.Hour), Zone: "Europe/London"}
	oct := london.Windows(utc("2026-10-24T23:00:00Z"), utc("2026-10-26T00:00:00Z"), 100)
	if len(oct) != 4 || !oct[0].Start.Equal(utc("2026-10-24T23:00:00Z")) || !oct[1].Start.Equal(utc("2026-10-25T06:00:00Z")) || !oct[3].End.Equal(utc("2026-10-26T00:00:00Z")) {
		t.Errorf("windows of 25 October in London = %v, want four covering 23:00Z to 00:00Z", oct)
	}
}

func TestExpectationValidate(t *testing.T) {
	cases := []struct {
		e    Expectation
		want []string // each must appear
	}{
		{Expectation{}, []string{"name is missing", `give "by"`}},
		{Expectation{Name: "a/b", By: "6am"}, []string{"may not hold", `by "6am" is not a time of day`}},
		{Expectation{Name: "x", By: "24:00"}, []string{`by "24:00"`}},
		{Expectation{Name: "x", By: "06:00", Every: Duration(time.Hour)}, []string{"not both"}},
		{Expectation{Name: "x", Every: Duration(7 * time.Hour)}, []string{"divide a day"}},
		{Expectation{Name: "x", Every: Duration(time.Hour), Within: Duration(time.Hour)}, []string{"within applies"}},
		{Expectation{Name: "x", By: "06:00", Within: Duration(8 * 24 * time.Hour)}, []string{"within 192h0m0s"}},
		{Expectation{Name: "x", By: "06:00", Count: -1, Days: []string{"Mon", "funday"}, Zone: "Mars/Olympus"},
			[]string{"count -1", `day "funday"`, `zone "Mars/Olympus"`}},
	}
	for _, c := range cases {
		err := c.e.Validate()
		if err == nil {
			t.Errorf("%+v: valid, want %q", c.e, c.want)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v; want it to say %q", c.e, err, w)
			}
		}
	}
	ok := Expectation{Name: "ok", By: "23:59", Days: []string{"MON", "weekend"}, Zone: "America/New_York", Count: 3}
	if err := ok.Validate(); err != nil || ok.Want() != 3 || (Expectation{}).Want() != 1 {
		t.Errorf("valid expectation: %v, want %d", err, ok.Want())
	}
}

func TestRoutesValidateExpectations(t *testing.T) {
	data := `{"routes": [{"name": "labs", "match": {"prefix": "in/"}, "destination": {"type": "null"},
	  "expect": [{"name": "daily", "by": "06:00"}, {"name": "daily", "every": "1h"}, {"name": "bad", "by": "noon"}]}]}`
	_, err := ParseRoutes([]byte(data))
	if err == nil {
		t.Fatal("routes with bad expectations parsed")
	}
	for _, w := range []string{`route 1 (labs): expect 2 (daily): name is used twice`, `route 1 (labs): expect 3 (bad): by "noon"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v\nwant it to say %q", err, w)
		}
	}
}
