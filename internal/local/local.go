// Package local is ferry's local runtime: every ferry function in one
// process against a local emulator, wired as in AWS. Two readers of the
// event table's stream (advance and publish) and the intake and retry
// queues each run through an emulated event source mapping (local/esm), a
// ticker polls each MESH inbox as the scheduled meshpoll Lambda would, and
// the resources they need are created first (local/resources).
//
// The handlers are the ones the Lambdas run, built by internal/app; nothing
// here has a branch of its own for a handler.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ferryhq/ferry/internal/app"
	"github.com/ferryhq/ferry/internal/local/callrec"
	"github.com/ferryhq/ferry/internal/local/esm"
	"github.com/ferryhq/ferry/internal/local/resources"
	"github.com/ferryhq/ferry/store"
)

// Options configures a local run.
type Options struct {
	// AWS is the emulator's configuration; its BaseEndpoint must be set.
	AWS aws.Config
	// App is the handlers' configuration. Run sets the table, bus, event
	// source and retry queue to the local resources' and turns on
	// path-style S3; Routes says where the routing table is.
	App app.Config
	// StateDir keeps the stream checkpoints and stats.json (the DynamoDB
	// write count, for benchmarks).
	StateDir string
	// Seed is a seed file of parameters and secrets to store in the
	// emulator first (see resources.ReadSeed); "" for none.
	Seed string
	// Getenv expands ${VAR} in the seed file.
	Getenv func(string) string
	// Log receives every handler's and mapping's logs.
	Log *slog.Logger
	// Ready receives one line, "ferry local: ready {json}", naming the
	// endpoint and resources once everything runs.
	Ready io.Writer
	// Calls, if not nil, records the AWS calls each function makes, its
	// handler's and its event source mapping's apart (see callrec).
	Calls *callrec.Recorder
}

// handlers are the functions of infra/template.yaml, by Handler name.
var handlers = []string{"intake", "advance", "publish", "retry", "meshpoll"}

// Run creates the local resources, builds the handlers and runs them until
// ctx is done, then finishes the batches in flight. It returns the errors
// of any mapping that stopped on its own, joined.
func Run(ctx context.Context, o Options) error {
	awsCfg := o.AWS
	if awsCfg.BaseEndpoint == nil || *awsCfg.BaseEndpoint == "" {
		return errors.New("AWS_ENDPOINT_URL is not set: ferry local runs against a local emulator (see `make run`)")
	}
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return err
	}
	// Count DynamoDB writes across every client (the handlers' included),
	// for benchmarks; the counter ignores requests to other services.
	var writes store.WriteCounter
	awsCfg.APIOptions = append(awsCfg.APIOptions, writes.Middleware())

	res := resources.Defaults()
	stack, streamARN, err := setup(ctx, awsCfg, res, o)
	if err != nil {
		return err
	}
	cfg := o.App
	cfg.Table, cfg.EventBus, cfg.EventSource = res.Table, res.EventBus, res.EventSource
	cfg.RetryQueueURL = stack.RetryURL
	cfg.S3PathStyle = true
	if cfg.MetricsNamespace == "" {
		// Logged as in Lambda; nothing reads them locally but people and tests.
		cfg.MetricsNamespace = "ferry/local"
	}
	// One App per function, as each Lambda builds its own at cold start,
	// with clients of its own, so that each function's calls (its cold
	// start's included) are recorded as its.
	apps := map[string]*app.App{}
	for _, h := range handlers {
		hc := cfg
		hc.Handler = h
		apps[h], err = app.New(ctx, o.Calls.Config(awsCfg, h, callrec.Handler), hc, o.Log)
		if err != nil {
			return err
		}
	}
	a := &app.App{
		Intake: apps["intake"].Intake, Advance: apps["advance"].Advance, Publish: apps["publish"].Publish,
		Retry: apps["retry"].Retry, MESH: apps["meshpoll"].MESH, MESHPoll: apps["meshpoll"].MESHPoll,
	}
	statsPath := filepath.Join(o.StateDir, "stats.json")
	runners, err := mappings(a, awsCfg, stack, streamARN, o)
	if err != nil {
		return err
	}
	runners = append(runners, esm.Ticker{Name: "stats", Interval: time.Second, Immediate: true, Logger: o.Log, Func: func(context.Context) error {
		return writeStats(statsPath, writes.Count())
	}}.Run)

	ready, _ := json.Marshal(map[string]string{
		"endpoint":       *awsCfg.BaseEndpoint,
		"table":          res.Table,
		"uploadBucket":   res.UploadBucket,
		"meshBucket":     res.MESHBucket,
		"deliveryBucket": res.DeliveryBucket,
		"intakeQueue":    stack.IntakeURL,
		"observerQueue":  stack.ObserverURL,
		"streamFailures": stack.StreamFailuresURL,
		"routes":         cfg.Routes,
	})
	err = runAll(ctx, runners, func() { fmt.Fprintf(o.Ready, "ferry local: ready %s\n", ready) }, o.Log)
	_ = writeStats(statsPath, writes.Count())
	return err
}

// setup creates the table, queues, buckets and bus, stores the seed, and
// returns the resources and the table's stream.
func setup(ctx context.Context, awsCfg aws.Config, res resources.Resources, o Options) (*resources.Stack, string, error) {
	st := store.New(dynamodb.NewFromConfig(awsCfg), res.Table)
	if err := st.CreateTable(ctx); err != nil {
		return nil, "", err
	}
	stack, err := resources.Setup(ctx, resources.Clients{
		S3:          s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SQS:         sqs.NewFromConfig(awsCfg),
		EventBridge: eventbridge.NewFromConfig(awsCfg),
	}, res)
	if err != nil {
		return nil, "", fmt.Errorf("set up local resources: %w", err)
	}
	if o.Seed != "" {
		seed, err := resources.ReadSeed(o.Seed, o.Getenv)
		if err != nil {
			return nil, "", err
		}
		if err := seed.Store(ctx, secretsmanager.NewFromConfig(awsCfg), ssm.NewFromConfig(awsCfg)); err != nil {
			return nil, "", err
		}
	}
	streamARN, err := st.StreamARN(ctx)
	if err != nil {
		return nil, "", err
	}
	return stack, streamARN, nil
}

// mappings builds, as AWS would, an event source mapping per stream reader
// and per queue, and a schedule per MESH inbox.
func mappings(a *app.App, awsCfg aws.Config, stack *resources.Stack, streamARN string, o Options) ([]func(context.Context) error, error) {
	// Each mapping's clients call AWS for its function, as the Lambda
	// service does with the function's role.
	esmCfg := func(name string) aws.Config { return o.Calls.Config(awsCfg, name, callrec.EventSource) }
	checkpoints := esm.FileCheckpoints{Dir: filepath.Join(o.StateDir, "checkpoints")}
	var runners []func(context.Context) error
	for _, m := range []struct {
		name    string
		handler esm.StreamHandler
	}{{"advance", a.Advance.Handle}, {"publish", a.Publish.Handle}} {
		sm, err := esm.NewStreamMapping(esm.StreamConfig{
			Name: m.name, Streams: dynamodbstreams.NewFromConfig(esmCfg(m.name)), StreamARN: streamARN, Handler: m.handler,
			OnFailure:   esm.Destination{SQS: sqs.NewFromConfig(esmCfg(m.name)), QueueURL: stack.StreamFailuresURL},
			Checkpoints: checkpoints, Logger: o.Log.With("mapping", m.name),
		})
		if err != nil {
			return nil, err
		}
		runners = append(runners, sm.Run)
	}
	for _, m := range []struct {
		name, url string
		handler   esm.SQSHandler
	}{{"intake", stack.IntakeURL, a.Intake.Handle}, {"retry", stack.RetryURL, a.Retry.Handle}} {
		qm, err := esm.NewSQSMapping(esm.SQSConfig{
			Name: m.name, SQS: sqs.NewFromConfig(esmCfg(m.name)), QueueURL: m.url, Handler: m.handler,
			VisibilityTimeout: 5 * time.Minute, Logger: o.Log.With("mapping", m.name),
		})
		if err != nil {
			return nil, err
		}
		runners = append(runners, qm.Run)
	}
	if a.MESHPoll != nil {
		every := time.Duration(a.MESH.Config.Inbound.PollInterval)
		for mailbox := range a.MESHPoll.Mailboxes {
			runners = append(runners, esm.Ticker{Name: "meshpoll " + mailbox, Interval: every, Immediate: true, Logger: o.Log,
				Func: func(ctx context.Context) error {
					_, err := a.MESHPoll.Poll(ctx, mailbox)
					return err
				}}.Run)
		}
	}
	return runners, nil
}

// runAll runs every runner until ctx is done or one fails, calling ready
// once they have all started, and waits for them all to return.
func runAll(ctx context.Context, runners []func(context.Context) error, ready func(), log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(runners))
	for _, run := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	ready()
	<-ctx.Done()
	log.Info("shutting down: finishing the batches in flight")
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// writeStats records counters for benchmarks, atomically.
func writeStats(path string, dynamoWrites int64) error {
	b, _ := json.Marshal(map[string]int64{"dynamodbWrites": dynamoWrites})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
