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
	"github.com/ferryhq/ferry/internal/ops"
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
	ids, err := ops.FailedIDs(ctx, st, q)
	if err != nil {
		return err
	}
	r := bulkReplay{ops.BulkReplay{Store: st, Actor: actor, Reason: *reason, Code: *code, DryRun: *dryRun, Max: *most, Pace: pace, Now: time.Now}, e.stdout}
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
	_, err := ops.Command(ctx, st, prev, cmd, time.Now().UTC())
	return err
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

// bulkReplay runs an ops.BulkReplay, printing each transfer it replays
// (or would) and a summary.
type bulkReplay struct {
	ops.BulkReplay
	out io.Writer
}

func (r bulkReplay) run(ctx context.Context, ids []string) error {
	verb := "replayed"
	if r.DryRun {
		verb = "would replay"
	}
	t, err := r.Run(ctx, ids, func(prev domain.State) {
		fmt.Fprintf(r.out, "%s %s  route %s  recipient %s  last error %s\n", verb, prev.ID, dash(prev.Request.Route), dash(prev.Request.Recipient), lastError(prev))
	})
	if ctx.Err() != nil {
		fmt.Fprintf(r.out, "interrupted: %s %d; run the same command again to go on\n", verb, t.Done)
		return ctx.Err()
	}
	fmt.Fprintf(r.out, "%s %d of %d selected (%d already replayed for %q, %d no longer failed or of another code)\n", verb, t.Done, t.Selected, t.Already, r.Reason, t.Skipped)
	return err
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
