package domain

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // expectations name IANA zones; Lambda's image has no zoneinfo
)

// Expectation is a delivery a route expects, window after window: at least
// Count transfers (1 when 0) on the route from Sender, to Recipient and
// with Workflow (those given), created within the window and delivered by
// its end. The scheduled overdue check (functions/overdue) publishes
// Transfer Overdue, once, for each window that ends without them.
//
// A window has one of two forms:
//   - a deadline: By "06:00" (HH:MM) on each of Days; the window is the
//     Within (24 hours when 0) before it. "delivered by 06:00 each
//     weekday" is {"by": "06:00", "days": ["weekdays"]}.
//   - a cadence: Every "1h", windows of that length back to back from
//     midnight, on Days; Every divides a day. "a file every hour" is
//     {"every": "1h"}.
//
// Times and days are in Zone, an IANA time zone name, UTC when "".
type Expectation struct {
	Name      string   `json:"name"`
	Sender    string   `json:"sender,omitempty"`
	Recipient string   `json:"recipient,omitempty"`
	Workflow  string   `json:"workflow,omitempty"`
	Count     int      `json:"count,omitempty"`
	By        string   `json:"by,omitempty"`
	Within    Duration `json:"within,omitempty"`
	Every     Duration `json:"every,omitempty"`
	Days      []string `json:"days,omitempty"`
	Zone      string   `json:"zone,omitempty"`
}

// Window is one period an expectation is judged over: transfers created
// from Start to End, delivered by End.
type Window struct {
	Start, End time.Time
}

// Expectation limits.
const (
	// MaxWithin is the longest window a deadline may look back over.
	MaxWithin = 7 * 24 * time.Hour
	// MinEvery is the shortest cadence.
	MinEvery = time.Second
	// MaxCount is the most transfers an expectation may ask for.
	MaxCount = 1000
)

var (
	byRE     = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d)$`)
	dayNames = map[string][]time.Weekday{
		"sun": {time.Sunday}, "mon": {time.Monday}, "tue": {time.Tuesday}, "wed": {time.Wednesday},
		"thu": {time.Thursday}, "fri": {time.Friday}, "sat": {time.Saturday},
		"weekdays": {time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
		"weekend":  {time.Saturday, time.Sunday},
	}
)

// Want is how many transfers a window needs.
func (e Expectation) Want() int {
	if e.Count <= 0 {
		return 1
	}
	return e.Count
}

// Validate reports every problem with e at once, each naming its field.
func (e Expectation) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if strings.TrimSpace(e.Name) == "" {
		bad("name is missing")
	} else if strings.ContainsAny(e.Name, "#/") {
		bad("name %q may not hold '#' or '/'", e.Name)
	}
	switch {
	case e.By == "" && e.Every == 0:
		bad(`give "by" (a deadline, HH:MM) or "every" (a cadence, such as "1h")`)
	case e.By != "" && e.Every != 0:
		bad(`give "by" or "every", not both`)
	case e.By != "":
		if !byRE.MatchString(e.By) {
			bad("by %q is not a time of day (HH:MM, 00:00 to 23:59)", e.By)
		}
		if w := time.Duration(e.Within); w < 0 || w > MaxWithin {
			bad("within %s must be more than 0 and at most %s", w, MaxWithin)
		}
	default:
		ev := time.Duration(e.Every)
		if ev < MinEvery || (24*time.Hour)%ev != 0 {
			bad("every %s must be at least %s and divide a day (such as 15m, 1h, 6h)", ev, MinEvery)
		}
		if e.Within != 0 {
			bad(`within applies to "by" only; a cadence's window is its length`)
		}
	}
	if e.Count < 0 || e.Count > MaxCount {
		bad("count %d must be 1 to %d", e.Count, MaxCount)
	}
	for _, d := range e.Days {
		if _, ok := dayNames[strings.ToLower(d)]; !ok {
			bad("day %q is not one of mon, tue, wed, thu, fri, sat, sun, weekdays, weekend", d)
		}
	}
	if _, err := e.location(); err != nil {
		bad("zone %q is not a time zone (want an IANA name such as Europe/London)", e.Zone)
	}
	return errors.Join(errs...)
}

func (e Expectation) location() (*time.Location, error) {
	if e.Zone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(e.Zone)
}

// on reports whether e applies on weekday d.
func (e Expectation) on(d time.Weekday) bool {
	if len(e.Days) == 0 {
		return true
	}
	for _, name := range e.Days {
		for _, w := range dayNames[strings.ToLower(name)] {
			if w == d {
				return true
			}
		}
	}
	return false
}

// Windows returns e's windows that end after from and at or before to,
// oldest first, at most limit of them (the oldest limit). e must be valid.
func (e Expectation) Windows(from, to time.Time, limit int) []Window {
	loc, err := e.location()
	if err != nil || !to.After(from) || limit <= 0 {
		return nil
	}
	var out []Window
	// A window ending after from may have started up to MaxWithin before.
	y, m, d := from.In(loc).Add(-24 * time.Hour).Date()
	for day := time.Date(y, m, d, 0, 0, 0, 0, loc); !day.After(to); day = time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, loc) {
		if !e.on(day.Weekday()) {
			continue
		}
		for _, w := range e.windowsOf(day, from) {
			if w.End.After(from) && !w.End.After(to) {
				out = append(out, w)
				if len(out) == limit {
					return out
				}
			}
		}
	}
	return out
}

// windowsOf returns e's windows of the day starting at midnight (in e's
// zone): the one ending at By, or the cadence's windows from midnight to
// the next, at the clock's times (on the day daylight saving ends, the
// window holding the repeated hour is an hour longer), leaving out most of
// those that end before from.
func (e Expectation) windowsOf(midnight, from time.Time) []Window {
	next := time.Date(midnight.Year(), midnight.Month(), midnight.Day()+1, 0, 0, 0, 0, midnight.Location())
	if e.By != "" {
		h, _ := strconv.Atoi(e.By[:2])
		m, _ := strconv.Atoi(e.By[3:])
		end := time.Date(midnight.Year(), midnight.Month(), midnight.Day(), h, m, 0, 0, midnight.Location())
		within := time.Duration(e.Within)
		if within == 0 {
			within = 24 * time.Hour
		}
		return []Window{{Start: end.Add(-within).UTC(), End: end.UTC()}}
	}
	every := time.Duration(e.Every)
	n := int((24 * time.Hour) / every)
	wall := func(k int) time.Time { // the k-th boundary of the day, by the clock
		if k >= n {
			return next
		}
		return time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, 0, int(time.Duration(k)*every/time.Second), 0, midnight.Location())
	}
	k := 0
	if from.After(midnight) {
		k = max(0, int(from.Sub(midnight)/every)-2) // a day may be an hour longer
	}
	var out []Window
	for ; k < n; k++ {
		if start, end := wall(k), wall(k+1); end.After(start) {
			out = append(out, Window{Start: start.UTC(), End: end.UTC()})
		}
	}
	return out
}
