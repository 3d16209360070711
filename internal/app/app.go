// Package app wires ferry's handlers from configuration. The Lambda
// bootstrap and `ferry local` both build their handlers here, so the code
// that runs in AWS and on a laptop is the same.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/advance"
	"github.com/ferryhq/ferry/functions/api"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/functions/email"
	"github.com/ferryhq/ferry/functions/health"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/functions/live"
	"github.com/ferryhq/ferry/functions/meshpoll"
	"github.com/ferryhq/ferry/functions/notify"
	"github.com/ferryhq/ferry/functions/overdue"
	"github.com/ferryhq/ferry/functions/publish"
	"github.com/ferryhq/ferry/functions/retry"
	"github.com/ferryhq/ferry/internal/bus"
	ferrylive "github.com/ferryhq/ferry/live"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/azblob"
	emailtransport "github.com/ferryhq/ferry/transport/email"
	httpstransport "github.com/ferryhq/ferry/transport/https"
	"github.com/ferryhq/ferry/transport/mesh"
	"github.com/ferryhq/ferry/transport/null"
	s3transport "github.com/ferryhq/ferry/transport/s3"
	"github.com/ferryhq/ferry/transport/sftp"
)

// Config is what the handlers need to know about their environment. Main
// packages fill it from the environment with ConfigFromEnv; nothing else
// reads it.
type Config struct {
	Table         string // event table (FERRY_TABLE)
	EventBus      string // EventBridge bus (FERRY_EVENT_BUS)
	EventSource   string // source of published events (FERRY_EVENT_SOURCE)
	RetryQueueURL string // retry queue (FERRY_RETRY_QUEUE_URL)
	Routes        string // where the routing table is (FERRY_ROUTES): ssm:NAME, s3://B/K or a file
	S3PathStyle   bool   // path-style S3 addressing, for emulators (FERRY_S3_PATH_STYLE)
	// Handler names the one handler this process runs (the Lambda's
	// _HANDLER; ferry local builds one App per handler too), or "" for
	// all of them. Every handler is built either way (building makes no
	// AWS calls), but only the handlers that talk to MESH read its
	// credentials.
	Handler string
	// MESHPollMinutes is how often the meshpoll schedule ticks
	// (FERRY_MESH_POLL_MINUTES, default 1): each tick polls the inboxes
	// whose mesh.inbound.pollInterval is due. -1 marks a value that is not
	// a whole number of minutes, which Validate reports.
	MESHPollMinutes int
	// PostboxBucket is where the HTTP API stores posted files
	// (FERRY_POSTBOX_BUCKET): the upload bucket.
	PostboxBucket string
	// EmailBucket is where SES stores received email, under
	// domain.EmailPrefix, and the email function puts their attachments
	// (FERRY_EMAIL_BUCKET): the upload bucket.
	EmailBucket string
	// MetricsNamespace is where publish counts TransfersFailed
	// (FERRY_METRICS_NAMESPACE); "" publishes no metrics.
	MetricsNamespace string
	// ConnectionsTable holds the live channel's WebSocket connections
	// (FERRY_CONNECTIONS_TABLE); LiveEndpoint is the WebSocket API stage's
	// HTTPS URL, whose @connections API notify pushes to
	// (FERRY_LIVE_ENDPOINT).
	ConnectionsTable string
	LiveEndpoint     string
	// OIDC is the issuer whose JWT access tokens the authorizer accepts
	// besides API keys (FERRY_OIDC_ISSUER, FERRY_OIDC_AUDIENCE,
	// FERRY_OIDC_PARTY_CLAIM, FERRY_OIDC_ROLE_CLAIM); no issuer, no tokens.
	OIDC   authorizer.OIDC
	Budget advance.Budget
}

// ConfigFromEnv reads the configuration from the environment, the one place
// either main (the Lambda bootstrap, the CLI) does: FERRY_TABLE,
// FERRY_EVENT_BUS, FERRY_EVENT_SOURCE, FERRY_RETRY_QUEUE_URL, FERRY_ROUTES,
// FERRY_S3_PATH_STYLE ("true" turns it on), FERRY_MESH_POLL_MINUTES,
// FERRY_METRICS_NAMESPACE, FERRY_POSTBOX_BUCKET, FERRY_EMAIL_BUCKET,
// FERRY_CONNECTIONS_TABLE, FERRY_LIVE_ENDPOINT, FERRY_OIDC_* and _HANDLER.
func ConfigFromEnv(getenv func(string) string) Config {
	minutes := 0
	if v := getenv("FERRY_MESH_POLL_MINUTES"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			minutes = n
		} else {
			minutes = -1
		}
	}
	return Config{
		MESHPollMinutes:  minutes,
		MetricsNamespace: getenv("FERRY_METRICS_NAMESPACE"),
		PostboxBucket:    getenv("FERRY_POSTBOX_BUCKET"),
		ConnectionsTable: getenv("FERRY_CONNECTIONS_TABLE"),
		LiveEndpoint:     getenv("FERRY_LIVE_ENDPOINT"),
		EmailBucket:      getenv("FERRY_EMAIL_BUCKET"),
		Table:            getenv("FERRY_TABLE"),
		EventBus:         getenv("FERRY_EVENT_BUS"),
		EventSource:      getenv("FERRY_EVENT_SOURCE"),
		RetryQueueURL:    getenv("FERRY_RETRY_QUEUE_URL"),
		Routes:           getenv("FERRY_ROUTES"),
		S3PathStyle:      getenv("FERRY_S3_PATH_STYLE") == "true",
		Handler:          getenv("_HANDLER"),
		OIDC: authorizer.OIDC{
			Issuer: getenv("FERRY_OIDC_ISSUER"), Audience: getenv("FERRY_OIDC_AUDIENCE"),
			PartyClaim: getenv("FERRY_OIDC_PARTY_CLAIM"), RoleClaim: getenv("FERRY_OIDC_ROLE_CLAIM"),
		},
	}
}

// Defaults returns the configuration used for fields left empty.
func Defaults() Config {
	return Config{
		Table:       "ferry-transfers",
		EventBus:    "ferry",
		EventSource: "ferry",
		Budget:      advance.DefaultBudget,
		// The template's default schedule.
		MESHPollMinutes: 1,
	}
}

// WithDefaults fills the empty fields of c from Defaults.
func (c Config) WithDefaults() Config {
	d := Defaults()
	if c.Table == "" {
		c.Table = d.Table
	}
	if c.EventBus == "" {
		c.EventBus = d.EventBus
	}
	if c.EventSource == "" {
		c.EventSource = d.EventSource
	}
	if c.MESHPollMinutes == 0 {
		c.MESHPollMinutes = d.MESHPollMinutes
	}
	c.OIDC = c.OIDC.WithDefaults()
	c.Budget = c.Budget.WithDefaults()
	return c
}

// Validate reports every missing setting at once. The health check (and
// ferry doctor, which runs it) and the overdue check schedule no retries,
// so they need no retry queue.
func (c Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("FERRY_TABLE is not set"))
	}
	if c.EventBus == "" {
		errs = append(errs, errors.New("FERRY_EVENT_BUS is not set"))
	}
	if c.RetryQueueURL == "" && c.Handler != "health" && c.Handler != "overdue" {
		errs = append(errs, errors.New("FERRY_RETRY_QUEUE_URL is not set"))
	}
	if c.Routes == "" {
		errs = append(errs, errors.New("FERRY_ROUTES is not set"))
	}
	if c.MESHPollMinutes < 0 {
		errs = append(errs, errors.New("FERRY_MESH_POLL_MINUTES is not a whole number of minutes"))
	}
	errs = append(errs, c.OIDC.Validate())
	return errors.Join(errs...)
}

// App holds every handler, built once per process (per cold start).
type App struct {
	Store   *store.Store
	S3      *s3.Client
	Routes  domain.Routes
	Intake  *intake.Handler
	Advance *advance.Handler
	Publish *publish.Handler
	Retry   *retry.Handler
	// MESH is nil when the routing file has no mesh section.
	MESH *MESH
	// MESHPoll polls MESH inboxes; nil without MESH.
	MESHPoll *meshpoll.Handler
	// API is the HTTP API, Authorizer its Lambda authorizer (and the
	// WebSocket API's).
	API        *api.Handler
	Authorizer *authorizer.Handler
	// Live is the WebSocket API's function, Notify the one that pushes
	// events to its connections.
	Live   *live.Handler
	Notify *notify.Handler
	// Email makes transfers of the attachments of received email.
	Email *email.Handler
	// Health is the scheduled partner check; HealthTargets gives ferry
	// doctor the same checks.
	Health *health.Handler
	// Overdue is the scheduled check of the routes' expectations.
	Overdue *overdue.Handler

	secrets *Secrets
	log     *slog.Logger
}

// HealthTargets returns the partner checks of the routing table, or of the
// route named only when it is not "" (health.Targets). Each check also
// reports the secrets its partner's settings use that carry an expiry date
// (ExpiresTag).
func (a *App) HealthTargets(only string) ([]health.Target, error) {
	checkers := map[string]transport.Checker{}
	for typ, t := range a.Advance.Transports {
		if c, ok := t.(transport.Checker); ok {
			checkers[typ] = c
		}
	}
	mailboxes := map[string]health.Mailbox{}
	if a.MESH != nil {
		for id, c := range a.MESH.Clients {
			mailboxes[id] = c
		}
	}
	ts, err := health.Targets(a.Routes, checkers, mailboxes, only)
	if err != nil || a.secrets == nil {
		return ts, err
	}
	for i, t := range ts {
		refs, check := refsOf(a.Routes, t), t.Check
		if len(refs) == 0 {
			continue
		}
		ts[i].Check = func(ctx context.Context) ([]transport.Credential, error) {
			creds, err := check(ctx)
			return append(creds, taggedExpiry(ctx, a.secrets.SecretsManager, refs, a.log)...), err
		}
	}
	return ts, nil
}

// withHealth builds the scheduled checks, a.Health and a.Overdue, from the
// handlers built so far.
func (a *App) withHealth(awsCfg aws.Config, cfg Config, log *slog.Logger) (*App, error) {
	targets, err := a.HealthTargets("")
	if err != nil {
		return nil, err
	}
	a.Health = &health.Handler{
		Targets: targets, Store: a.Store, Bus: bus.Bus{Client: eventbridge.NewFromConfig(awsCfg), Name: cfg.EventBus, Source: cfg.EventSource},
		MetricsNamespace: cfg.MetricsNamespace, Log: log.With("fn", "health"),
	}
	a.Overdue = &overdue.Handler{
		Targets: overdue.Targets(a.Routes), Store: a.Store, Bus: a.Health.Bus, Log: log.With("fn", "overdue"),
	}
	return a, nil
}

// New builds the handlers. It loads the routing table, so a bad table
// fails here, at start, rather than on the first upload.
func New(ctx context.Context, awsCfg aws.Config, cfg Config, log *slog.Logger) (*App, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := func() time.Time { return time.Now().UTC() }
	if cfg.Handler == "authorizer" {
		// It checks keys and tokens and nothing else: no routing table, no
		// clients but the table's, so its cold start is short.
		st := store.New(dynamodb.NewFromConfig(awsCfg), cfg.Table)
		h := &authorizer.Handler{Keys: st, Log: log.With("fn", "authorizer")}
		if cfg.OIDC.Issuer != "" {
			h.Tokens = authorizer.NewVerifier(cfg.OIDC, nil, nil)
		}
		return &App{Store: st, Authorizer: h}, nil
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.S3PathStyle })
	routes, err := LoadRoutes(ctx, awsCfg, s3c, cfg.Routes)
	if err != nil {
		return nil, err
	}
	st := store.New(dynamodb.NewFromConfig(awsCfg), cfg.Table)
	queue := &retry.Queue{SQS: sqs.NewFromConfig(awsCfg), URL: cfg.RetryQueueURL, Now: now}
	s3t := s3transport.New(s3c).WithLog(log.With("fn", "advance", "transport", "s3"))
	a := &App{
		Store:  st,
		S3:     s3c,
		Routes: routes,
		Intake: &intake.Handler{Store: st, Objects: s3c, Routes: routes, Now: now, Log: log.With("fn", "intake")},
		Advance: &advance.Handler{
			Store: st,
			Transports: map[string]advance.Transport{
				"s3":   s3t,
				"null": null.New(),
			},
			Retries: queue,
			Budget:  cfg.Budget,
			Now:     now,
			Log:     log.With("fn", "advance"),
		},
		Publish: &publish.Handler{Bus: eventbridge.NewFromConfig(awsCfg), BusName: cfg.EventBus, Source: cfg.EventSource, Projector: st, MetricsNamespace: cfg.MetricsNamespace, Log: log.With("fn", "publish")},
		Retry:   &retry.Handler{Store: st, Scheduler: queue, Now: now, Log: log.With("fn", "retry")},
	}
	a.API = &api.Handler{
		Store: st, Objects: s3c, Presigner: s3.NewPresignClient(s3c), Multipart: s3c, Bucket: cfg.PostboxBucket, Intake: a.Intake,
		Now: now, Log: log.With("fn", "api"),
	}
	conns := &ferrylive.Connections{DB: dynamodb.NewFromConfig(awsCfg), Table: cfg.ConnectionsTable}
	a.Live = &live.Handler{Connections: conns, Transfers: st, Log: log.With("fn", "live")}
	a.Notify = &notify.Handler{
		Connections: conns, Events: st, Log: log.With("fn", "notify"),
		Push: &ferrylive.Management{Endpoint: cfg.LiveEndpoint, Region: awsCfg.Region, Credentials: awsCfg.Credentials, HTTP: awsCfg.HTTPClient},
	}
	a.Email = &email.Handler{
		Store: st, Objects: s3c, Intake: a.Intake, Routes: routes, Bucket: cfg.EmailBucket,
		Now: now, Log: log.With("fn", "email"),
	}
	secrets := NewSecrets(awsCfg)
	a.secrets, a.log = secrets, log.With("fn", "health")
	links := s3transport.Links{Presigner: s3.NewPresignClient(s3c)}
	if err := endpointTransports(a.Advance.Transports, routes, secrets, s3transport.NewReader(s3c), links); err != nil {
		return nil, err
	}
	if err := checkTransports(routes, a.Advance.Transports); err != nil {
		return nil, err
	}
	if routes.MESH == nil {
		return a.withHealth(awsCfg, cfg, log)
	}
	mc, err := mesh.ParseConfig(routes.MESH)
	if err != nil {
		return nil, err
	}
	clients := cfg.Handler == "" || cfg.Handler == "advance" || cfg.Handler == "retry" || cfg.Handler == "meshpoll" || cfg.Handler == "health"
	m, err := newMESH(ctx, mc, secrets, clients, st, log.With("fn", "mesh"))
	if err != nil {
		return nil, err
	}
	m.Outbound = &mesh.Outbound{Clients: m.Clients, Source: s3transport.NewReader(s3c)}
	s3t.WithSource("mesh", m.Inbound)
	a.MESH = m
	a.Intake.MESH = m.Addressing
	a.Advance.Transports["mesh"] = m.Outbound
	a.Advance.Acknowledgers = map[string]advance.Acknowledger{"mesh": m.Inbound}
	a.Advance.TrackInterval = time.Duration(mc.TrackInterval)
	a.Retry.Trackers = map[string]retry.Tracker{"mesh": m.Outbound}
	a.Retry.Acknowledgers = map[string]retry.Acknowledger{"mesh": m.Inbound}
	a.Retry.TrackInterval = time.Duration(mc.TrackInterval)
	inboxes := map[string]meshpoll.Inbox{}
	for _, id := range mc.Inbound.Mailboxes {
		inboxes[strings.ToUpper(id)] = m.Clients[strings.ToUpper(id)]
	}
	a.MESHPoll = &meshpoll.Handler{
		Store:     st,
		Mailboxes: inboxes,
		Landing:   mc.Inbound,
		PageLimit: mc.Inbound.PageLimit,
		Interval:  time.Duration(mc.Inbound.PollInterval),
		Tick:      time.Duration(cfg.MESHPollMinutes) * time.Minute,
		Now:       now,
		Log:       log.With("fn", "meshpoll"),
	}
	return a.withHealth(awsCfg, cfg, log)
}

// endpointTransports adds a transport for each destination type whose
// endpoints the routing file names (sftp, https, azblob, email), reading
// the bytes they send from source (and making an email endpoint's links to
// files too large to attach with links). Every endpoint's settings are
// checked here, so a bad one fails at start, naming every problem.
func endpointTransports(transports map[string]advance.Transport, routes domain.Routes, secrets transport.Secrets, source transport.Source, links emailtransport.Linker) error {
	sftpEndpoints, sftpErr := sftp.ParseEndpoints(routes.SFTP)
	if len(sftpEndpoints) > 0 {
		transports["sftp"] = sftp.New(sftpEndpoints, secrets, source)
	}
	httpsEndpoints, httpsErr := httpstransport.ParseEndpoints(routes.HTTPS)
	if len(httpsEndpoints) > 0 {
		transports["https"] = httpstransport.New(httpsEndpoints, secrets, source)
	}
	blobEndpoints, blobErr := azblob.ParseEndpoints(routes.Azblob)
	if len(blobEndpoints) > 0 {
		transports["azblob"] = azblob.New(blobEndpoints, secrets, source)
	}
	emailEndpoints, emailErr := emailtransport.ParseEndpoints(routes.Email)
	if len(emailEndpoints) > 0 {
		tr := emailtransport.New(emailEndpoints, secrets, source)
		tr.Links = links
		transports["email"] = tr
	}
	return errors.Join(sftpErr, httpsErr, blobErr, emailErr)
}

// checkTransports refuses a routing table with a route whose destination
// type has no transport here (a mesh route without a mesh section), so
// that it fails when the table loads rather than on every upload.
func checkTransports(routes domain.Routes, transports map[string]advance.Transport) error {
	var errs []error
	for i, r := range routes.Routes {
		t := r.Destination.Type
		if _, ok := transports[t]; !ok && t != "mesh" {
			errs = append(errs, fmt.Errorf("routes: route %d (%s): no %s transport is configured", i+1, r.Name, t))
		}
		if t == "mesh" && routes.MESH == nil {
			errs = append(errs, fmt.Errorf("routes: route %d (%s): a mesh destination needs the routing file's mesh section", i+1, r.Name))
		}
	}
	return errors.Join(errs...)
}
