package esm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Ticker runs Func every Interval, like a scheduled (rate) rule invoking a
// function. Runs never overlap: a tick that comes while Func is still
// running is skipped.
type Ticker struct {
	Name      string // identifies the schedule in logs
	Interval  time.Duration
	Func      func(context.Context) error
	Immediate bool         // also run once at start, before the first tick
	Logger    *slog.Logger // default slog.Default()
}

// Run calls Func on every tick until ctx is cancelled, then returns nil.
// Errors and panics from Func are logged and do not stop the ticker. Run
// returns an error only if the ticker is misconfigured.
func (t Ticker) Run(ctx context.Context) error {
	var errs []error
	if t.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %s is not positive", t.Interval))
	}
	if t.Func == nil {
		errs = append(errs, errors.New("func is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ticker %q: %w", t.Name, err)
	}
	log := logger(t.Logger).With("schedule", t.Name)
	run := func() {
		if _, err := invoke(ctx, func(ctx context.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, t.Func(ctx)
		}, struct{}{}); err != nil && ctx.Err() == nil {
			log.Error("scheduled run failed", "err", err)
		}
	}
	if t.Immediate && ctx.Err() == nil {
		run()
	}
	tick := time.NewTicker(t.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			run()
		}
	}
}
