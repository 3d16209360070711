package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// transferStore is what replay and cancel need of the event store.
type transferStore interface {
	store.Appender
	eventReader
	Load(ctx context.Context, id string) (domain.State, error)
}

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := newFlags("replay", e.stderr)
	reason := fs.String("reason", "", "why (required): recorded in the Replayed event; a bulk replay is named by it")
	status := fs.String("status", "", "bulk: replay the transfers in this status (FAILED, the only one that can be replayed)")
	route := fs.String("route", "", "bulk: only transfers on this route")
	recipient := fs.String("recipient", "", "bulk: only transfers to this recipient")
	since := fs.String("since", "24h", "bulk: start of the window of last updates: a duration before now, a date or an RFC 3339 time")
	until := fs.String("until", "", "bulk: end of the window (default now)")
	code := fs.String("code", "", "bulk: only transfers whose last failure has this code (e.g. 403, NoSuchBucket)")
	dryRun := fs.Bool("dry-run", false, "bulk: print what would be replayed and replay nothing")
	most := fs.Int("max", 100, "bulk: most transfers to replay (1-10000)")
	rate := fs.String("rate", "10/s", "bulk: most replays per second, as N/s")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("--reason is required: say why")
	}
	bulk := *status != ""
	switch {
	case bulk && len(pos) > 0:
		return usagef("give transfer ids or --status, not both")
	case !bulk && len(pos) == 0:
		return usagef("give transfer ids, or --status FAILED and filters")
	case !bulk && (*route != "" || *recipient != "" || *code != "" || *dryRun):
		return usagef("--route, --recipient, --code and --dry-run select transfers for a bulk replay (--status FAILED)")
	}
	var q store.Query
	var pace time.Duration
	if bulk {
		if domain.Status(strings.ToUpper(*status)) != domain.StatusFailed {
			return usagef("--status %s: only FAILED transfers can be replayed", *status)
		}
		if *most < 1 || *most > 10000 {
			return usagef("--max must be 1-10000")
		}
		if pace, err = parseRate(*rate); err != nil {
			return usagef("--rate: %v", err)
		}
		now := time.Now().UTC()
		q = store.Query{Status: domain.StatusFailed, Route: *route, Recipient: *recipient, Limit: store.MaxLimit}
		if q.Since, err = parseWhen(*since, now); err != nil {
			return usagef("--since: %v", err)
		}
		if *until != "" {
			if q.Until, err = parseWhen(*until, now); err != nil {
				return usagef("--until: %v", err)
			}
		}
	}
	actor, err := e.actor(ctx)
	if err != nil {
		return err
	}
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	if !bulk {
		return replayEach(ctx, e.stdout, st, pos, actor, *reason)
	}
	ids, err := failedIDs(ctx, st, q)
	if err != nil {
		return err
	}
	r := bulkReplay{store: st, out: e.stdout, actor: actor, reason: *reason, code: *code, dryRun: *dryRun, max: *most, pace: pace, now: time.Now}
	return r.run(ctx, ids)
}

// replayEach replays the named transfers, one by one.
func replayEach(ctx context.Context, out io.Writer, st transferStore, ids []string, actor, reason string) error {
	return commandEach(ctx, st, ids, domain.Replay{Actor: actor, Reason: reason}, func(prev domain.State) {
		fmt.Fprintf(out, "replayed %s (was %s: %s); it starts again with a fresh attempt budget\n", prev.ID, prev.Status, lastError(prev))
	})
}

// commandEach decides and appends an operator command on each named
// transfer, calling done after each that took. Every id is tried; the
// error names each that could not be.
func commandEach(ctx context.Context, st transferStore, ids []string, cmd domain.Command, done func(prev domain.State)) error {
	var errs []error
	for _, id := range ids {
		prev, err := st.Load(ctx, id)
		if err != nil {
			errs = append(errs, notFound(id, err))
			continue
		}
		if err := decide(ctx, st, prev, cmd); err != nil {
			errs = append(errs, err)
			continue
		}
		done(prev)
	}
	return errors.Join(errs...)
}

// decide decides and appends one operator command, explaining a refusal.
func decide(ctx context.Context, st store.Appender, prev domain.State, cmd domain.Command) error {
	d, err := store.DecideAppend(ctx, st, prev, cmd, time.Now().UTC())
	var de *domain.Error
	switch {
	case errors.As(err, &de) && de.Kind == domain.KindConflict:
		return fmt.Errorf("transfer %s: refused, nothing recorded: %s", prev.ID, de.Message)
	case err != nil:
		return fmt.Errorf("transfer %s: %w", prev.ID, err)
	case d.Lost:
		return fmt.Errorf("transfer %s changed while this ran (now past v%d); look at it again with ferry show", prev.ID, prev.Version)
	}
	return nil
}

func notFound(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no transfer %s", id)
	}
	return fmt.Errorf("transfer %s: %w", id, err)
}

func lastError(s domain.State) string {
	if s.LastFailure == nil {
		return "no failure"
	}
	if s.LastFailure.Code != "" {
		return s.LastFailure.Code + " " + s.LastFailure.Message
	}
	return s.LastFailure.Message
}

// historian is the history query bulk replay selects with.
type historian interface {
	History(ctx context.Context, q store.Query) (store.Page, error)
}

// failedIDs lists every transfer the query selects, all pages, before any
// is replayed: replaying moves a transfer out of FAILED, which would shift
// the pages under a cursor.
func failedIDs(ctx context.Context, h historian, q store.Query) ([]string, error) {
	var ids []string
	for {
		page, err := h.History(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Items {
			ids = append(ids, s.ID)
		}
		if page.Cursor == "" {
			return ids, nil
		}
		q.Cursor = page.Cursor
	}
}

// bulkReplay replays failed transfers, paced and bounded. It is named by
// its reason: a transfer already replayed for the same reason is skipped,
// so a run that was interrupted (or stopped by --max) and is run again
// goes on with the transfers it has not replayed, never replaying one
// twice, even one that has failed again since.
type bulkReplay struct {
	store         transferStore
	out           io.Writer
	actor, reason string
	code          string // only transfers whose last failure has this code
	dryRun        bool
	max           int
	pace          time.Duration // least time between two replays
	now           func() time.Time
}

func (r bulkReplay) run(ctx context.Context, ids []string) error {
	verb := "replayed"
	if r.dryRun {
		verb = "would replay"
	}
	var done, already, skipped int
	var errs []error
	interrupted := func() error {
		fmt.Fprintf(r.out, "interrupted: %s %d; run the same command again to go on\n", verb, done)
		return ctx.Err()
	}
	var last time.Time
	for _, id := range ids {
		if done == r.max {
			break
		}
		if ctx.Err() != nil {
			return interrupted()
		}
		prev, err := r.store.Load(ctx, id)
		if err != nil {
			errs = append(errs, notFound(id, err))
			continue
		}
		if prev.Status != domain.StatusFailed || (r.code != "" && (prev.LastFailure == nil || prev.LastFailure.Code != r.code)) {
			skipped++ // changed since the query, or another code
			continue
		}
		seen, err := replayedFor(ctx, r.store, id, r.reason)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen {
			already++
			continue
		}
		if !r.dryRun {
			if wait := r.pace - r.now().Sub(last); !last.IsZero() && wait > 0 {
				select {
				case <-ctx.Done():
					return interrupted()
				case <-time.After(wait):
				}
			}
			last = r.now()
			if err := decide(ctx, r.store, prev, domain.Replay{Actor: r.actor, Reason: r.reason}); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		done++
		fmt.Fprintf(r.out, "%s %s  route %s  recipient %s  last error %s\n", verb, id, dash(prev.Request.Route), dash(prev.Request.Recipient), lastError(prev))
	}
	fmt.Fprintf(r.out, "%s %d of %d selected (%d already replayed for %q, %d no longer failed or of another code)\n", verb, done, len(ids), already, r.reason, skipped)
	return errors.Join(errs...)
}

// replayedFor reports whether transfer id has been replayed for reason.
func replayedFor(ctx context.Context, st eventReader, id, reason string) (bool, error) {
	events, err := allEvents(ctx, st, id, 0)
	if err != nil {
		return false, err
	}
	for _, ev := range events {
		if p, ok := ev.Payload.(domain.Replayed); ok && p.Reason == reason {
			return true, nil
		}
	}
	return false, nil
}

func runCancel(ctx context.Context, e *env, args []string) error {
	fs := newFlags("cancel", e.stderr)
	reason := fs.String("reason", "", "why (required): recorded in the Cancelled event")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("--reason is required: say why")
	}
	if len(pos) == 0 {
		return usagef("give the ids of the transfers to cancel")
	}
	actor, err := e.actor(ctx)
	if err != nil {
		return err
	}
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	return commandEach(ctx, st, pos, domain.Cancel{Actor: actor, Reason: *reason}, func(prev domain.State) {
		fmt.Fprintf(e.stdout, "cancelled %s (was %s)\n", prev.ID, prev.Status)
	})
}

// parseRate reads "N/s" (or "N/m") and returns the least time between two
// operations.
func parseRate(s string) (time.Duration, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute}[unit]
	v, err := strconv.ParseFloat(n, 64)
	if !ok || per == 0 || err != nil || v <= 0 || v > 1000 {
		return 0, fmt.Errorf("%q: want N/s or N/m, N from 0 to 1000 per second", s)
	}
	return time.Duration(float64(per) / v), nil
}

// actor names who runs an operator command, for the events it records:
// the AWS principal's ARN, or "local:$USER" against a local emulator,
// whose identities mean nothing. It is never taken from a flag.
func (e *env) actor(ctx context.Context) (string, error) {
	c, err := e.aws(ctx)
	if err != nil {
		return "", err
	}
	if c.BaseEndpoint != nil && *c.BaseEndpoint != "" {
		return "local:" + firstNonEmpty(e.getenv("USER"), e.getenv("LOGNAME"), "unknown"), nil
	}
	out, err := sts.NewFromConfig(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("who is running this (sts:GetCallerIdentity): %w", err)
	}
	return *out.Arn, nil
}
