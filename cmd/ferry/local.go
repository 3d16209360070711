package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ferryhq/ferry/internal/app"
	"github.com/ferryhq/ferry/internal/esm"
	"github.com/ferryhq/ferry/internal/localstack"
	"github.com/ferryhq/ferry/store"
)

// runLocal runs every ferry function in this process against the local
// emulator, wired as in AWS: two readers of the table's stream (advance and
// publish), the intake and retry queues, each through an emulated event
// source mapping. It creates the resources it needs first.
func runLocal(ctx context.Context, e *env, args []string) error {
	fs := newFlags("local", e.stderr)
	routes := fs.String("routes", firstNonEmpty(e.cfg.Routes, "infra/local/routes.json"), "routing table (file, ssm:NAME or s3://B/K)")
	stateDir := fs.String("state-dir", ".ferry", "where stream checkpoints and stats are kept")
	seedFile := fs.String("seed", "infra/local/seed.json", "parameters and secrets to put in the emulator first (${VAR} expands, @PATH reads a file); empty for none")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	awsCfg, err := e.aws(ctx)
	if err != nil {
		return err
	}
	if awsCfg.BaseEndpoint == nil || *awsCfg.BaseEndpoint == "" {
		return usagef("AWS_ENDPOINT_URL is not set: ferry local runs against a local emulator (see `make run`)")
	}
	if err := os.MkdirAll(*stateDir, 0o755); err != nil {
		return err
	}

	res := localstack.Defaults()
	// Count DynamoDB writes across every client (the handlers' included),
	// for benchmarks; the counter ignores requests to other services.
	var writes store.WriteCounter
	awsCfg.APIOptions = append(awsCfg.APIOptions, writes.Middleware())
	ddb := dynamodb.NewFromConfig(awsCfg)
	sqsc := sqs.NewFromConfig(awsCfg)
	st := store.New(ddb, res.Table)
	if err := st.CreateTable(ctx); err != nil {
		return err
	}
	stack, err := localstack.Setup(ctx, localstack.Clients{
		S3:          s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SQS:         sqsc,
		EventBridge: eventbridge.NewFromConfig(awsCfg),
	}, res)
	if err != nil {
		return fmt.Errorf("set up local resources: %w", err)
	}
	if *seedFile != "" {
		seed, err := readSeed(*seedFile, e.getenv)
		if err != nil {
			return err
		}
		if err := seed.Store(ctx, secretsmanager.NewFromConfig(awsCfg), ssm.NewFromConfig(awsCfg)); err != nil {
			return err
		}
	}
	streamARN, err := st.StreamARN(ctx)
	if err != nil {
		return err
	}

	cfg := e.cfg
	cfg.Table, cfg.EventBus, cfg.EventSource = res.Table, res.EventBus, res.EventSource
	cfg.RetryQueueURL = stack.RetryURL
	cfg.Routes = *routes
	cfg.S3PathStyle = true
	a, err := app.New(ctx, awsCfg, cfg, log)
	if err != nil {
		return err
	}
	streams := dynamodbstreams.NewFromConfig(awsCfg)
	checkpoints := esm.FileCheckpoints{Dir: filepath.Join(*stateDir, "checkpoints")}
	failures := esm.Destination{SQS: sqsc, QueueURL: stack.StreamFailuresURL}
	var runners []func(context.Context) error
	for _, m := range []struct {
		name    string
		handler esm.StreamHandler
	}{{"advance", a.Advance.Handle}, {"publish", a.Publish.Handle}} {
		sm, err := esm.NewStreamMapping(esm.StreamConfig{
			Name: m.name, Streams: streams, StreamARN: streamARN, Handler: m.handler,
			OnFailure: failures, Checkpoints: checkpoints, Logger: log.With("mapping", m.name),
		})
		if err != nil {
			return err
		}
		runners = append(runners, sm.Run)
	}
	for _, m := range []struct {
		name, url string
		handler   esm.SQSHandler
	}{{"intake", stack.IntakeURL, a.Intake.Handle}, {"retry", stack.RetryURL, a.Retry.Handle}} {
		qm, err := esm.NewSQSMapping(esm.SQSConfig{
			Name: m.name, SQS: sqsc, QueueURL: m.url, Handler: m.handler,
			VisibilityTimeout: 5 * time.Minute, Logger: log.With("mapping", m.name),
		})
		if err != nil {
			return err
		}
		runners = append(runners, qm.Run)
	}
	if a.MESHPoll != nil {
		every := time.Duration(a.MESH.Config.Inbound.PollInterval)
		for mailbox := range a.MESHPoll.Mailboxes {
			runners = append(runners, esm.Ticker{Name: "meshpoll " + mailbox, Interval: every, Immediate: true, Logger: log,
				Func: func(ctx context.Context) error {
					_, err := a.MESHPoll.Poll(ctx, mailbox)
					return err
				}}.Run)
		}
	}
	statsPath := filepath.Join(*stateDir, "stats.json")
	runners = append(runners, esm.Ticker{Name: "stats", Interval: time.Second, Immediate: true, Logger: log, Func: func(context.Context) error {
		return writeStats(statsPath, writes.Count())
	}}.Run)

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
	ready, _ := json.Marshal(map[string]string{
		"endpoint":       *awsCfg.BaseEndpoint,
		"table":          res.Table,
		"uploadBucket":   res.UploadBucket,
		"meshBucket":     res.MESHBucket,
		"deliveryBucket": res.DeliveryBucket,
		"intakeQueue":    stack.IntakeURL,
		"observerQueue":  stack.ObserverURL,
		"streamFailures": stack.StreamFailuresURL,
		"routes":         *routes,
	})
	fmt.Fprintf(e.stdout, "ferry local: ready %s\n", ready)
	<-ctx.Done()
	log.Info("shutting down: finishing the batches in flight")
	wg.Wait()
	_ = writeStats(statsPath, writes.Count())
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

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// readSeed reads a seed file, expanding ${VAR} from the environment and
// replacing "@PATH" values with the file's contents.
func readSeed(path string, getenv func(string) string) (localstack.Seed, error) {
	var seed localstack.Seed
	data, err := os.ReadFile(path)
	if err != nil {
		return seed, fmt.Errorf("seed: %w", err)
	}
	if err := json.Unmarshal(data, &seed); err != nil {
		return seed, fmt.Errorf("seed %s: %w", path, err)
	}
	expand := func(kind string, m map[string]string) error {
		for k, v := range m {
			v = os.Expand(v, getenv)
			if rest, ok := strings.CutPrefix(v, "@"); ok {
				b, err := os.ReadFile(rest)
				if err != nil {
					return fmt.Errorf("seed %s %s: %w", kind, k, err)
				}
				v = string(b)
			}
			if v == "" {
				return fmt.Errorf("seed %s %s is empty (is its environment variable set?)", kind, k)
			}
			m[k] = v
		}
		return nil
	}
	if err := expand("parameter", seed.Parameters); err != nil {
		return seed, err
	}
	return seed, expand("secret", seed.Secrets)
}
