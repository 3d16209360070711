// Package local is ferry's local runtime: every ferry function in one
// process against a local emulator, wired as in AWS. Two readers of the
// event table's stream (advance and publish) and the intake and retry
// queues each run through an emulated event source mapping (local/esm), a
// ticker polls each MESH inbox as the scheduled meshpoll Lambda would, an
// SMTP listener plays SES's receipt rule for the email function, and the
// resources they need are created first. The resources and the
// mappings' settings are infra/template.yaml's (local/resources reads it),
// with the local differences documented there and in mappings.
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
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ferryhq/ferry/console"
	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/app"
	"github.com/ferryhq/ferry/internal/local/apigw"
	"github.com/ferryhq/ferry/internal/local/callrec"
	"github.com/ferryhq/ferry/internal/local/esm"
	"github.com/ferryhq/ferry/internal/local/opcount"
	"github.com/ferryhq/ferry/internal/local/resources"
	"github.com/ferryhq/ferry/internal/local/smtpgw"
	"github.com/ferryhq/ferry/internal/local/wsgw"
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
	// read calls and item writes, for benchmarks).
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
	// APIAddr is where the HTTP API listens (host:port on loopback; port 0
	// picks a free one, named in the ready line).
	APIAddr string
	// LiveAddr is where the WebSocket API and its @connections management
	// API listen, likewise.
	LiveAddr string
	// SMTPAddr is where the SMTP listener that plays the template's SES
	// receipt rule listens (host:port on loopback; port 0 picks a free
	// one, named in the ready line).
	SMTPAddr string
	// ConsoleAddr is where the web console is served, likewise.
	ConsoleAddr string
	// Calls, if not nil, records the AWS calls each function makes, its
	// handler's and its event source mapping's apart (see callrec).
	Calls *callrec.Recorder
	// HealthEvery is how often the scheduled partner check runs (the
	// template's schedule is every 15 minutes); zero means DefaultHealthEvery.
	HealthEvery time.Duration
	// OverdueEvery is how often the routes' expectations are checked (the
	// template's schedule is every 5 minutes); zero means
	// DefaultOverdueEvery. OverdueSettle is how long after a window's end
	// it is judged; zero means overdue.DefaultSettle.
	OverdueEvery, OverdueSettle time.Duration
}

// DefaultHealthEvery is how often ferry local checks the partners: once at
// start, then every five minutes.
const DefaultHealthEvery = 5 * time.Minute

// DefaultOverdueEvery is how often ferry local checks the expectations.
const DefaultOverdueEvery = time.Minute

// handlers are the functions of infra/template.yaml, by Handler name.
var handlers = []string{"intake", "advance", "publish", "retry", "meshpoll", "health", "overdue", "api", "authorizer", "live", "notify", "email"}

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
	// And every AWS call by service and operation, with the functions'
	// invocations, for the load benchmark and the cost model.
	var ops opcount.Counter
	awsCfg.APIOptions = append(awsCfg.APIOptions, writes.Middleware(), ops.Middleware())

	stack, err := setup(ctx, awsCfg, o)
	if err != nil {
		return err
	}
	res := stack.Resources
	cfg := o.App
	cfg.Table, cfg.EventBus, cfg.EventSource = res.Table, res.EventBus, res.EventSource
	cfg.RetryQueueURL = stack.RetryURL
	cfg.S3PathStyle = true
	cfg.PostboxBucket = res.UploadBucket
	cfg.ConnectionsTable = res.ConnectionsTable
	liveL, err := listen(o.LiveAddr, "live")
	if err != nil {
		return err
	}
	defer liveL.Close()
	liveURL := "http://" + liveL.Addr().String()
	cfg.LiveEndpoint = liveURL // notify's @connections
	cfg.EmailBucket = res.UploadBucket
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
		Notify: apps["notify"].Notify, Health: apps["health"].Health, Overdue: apps["overdue"].Overdue,
	}
	statsPath := filepath.Join(o.StateDir, "stats.json")
	runners, err := mappings(a, awsCfg, stack, o, &ops)
	if err != nil {
		return err
	}
	consoleL, err := listen(o.ConsoleAddr, "console")
	if err != nil {
		return err
	}
	defer consoleL.Close()
	consoleURL := "http://" + consoleL.Addr().String()
	apiURL, serveAPI, err := httpAPI(o, stack.Definition, apps["api"], apps["authorizer"], consoleURL)
	if err != nil {
		return err
	}
	runners = append(runners, serveAPI)
	runners = append(runners, consoleServer(consoleL, console.Config{API: apiURL, Live: "ws" + strings.TrimPrefix(liveURL, "http")}))
	serveLive, err := webSocketAPI(o, stack, liveL, apps)
	if err != nil {
		return err
	}
	runners = append(runners, serveLive)
	smtpAddr, smtpCert, serveSMTP, err := smtpListener(awsCfg, stack.Definition, apps["email"], cfg, o)
	if err != nil {
		return err
	}
	if serveSMTP != nil {
		runners = append(runners, serveSMTP)
	}
	runners = append(runners, esm.Ticker{Name: "stats", Interval: time.Second, Immediate: true, Logger: o.Log, Func: func(context.Context) error {
		return writeStats(statsPath, &writes, &ops)
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
		"api":            apiURL,
		"live":           "ws" + strings.TrimPrefix(liveURL, "http"),
		"smtp":           smtpAddr,
		"smtpCert":       smtpCert,
		"console":        consoleURL,
	})
	err = runAll(ctx, runners, func() { fmt.Fprintf(o.Ready, "ferry local: ready %s\n", ready) }, o.Log)
	_ = writeStats(statsPath, &writes, &ops)
	return err
}

// setup makes the local stack from infra/template.yaml (the table, queues,
// buckets, bus and rules; see local/resources) and stores the seed.
func setup(ctx context.Context, awsCfg aws.Config, o Options) (*resources.Stack, error) {
	def, err := resources.Template(awsCfg.Region)
	if err != nil {
		return nil, err
	}
	stack, err := resources.Setup(ctx, resources.Clients{
		DynamoDB:    dynamodb.NewFromConfig(awsCfg),
		S3:          s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true }),
		SQS:         sqs.NewFromConfig(awsCfg),
		EventBridge: eventbridge.NewFromConfig(awsCfg),
	}, def)
	if err != nil {
		return nil, fmt.Errorf("set up local resources: %w", err)
	}
	if o.Seed != "" {
		seed, err := resources.ReadSeed(o.Seed, o.Getenv)
		if err != nil {
			return nil, err
		}
		if err := seed.Store(ctx, secretsmanager.NewFromConfig(awsCfg), ssm.NewFromConfig(awsCfg)); err != nil {
			return nil, err
		}
	}
	return stack, nil
}

// httpAPI listens on o.APIAddr and returns the API's URL and the runner
// that serves it: API Gateway emulated (local/apigw) in front of the api
// function, with the authorizer, its identity source and cache TTL the
// template's, and its CORS configuration, allowing consoleOrigin too.
func httpAPI(o Options, def resources.Definition, apiApp, authApp *app.App, consoleOrigin string) (string, func(context.Context) error, error) {
	if len(def.HTTPAPIs) != 1 || len(def.HTTPAPIs[0].IdentityHeaders) != 1 {
		return "", nil, fmt.Errorf("api: the template has %d HTTP APIs; ferry local serves one, with one identity header", len(def.HTTPAPIs))
	}
	spec := def.HTTPAPIs[0]
	l, err := listen(o.APIAddr, "api")
	if err != nil {
		return "", nil, err
	}
	g := &apigw.Gateway{
		Authorizer: authApp.Authorizer.Handle, IdentityHeader: spec.IdentityHeaders[0], CacheTTL: spec.AuthorizerTTL,
		Handler: apiApp.API.Handle, CORS: corsOf(spec.CORS, consoleOrigin), Log: o.Log.With("mapping", "api"),
	}
	return "http://" + l.Addr().String(), func(ctx context.Context) error { return apigw.Serve(ctx, l, g) }, nil
}

// listen listens on addr, a free loopback port when "".
func listen(addr, what string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	return l, nil
}

// webSocketAPI returns the runner that serves the template's WebSocket API
// on l: API Gateway emulated (local/wsgw), with the $connect authorizer
// and the routes' function, and the stage's @connections API.
func webSocketAPI(o Options, stack *resources.Stack, l net.Listener, apps map[string]*app.App) (func(context.Context) error, error) {
	d := stack.Definition
	if len(d.WebSocketAPIs) != 1 {
		return nil, fmt.Errorf("live: the template has %d WebSocket APIs; ferry local serves one", len(d.WebSocketAPIs))
	}
	spec := d.WebSocketAPIs[0]
	if spec.Handler != "live" || spec.Authorizer != "authorizer" {
		return nil, fmt.Errorf("live: the WebSocket API invokes %s and authorizes with %s; ferry local has live and authorizer", spec.Handler, spec.Authorizer)
	}
	var routes []string
	for _, r := range spec.Routes {
		if !strings.HasPrefix(r, "$") {
			routes = append(routes, r)
		}
	}
	g := &wsgw.Gateway{
		Authorizer: apps["authorizer"].Authorizer.HandleWebSocket, IdentityQuery: spec.IdentityQuery,
		Handler: apps["live"].Live.Handle, Routes: routes, APIID: spec.APIID, Stage: spec.Stage,
		MethodARN: spec.ConnectARN, Log: o.Log.With("mapping", "live"),
	}
	return func(ctx context.Context) error { return wsgw.Serve(ctx, l, g) }, nil
}

// smtpListener listens on o.SMTPAddr and returns its address, the path of
// its STARTTLS certificate (in the state dir) and the runner that serves
// it: the template's SES receipt rule played (local/smtpgw), storing
// messages in the emulated S3 as SES's S3 action does (a client of no
// function's: SES writes with its own principal) and invoking the email
// handler. A template without a receipt rule has no listener.
func smtpListener(awsCfg aws.Config, def resources.Definition, emailApp *app.App, cfg app.Config, o Options) (string, string, func(context.Context) error, error) {
	switch len(def.ReceiptRules) {
	case 0:
		return "", "", nil, nil
	case 1:
	default:
		return "", "", nil, fmt.Errorf("smtp: ferry local plays one SES receipt rule, the template has %d", len(def.ReceiptRules))
	}
	rule := def.ReceiptRules[0]
	if rule.Handler != "email" || rule.Bucket != cfg.EmailBucket || rule.Prefix != domain.EmailPrefix {
		return "", "", nil, fmt.Errorf("smtp: receipt rule %s stores into s3://%s/%s and invokes %s; the email function reads s3://%s/%s",
			rule.ID, rule.Bucket, rule.Prefix, rule.Handler, cfg.EmailBucket, domain.EmailPrefix)
	}
	addr := o.SMTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	certPath := filepath.Join(o.StateDir, "smtp-cert.pem")
	tlsCfg, err := smtpgw.SelfSigned(certPath)
	if err != nil {
		return "", "", nil, fmt.Errorf("smtp: %w", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", "", nil, fmt.Errorf("smtp: listen on %s: %w", addr, err)
	}
	g := &smtpgw.Gateway{
		Rule: rule, Objects: s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true }),
		Handler: emailApp.Email.Handle, FunctionARN: rule.FunctionARN, TLS: tlsCfg, TempDir: o.StateDir,
		Now: time.Now, Log: o.Log.With("mapping", "smtp"),
	}
	return l.Addr().String(), certPath, func(ctx context.Context) error { return smtpgw.Serve(ctx, l, g) }, nil
}

// Local settings of the mappings, which differ from AWS on purpose so that
// a failure is retried in seconds, not minutes.
const (
	// sqsRetryDelay is how soon a failed SQS message is received again; in
	// AWS it stays hidden for the rest of its queue's VisibilityTimeout.
	sqsRetryDelay = esm.DefaultRetryDelay
	// sqsConcurrency is how many batches each queue mapping handles at
	// once. Lambda polls a queue with five pollers to begin with (up to the
	// mapping's MaximumConcurrency), but with more than one here intake
	// overtakes the email function on a received message's attachments:
	// it then makes their transfers first, from the stored objects, which
	// cannot carry the SHA-256 the email function records (a race AWS has
	// too, seldom; see docs/scale.md). One until intake waits for the
	// email function.
	sqsConcurrency = 1
)

// mappings builds, as AWS would, an event source mapping per stream and
// queue event of each function in the template, with the template's
// settings, and a schedule per MESH inbox for a scheduled meshpoll (at the
// routing file's inbound.pollInterval rather than the template's rate, a
// local setting). Events of handlers ferry local does not run are logged and
// skipped.
// Each handler's invocations are counted in ops.
func mappings(a *app.App, awsCfg aws.Config, stack *resources.Stack, o Options, ops *opcount.Counter) ([]func(context.Context) error, error) {
	// Each mapping's clients call AWS for its function, as the Lambda
	// service does with the function's role.
	esmCfg := func(handler string) aws.Config { return o.Calls.Config(awsCfg, handler, callrec.EventSource) }
	checkpoints := esm.FileCheckpoints{Dir: filepath.Join(o.StateDir, "checkpoints")}
	streamHandlers := map[string]esm.StreamHandler{"advance": a.Advance.Handle, "publish": a.Publish.Handle}
	queueHandlers := map[string]esm.SQSHandler{"intake": a.Intake.Handle, "retry": a.Retry.Handle, "notify": a.Notify.Handle}
	var partitionKey string
	for _, k := range stack.Definition.Table.Input.KeySchema {
		if k.KeyType == "HASH" {
			partitionKey = aws.ToString(k.AttributeName)
		}
	}
	var runners []func(context.Context) error
	for _, f := range stack.Definition.Functions {
		for i, s := range f.Streams {
			h, ok := streamHandlers[f.Handler]
			if !ok {
				o.Log.Warn("not run locally: no stream handler", "function", f.ID, "handler", f.Handler, "event", s.Event)
				continue
			}
			name := mappingName(f.Handler, s.Event, i)
			maxRetries := s.MaxRetries
			if maxRetries == 0 {
				maxRetries = esm.NoRetries
			}
			h = opcount.Handler(ops, f.Handler, func(e events.DynamoDBEvent) int { return len(e.Records) }, h)
			cfg := esm.StreamConfig{
				Name: name, Streams: dynamodbstreams.NewFromConfig(esmCfg(f.Handler)), StreamARN: stack.StreamARN, Handler: h,
				StartingPosition: s.StartingPosition, BatchSize: s.BatchSize, MaxRetries: maxRetries,
				BisectOnError: aws.Bool(s.BisectOnError), ParallelizationFactor: s.ParallelizationFactor,
				PartitionKey: partitionKey, ReportBatchItemFailures: aws.Bool(s.ReportBatchItemFailures),
				Filters: s.Filters, Checkpoints: checkpoints, Logger: o.Log.With("mapping", name),
			}
			if s.OnFailure != "" {
				cfg.OnFailure = esm.Destination{SQS: sqs.NewFromConfig(esmCfg(f.Handler)), QueueURL: stack.QueueURLs[s.OnFailure]}
			}
			sm, err := esm.NewStreamMapping(cfg)
			if err != nil {
				return nil, err
			}
			runners = append(runners, sm.Run)
		}
		for i, q := range f.Queues {
			h, ok := queueHandlers[f.Handler]
			if !ok {
				o.Log.Warn("not run locally: no SQS handler", "function", f.ID, "handler", f.Handler, "event", q.Event)
				continue
			}
			name := mappingName(f.Handler, q.Event, i)
			h = opcount.Handler(ops, f.Handler, func(e events.SQSEvent) int { return len(e.Records) }, h)
			qm, err := esm.NewSQSMapping(esm.SQSConfig{
				Name: name, SQS: sqs.NewFromConfig(esmCfg(f.Handler)), QueueURL: stack.QueueURLs[q.Queue], Handler: h,
				BatchSize: q.BatchSize, ReportBatchItemFailures: aws.Bool(q.ReportBatchItemFailures),
				RetryDelay: sqsRetryDelay, Concurrency: sqsConcurrency, Logger: o.Log.With("mapping", name),
			})
			if err != nil {
				return nil, err
			}
			runners = append(runners, qm.Run)
		}
		if len(f.Schedules) > 0 && f.Handler == "health" && a.Health != nil {
			every := o.HealthEvery
			if every <= 0 {
				every = DefaultHealthEvery
			}
			runners = append(runners, esm.Ticker{Name: "health", Interval: every, Immediate: true, Logger: o.Log, Func: a.Health.Handle}.Run)
		}
		if len(f.Schedules) > 0 && f.Handler == "overdue" && a.Overdue != nil {
			every := o.OverdueEvery
			if every <= 0 {
				every = DefaultOverdueEvery
			}
			a.Overdue.Settle = o.OverdueSettle
			runners = append(runners, esm.Ticker{Name: "overdue", Interval: every, Immediate: true, Logger: o.Log, Func: a.Overdue.Handle}.Run)
		}
		if len(f.Schedules) > 0 && f.Handler == "meshpoll" && a.MESHPoll != nil {
			every := time.Duration(a.MESH.Config.Inbound.PollInterval)
			for mailbox := range a.MESHPoll.Mailboxes {
				runners = append(runners, esm.Ticker{Name: "meshpoll " + mailbox, Interval: every, Immediate: true, Logger: o.Log,
					Func: func(ctx context.Context) error {
						_, err := a.MESHPoll.Poll(ctx, mailbox)
						return err
					}}.Run)
			}
		}
	}
	return runners, nil
}

// mappingName names a function's event source mapping after its handler
// (the name keys its checkpoints), and after the event too for a handler's
// second source of a kind.
func mappingName(handler, event string, i int) string {
	if i == 0 {
		return handler
	}
	return handler + "-" + event
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

// writeStats records counters for benchmarks, atomically: DynamoDB item
// writes, and read calls (Query, GetItem, BatchGetItem, Scan), and
// opcount's Stats (every AWS call by service and operation, EventBridge
// entries, the functions' invocations).
func writeStats(path string, c *store.WriteCounter, ops *opcount.Counter) error {
	reads := c.Calls("Query") + c.Calls("GetItem") + c.Calls("BatchGetItem") + c.Calls("Scan")
	b, _ := json.Marshal(struct {
		DynamoDBWrites int64 `json:"dynamodbWrites"`
		DynamoDBReads  int64 `json:"dynamodbReads"`
		opcount.Stats
	}{c.Count(), reads, ops.Snapshot()})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
