package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/ferryhq/ferry/functions/overdue"
	"github.com/ferryhq/ferry/internal/local"
	"github.com/ferryhq/ferry/internal/local/callrec"
)

// runLocal runs every ferry function in this process against the local
// emulator (see internal/local), until interrupted. --cpuprofile profiles the run
// (for benchmarks: go tool pprof -top ferry FILE). With FERRY_CALL_LOG_DIR
// set it records each function's AWS calls there (see callrec).
func runLocal(ctx context.Context, e *env, args []string) error {
	fs := newFlags("local", e.stderr)
	routes := fs.String("routes", firstNonEmpty(e.cfg.Routes, "infra/local/routes.json"), "routing table (file, ssm:NAME or s3://B/K)")
	stateDir := fs.String("state-dir", ".ferry", "where stream checkpoints and stats are kept")
	seedFile := fs.String("seed", "infra/local/seed.json", "parameters and secrets to put in the emulator first (${VAR} expands, @PATH reads a file); empty for none")
	apiAddr := fs.String("api", "127.0.0.1:4572", "where the HTTP API listens (loopback; port 0 picks a free one)")
	liveAddr := fs.String("live", "127.0.0.1:4573", "where the WebSocket API and its @connections API listen (loopback; port 0 picks a free one)")
	smtpAddr := fs.String("smtp", "127.0.0.1:4575", "where the SMTP listener that stands in for SES's email receiving listens (loopback; port 0 picks a free one)")
	healthEvery := fs.Duration("health-every", local.DefaultHealthEvery, "how often the scheduled partner check (ferry doctor's checks) runs")
	overdueEvery := fs.Duration("overdue-every", local.DefaultOverdueEvery, "how often the routes' expectations are checked for missed windows")
	overdueSettle := fs.Duration("overdue-settle", overdue.DefaultSettle, "how long after a window ends it is judged (the read model's lag)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file, stopped on shutdown")
	consoleAddr := fs.String("console", "127.0.0.1:4574", "where the web console is served (loopback; port 0 picks a free one; the HTTP API allows its origin)")
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
	if awsCfg.BaseEndpoint == nil || *awsCfg.BaseEndpoint == "" {
		return usagef("AWS_ENDPOINT_URL is not set: ferry local runs against a local emulator (see `make run`)")
	}
	calls, err := callrec.Open(e.getenv(callrec.EnvDir))
	if err != nil {
		return err
	}
	defer calls.Close()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := e.cfg
	cfg.Routes = *routes
	return local.Run(ctx, local.Options{
		AWS:          awsCfg,
		App:          cfg,
		StateDir:     *stateDir,
		Seed:         *seedFile,
		Getenv:       e.getenv,
		Log:          slog.New(slog.NewJSONHandler(e.stderr, nil)),
		Ready:        e.stdout,
		Calls:        calls,
		APIAddr:      *apiAddr,
		LiveAddr:     *liveAddr,
		SMTPAddr:     *smtpAddr,
		ConsoleAddr:  *consoleAddr,
		HealthEvery:  *healthEvery,
		OverdueEvery: *overdueEvery, OverdueSettle: *overdueSettle,
	})
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
