package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/internal/app"
	"github.com/ferryhq/ferry/transport/mesh"
)

// runRoutes is `ferry routes check [FILE]` and `ferry routes which`.
func runRoutes(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("routes check [FILE] | routes which --bucket B --key K [--meta k=v]... [--size N]")
	}
	switch args[0] {
	case "check":
		return routesCheck(ctx, e, args[1:])
	case "which":
		return routesWhich(ctx, e, args[1:])
	default:
		return usagef("unknown routes command %q (want check or which)", args[0])
	}
}

// loadRoutes reads a routing table as the functions do: a file, ssm:NAME
// or s3://B/K.
func (e *env) loadRoutes(ctx context.Context, src string) (domain.Routes, error) {
	if strings.HasPrefix(src, "ssm:") || strings.HasPrefix(src, "s3://") {
		awsCfg, err := e.aws(ctx)
		if err != nil {
			return domain.Routes{}, err
		}
		s3c, err := e.s3(ctx)
		if err != nil {
			return domain.Routes{}, err
		}
		return app.LoadRoutes(ctx, awsCfg, s3c, src)
	}
	data, err := os.ReadFile(strings.TrimPrefix(src, "file:"))
	if err != nil {
		return domain.Routes{}, err
	}
	return domain.ParseRoutes(data)
}

// routesCheck validates a routing table and reports every problem at once,
// each with where it is; exit 1 if there is any.
func routesCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags("routes check", e.stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q", pos[1])
	}
	src := firstNonEmpty(e.cfg.Routes, "infra/local/routes.json")
	if len(pos) == 1 {
		src = pos[0]
	}
	routes, err := e.loadRoutes(ctx, src)
	if err == nil {
		err = app.CheckRoutes(routes)
	}
	if err != nil {
		var lines []string
		for _, l := range strings.Split(err.Error(), "\n") {
			if l = strings.TrimSpace(strings.TrimPrefix(l, "routes: ")); l != "" {
				lines = append(lines, "  "+l)
			}
		}
		fmt.Fprintf(e.stdout, "%s: %d problem(s)\n%s\n", src, len(lines), strings.Join(lines, "\n"))
		return errors.New("the routing table has problems")
	}
	fmt.Fprintf(e.stdout, "%s: %d routes, ok\n", src, len(routes.Routes))
	return nil
}

// which is what `routes which --json` prints.
type which struct {
	Route       string             `json:"route,omitempty"`
	Destination domain.Destination `json:"destination,omitzero"`
	ChunkSize   int64              `json:"chunkSize,omitempty"`
	// ChunkSizeRaisedFrom is the route's chunk size when the plan raised it.
	ChunkSizeRaisedFrom int64      `json:"chunkSizeRaisedFrom,omitempty"`
	Chunks              int        `json:"chunks,omitempty"`
	Skipped             []string   `json:"skipped"`
	Rejected            *rejection `json:"rejected,omitempty"`
}

type rejection struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// routesWhich shows what intake would do with an upload: the route that
// matches and why (the routes before it and why each did not), its
// destination and chunk plan, or the rejection. It runs intake's own
// Command on the upload described, so it cannot disagree with intake.
func routesWhich(ctx context.Context, e *env, args []string) error {
	fs := newFlags("routes which", e.stderr)
	src := fs.String("routes", firstNonEmpty(e.cfg.Routes, "infra/local/routes.json"), "routing table (file, ssm:NAME or s3://B/K)")
	bucket := fs.String("bucket", "ferry-local", "the upload's bucket")
	key := fs.String("key", "", "the upload's key (outbound/…)")
	size := fs.Int64("size", 0, "the upload's size in bytes, for the chunk plan")
	meta := metaFlags{}
	fs.Var(meta, "meta", "upload metadata key=value (sender, recipient, workflow, filename, subject, localid, mex-*); repeatable")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *key == "" {
		return usagef("--key is required")
	}
	if *size < 0 {
		return usagef("--size must not be negative")
	}
	routes, err := e.loadRoutes(ctx, *src)
	if err != nil {
		return err
	}
	h := &intake.Handler{Routes: routes}
	if routes.MESH != nil {
		c, err := mesh.ParseConfig(routes.MESH)
		if err != nil {
			return err
		}
		h.MESH = c.Addressing()
	}
	cmd, skipped := h.Explain(intake.Object{Bucket: *bucket, Key: *key, Size: *size, Metadata: meta})
	out := which{Skipped: skipped}
	if out.Skipped == nil {
		out.Skipped = []string{}
	}
	switch cmd := cmd.(type) {
	case domain.Request:
		evs, err := domain.Decide(domain.State{ID: "planned"}, cmd, time.Now())
		if err != nil {
			return err
		}
		r, _ := evs[0].Payload.(domain.Requested)
		out.Route, out.Destination, out.Chunks = r.Route, r.Destination, r.Chunks
		out.ChunkSize, out.ChunkSizeRaisedFrom = r.ChunkSize, r.ChunkSizeRaisedFrom
	case domain.Reject:
		out.Rejected = &rejection{Code: domain.CodeOf(cmd.Reason), Message: cmd.Reason.Message}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printWhich(e, out, *size)
	}
	if out.Rejected != nil {
		return errors.New("the upload would be rejected")
	}
	return nil
}

func printWhich(e *env, w which, size int64) {
	for _, s := range w.Skipped {
		fmt.Fprintf(e.stdout, "  skipped %s\n", s)
	}
	if w.Rejected != nil {
		fmt.Fprintf(e.stdout, "rejected: %s: %s\n", w.Rejected.Code, w.Rejected.Message)
		return
	}
	dest, _ := json.Marshal(w.Destination)
	fmt.Fprintf(e.stdout, "route: %s\ndestination: %s\n", w.Route, dest)
	plan := fmt.Sprintf("chunks: %d of %s for %d bytes", w.Chunks, mib(w.ChunkSize), size)
	if w.ChunkSizeRaisedFrom > 0 {
		plan += fmt.Sprintf(" (the route's %s raised to keep within %d parts)", mib(w.ChunkSizeRaisedFrom), domain.MaxChunks)
	}
	fmt.Fprintln(e.stdout, plan)
}

func mib(n int64) string {
	if n%domain.MiB == 0 {
		return fmt.Sprintf("%d MiB", n/domain.MiB)
	}
	return fmt.Sprintf("%d bytes", n)
}
