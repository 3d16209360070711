// Command ferry is the operator's tool: it sends files, shows a transfer's
// timeline, queries history, and runs the whole service locally.
//
//	ferry send FILE --key outbound/NAME --meta sender=A --meta recipient=B [--watch]
//	ferry show ID [--json]
//	ferry watch ID
//	ferry history --status S [--since D] [--sender M] [--recipient M] [--json]
//	ferry replay ID... --reason R
//	ferry replay --status FAILED [--route R] [--code C] [--dry-run] [--max N] [--rate N/s] --reason R
//	ferry cancel ID... --reason R
//	ferry routes check [FILE]
//	ferry routes which --key outbound/NAME [--meta k=v]... [--size N]
//	ferry doctor [--route R] [--json]
//	ferry local
//
// Configuration comes from the environment: the usual AWS variables
// (AWS_REGION, AWS_ENDPOINT_URL for emulators, credentials), and FERRY_TABLE,
// FERRY_EVENT_BUS, FERRY_ROUTES, FERRY_RETRY_QUEUE_URL, FERRY_S3_PATH_STYLE.
// Errors are printed as "ferry: <cmd>: <reason>"; the exit code is 1 for a
// failure and 2 for a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/internal/app"
	"github.com/ferryhq/ferry/store"
)

// command is one subcommand.
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, env *env, args []string) error
}

var commands = []command{
	{"send", "send FILE [--key outbound/NAME] [--bucket B] [--meta k=v]... [--watch [--until acknowledged]]", runSend},
	{"show", "show ID [--json]", runShow},
	{"watch", "watch ID [--until delivered|acknowledged] [--observe-queue URL] [--timeout D]", runWatch},
	{"history", "history --status S [--since D] [--until D] [--sender M] [--recipient M] [--route R] [--limit N] [--cursor C] [--json]", runHistory},
	{"replay", "replay ID... --reason R | replay --status FAILED [--route R] [--recipient M] [--since D] [--until D] [--code C] [--dry-run] [--max N] [--rate N/s] --reason R", runReplay},
	{"cancel", "cancel ID... --reason R", runCancel},
	{"keys", "keys create --party P [--role partner|operator] [--label L] | keys list | keys revoke ID", runKeys},
	{"routes", "routes check [FILE] | routes which --key K [--bucket B] [--meta k=v]... [--size N] [--routes FILE] [--json]", runRoutes},
	{"doctor", "doctor [--route R] [--routes FILE] [--timeout D] [--json]", runDoctor},
	{"local", "local [--routes FILE] [--state-dir DIR] [--seed FILE] [--api HOST:PORT] [--live HOST:PORT] [--smtp HOST:PORT]", runLocal},
}

// usageError is an error in how the command was called (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// env is what every subcommand may use: configuration read once from the
// process environment, and lazily built clients.
type env struct {
	cfg    app.Config
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	awsCfg *aws.Config
}

func (e *env) aws(ctx context.Context) (aws.Config, error) {
	if e.awsCfg == nil {
		c, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
		}
		e.awsCfg = &c
	}
	return *e.awsCfg, nil
}

func (e *env) store(ctx context.Context) (*store.Store, error) {
	c, err := e.aws(ctx)
	if err != nil {
		return nil, err
	}
	return store.New(dynamodb.NewFromConfig(c), e.cfg.WithDefaults().Table), nil
}

func (e *env) s3(ctx context.Context) (*s3.Client, error) {
	c, err := e.aws(ctx)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(c, func(o *s3.Options) { o.UsePathStyle = e.cfg.S3PathStyle }), nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	e := &env{
		cfg:    app.ConfigFromEnv(getenv),
		stdout: stdout,
		stderr: stderr,
		getenv: getenv,
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		var ue usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "ferry: %s: %s\nusage: ferry %s\n", c.name, ue.msg, c.usage)
			return 2
		default:
			fmt.Fprintf(stderr, "ferry: %s: %s\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "ferry: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  ferry %s\n", c.usage)
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args with fs, allowing flags after positional arguments, and
// returns the positional ones. Parse errors are usage errors.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
