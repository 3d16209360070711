package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

func runHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlags("history", e.stderr)
	status := fs.String("status", "", "status: "+domain.StatusList())
	since := fs.String("since", "24h", "start of the window: a duration before now (24h), a date (2026-11-24) or an RFC 3339 time")
	until := fs.String("until", "", "end of the window (default now), same forms as --since")
	sender := fs.String("sender", "", "only transfers from this sender")
	recipient := fs.String("recipient", "", "only transfers to this recipient")
	route := fs.String("route", "", "only transfers on this route")
	workflow := fs.String("workflow", "", "only transfers with this workflow id (filters the others)")
	limit := fs.Int("limit", 50, "most transfers to print (1-1000)")
	cursor := fs.String("cursor", "", "continue from a previous page")
	asJSON := fs.Bool("json", false, "print JSON: {items, cursor}")
	overdue := fs.Bool("overdue", false, "list the expectations' missed windows that ended in the window instead (--since, --until, --limit, --cursor, --json apply)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	now := time.Now().UTC()
	if *overdue {
		if *status != "" || *sender != "" || *recipient != "" || *route != "" || *workflow != "" {
			return usagef("--overdue lists every missed window; it takes no --status, --sender, --recipient, --route or --workflow")
		}
		return historyOverdue(ctx, e, now, *since, *until, *limit, *cursor, *asJSON)
	}
	q := store.Query{Sender: *sender, Recipient: *recipient, Route: *route, Workflow: *workflow, Limit: *limit, Cursor: *cursor}
	if *status != "" {
		s := domain.Status(strings.ToUpper(*status))
		if !s.Valid() {
			return usagef("unknown status %q (want one of %s)", *status, domain.StatusList())
		}
		q.Status = s
	}
	if q.Status == "" && q.Sender == "" && q.Recipient == "" && q.Route == "" {
		return usagef("give --status, --sender, --recipient or --route")
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("--limit must be 1-1000")
	}
	if q.Since, err = parseWhen(*since, now); err != nil {
		return usagef("--since: %v", err)
	}
	if *until != "" {
		if q.Until, err = parseWhen(*until, now); err != nil {
			return usagef("--until: %v", err)
		}
	}
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	page, err := st.History(ctx, q)
	if err != nil {
		return err
	}
	if *asJSON {
		if page.Items == nil {
			page.Items = []store.Summary{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(page)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tUPDATED\tROUTE\tSENDER\tRECIPIENT\tCHUNKS\tBYTES\tLAST ERROR")
	for _, s := range page.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\n", s.ID, s.Status, s.Updated.UTC().Format(time.RFC3339),
			dash(s.Route), dash(s.Sender), dash(s.Recipient), s.ChunksSent, s.Chunks, s.Size, dash(s.LastError))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Cursor != "" {
		fmt.Fprintf(e.stdout, "more: ferry history %s --cursor %s\n", strings.Join(args, " "), page.Cursor)
	}
	return nil
}

// historyOverdue prints the missed windows that ended between since and
// until, newest first.
func historyOverdue(ctx context.Context, e *env, now time.Time, since, until string, limit int, cursor string, asJSON bool) error {
	if limit < 1 || limit > 1000 {
		return usagef("--limit must be 1-1000")
	}
	from, err := parseWhen(since, now)
	if err != nil {
		return usagef("--since: %v", err)
	}
	to := now
	if until != "" {
		if to, err = parseWhen(until, now); err != nil {
			return usagef("--until: %v", err)
		}
	}
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	ws, next, err := st.OverdueWindows(ctx, from, to, limit, cursor)
	if err != nil {
		return err
	}
	if asJSON {
		type item struct {
			Route       string    `json:"route"`
			Expectation string    `json:"expectation"`
			WindowStart time.Time `json:"windowStart"`
			WindowEnd   time.Time `json:"windowEnd"`
			Got         int       `json:"got"`
			Want        int       `json:"want"`
			Checked     time.Time `json:"checked"`
			Published   bool      `json:"published"`
		}
		out := struct {
			Items  []item `json:"items"`
			Cursor string `json:"cursor"`
		}{Items: []item{}, Cursor: next}
		for _, w := range ws {
			out.Items = append(out.Items, item{w.Route, w.Expectation, w.Window.Start, w.Window.End, w.Got, w.Want, w.Checked, w.Published})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WINDOW END\tROUTE\tEXPECTATION\tDELIVERED\tWINDOW START\tPUBLISHED")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d of %d\t%s\t%t\n", w.Window.End.UTC().Format(time.RFC3339), w.Route, w.Expectation, w.Got, w.Want,
			w.Window.Start.UTC().Format(time.RFC3339), w.Published)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(e.stdout, "more: ferry history --overdue --since %s --until %s --cursor %s\n", from.Format(time.RFC3339), to.Format(time.RFC3339), next)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a time as a duration before now, a date or RFC 3339.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a duration (24h), a date (2006-01-02) or an RFC 3339 time", s)
}
