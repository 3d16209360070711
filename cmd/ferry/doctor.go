package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/functions/health"
	"github.com/ferryhq/ferry/internal/app"
)

// runDoctor is `ferry doctor`: it checks every partner of the routing
// table (or of one route) once, without sending anything, and prints each
// as healthy or not with the reason, then the certificates that expire
// within 30 days. Exit 1 when a partner is unhealthy.
func runDoctor(ctx context.Context, e *env, args []string) error {
	fs := newFlags("doctor", e.stderr)
	src := fs.String("routes", firstNonEmpty(e.cfg.Routes, "infra/local/routes.json"), "routing table (file, ssm:NAME or s3://B/K)")
	only := fs.String("route", "", "check only this route's destination")
	timeout := fs.Duration("timeout", health.DefaultTimeout, "how long one partner's check may take")
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	awsCfg, err := e.aws(ctx)
	if err != nil {
		return err
	}
	cfg := e.cfg
	cfg.Routes, cfg.Handler = *src, "health"
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(ctx, awsCfg, cfg, log)
	if err != nil {
		return err
	}
	targets, err := a.HealthTargets(*only)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return errors.New("nothing to check: no route delivers anywhere reachable")
	}
	results := health.Runner{Timeout: *timeout}.Run(ctx, targets)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printDoctor(e, results, time.Now())
	}
	for _, r := range results {
		if !r.Healthy {
			return errors.New(health.Summary(results))
		}
	}
	return nil
}

// printDoctor prints results as a table, the expiring certificates under
// it, and the summary.
func printDoctor(e *env, results []health.Result, now time.Time) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTNER\tSTATUS\tROUTES\tTOOK\tREASON")
	var expiring []string
	for _, r := range results {
		status := "healthy"
		if !r.Healthy {
			status = "UNHEALTHY (" + r.Kind + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Partner, status, strings.Join(r.Routes, ","), r.Took.Round(time.Millisecond), r.Reason)
		for _, c := range r.Expiring {
			when := "expires"
			if !c.Expires.After(now) {
				when = "EXPIRED"
			}
			expiring = append(expiring, fmt.Sprintf("  %s: %s (%s) %s %s (%s)", r.Partner, c.Name, c.Subject, when,
				c.Expires.Format(time.DateOnly), daysLeft(c.Expires.Sub(now))))
		}
	}
	_ = tw.Flush()
	if len(expiring) > 0 {
		fmt.Fprintf(e.stdout, "\ncertificates expiring within %d days:\n%s\n", int(health.ExpiryWarning.Hours()/24), strings.Join(expiring, "\n"))
	}
	fmt.Fprintf(e.stdout, "\n%s\n", health.Summary(results))
}

func daysLeft(d time.Duration) string {
	days := int(d.Hours() / 24)
	switch {
	case d <= 0 && days == -1:
		return "1 day ago"
	case d <= 0:
		return fmt.Sprintf("%d days ago", -days)
	case days == 1:
		return "1 day left"
	default:
		return fmt.Sprintf("%d days left", days)
	}
}
