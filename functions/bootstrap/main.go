// Command bootstrap is the single binary of every ferry Lambda. It chooses
// the handler by the function's Handler setting (the _HANDLER variable of a
// provided.al2023 runtime): intake, advance, publish, retry, api (the HTTP
// API), authorizer (the HTTP and WebSocket APIs' Lambda authorizer), live
// (the WebSocket API's routes), notify (pushes events to its connections),
// email (invoked by SES's receipt rule with each received message) or
// meshpoll
// (invoked by a schedule every FERRY_MESH_POLL_MINUTES, it polls the
// inboxes that are due; {"mailbox": "X26ABC1"} polls one at once).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/ferryhq/ferry/internal/app"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(log); err != nil {
		log.Error("bootstrap failed", "error", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	cfg := app.ConfigFromEnv(os.Getenv)
	a, err := app.New(ctx, awsCfg, cfg, log)
	if err != nil {
		return err
	}
	switch h := cfg.Handler; h {
	case "intake":
		lambda.Start(a.Intake.Handle)
	case "advance":
		lambda.Start(a.Advance.Handle)
	case "publish":
		lambda.Start(a.Publish.Handle)
	case "retry":
		lambda.Start(a.Retry.Handle)
	case "api":
		lambda.Start(a.API.Handle)
	case "authorizer":
		lambda.Start(a.Authorizer.Dispatch)
	case "live":
		lambda.Start(a.Live.Handle)
	case "notify":
		lambda.Start(a.Notify.Handle)
	case "email":
		lambda.Start(a.Email.Handle)
	case "health":
		lambda.Start(a.Health.Handle)
	case "overdue":
		lambda.Start(a.Overdue.Handle)
	case "meshpoll":
		if a.MESHPoll == nil {
			return fmt.Errorf("handler meshpoll needs a mesh section in the routing file")
		}
		lambda.Start(a.MESHPoll.Handle)
	default:
		return fmt.Errorf("unknown handler %q: want intake, advance, publish, retry, meshpoll, health, overdue, api, authorizer, live, notify or email", h)
	}
	return nil
}
