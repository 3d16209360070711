// Package health checks ferry's partners without sending them anything:
// each destination of the routing table (an S3 bucket, an SFTP, HTTPS,
// Azure Blob or email endpoint, a MESH mailbox) is connected to and
// authenticated against once, by its transport's Check, and the
// certificates ferry holds for it are read for their expiry. `ferry doctor`
// runs the checks and prints them; the scheduled health Lambda (Handler)
// runs them every few minutes, keeps each partner's state in the event
// table and publishes Partner Unhealthy, Partner Healthy and Credential
// Expiring on ferry's bus when something changes.
package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// ExpiryWarning is how far ahead a credential's expiry is reported: ferry
// doctor lists what expires within it, and the scheduled check's first
// Credential Expiring notice comes at this many days.
const ExpiryWarning = 30 * 24 * time.Hour

// DefaultTimeout bounds one partner's check.
const DefaultTimeout = 30 * time.Second

// Target is one partner to check: a distinct destination of the routing
// table, or a MESH mailbox.
type Target struct {
	// Partner names it: "sftp partner", "s3 bucket-name", "mesh X26ABC1".
	Partner string
	// Type is the destination type, and Name the bucket, endpoint or
	// mailbox of that type.
	Type, Name string
	// Routes are the routes that deliver to it, in table order.
	Routes []string
	// Check checks it once (a transport's Check).
	Check func(ctx context.Context) ([]transport.Credential, error)
}

// Mailbox is the check of one MESH mailbox (mesh.Client.Check).
type Mailbox interface {
	Check(ctx context.Context) ([]transport.Credential, error)
}

// Targets returns the partners of routes to check, in the order their
// first route appears, one per distinct destination (by type, and bucket
// or endpoint) and one per MESH mailbox for the mesh destination.
// checkers are the transports by destination type; a type without one
// (null) has nothing to check. When only is not "", just the partners of
// the route of that name are returned, and a name no route has is an
// error.
func Targets(routes domain.Routes, checkers map[string]transport.Checker, mailboxes map[string]Mailbox, only string) ([]Target, error) {
	var out []Target
	index := map[string]int{}
	add := func(partner, typ, name, route string, check func(context.Context) ([]transport.Credential, error)) {
		if i, ok := index[partner]; ok {
			if !slices.Contains(out[i].Routes, route) {
				out[i].Routes = append(out[i].Routes, route)
			}
			return
		}
		index[partner] = len(out)
		out = append(out, Target{Partner: partner, Type: typ, Name: name, Routes: []string{route}, Check: check})
	}
	found := false
	for _, r := range routes.Routes {
		if only != "" && r.Name != only {
			continue
		}
		found = true
		d := r.Destination
		switch d.Type {
		case "mesh":
			ids := make([]string, 0, len(mailboxes))
			for id := range mailboxes {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				add("mesh "+id, "mesh", id, r.Name, mailboxes[id].Check)
			}
		default:
			c, ok := checkers[d.Type]
			if !ok {
				continue // null: nothing to reach
			}
			name := d.Endpoint
			if d.Type == "s3" {
				name = d.Bucket
			}
			add(d.Type+" "+name, d.Type, name, r.Name, func(ctx context.Context) ([]transport.Credential, error) { return c.Check(ctx, d) })
		}
	}
	if only != "" && !found {
		return nil, domain.Errorf(domain.KindNotFound, "no route is named %q", only)
	}
	return out, nil
}

// Result is the outcome of one partner's check.
type Result struct {
	Partner string   `json:"partner"`
	Type    string   `json:"type"`
	Routes  []string `json:"routes"`
	Healthy bool     `json:"healthy"`
	// Kind and Code classify a failure (domain.Kind's name, e.g.
	// "unauthorized", and the error's code when it has one); Reason says
	// it in words.
	Kind   string `json:"kind,omitempty"`
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Credentials are the certificates ferry holds for the partner;
	// Expiring those of them that expire within ExpiryWarning.
	Credentials []transport.Credential `json:"credentials,omitempty"`
	Expiring    []transport.Credential `json:"expiring,omitempty"`
	Checked     time.Time              `json:"checked"`
	Took        time.Duration          `json:"tookNs"`
}

// Runner runs checks.
type Runner struct {
	// Timeout bounds each check (DefaultTimeout when zero).
	Timeout time.Duration
	// Concurrency bounds the checks run at once (4 when zero).
	Concurrency int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Run checks every target once and returns the results in the targets'
// order. A check that panics is reported as a failed check.
func (r Runner) Run(ctx context.Context, targets []Target) []Result {
	out := make([]Result, len(targets))
	sem := make(chan struct{}, cmp.Or(r.Concurrency, 4))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = r.one(ctx, t)
		}()
	}
	wg.Wait()
	return out
}

func (r Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r Runner) one(ctx context.Context, t Target) (res Result) {
	start := r.now()
	res = Result{Partner: t.Partner, Type: t.Type, Routes: t.Routes, Checked: start.UTC()}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(r.Timeout, DefaultTimeout))
	defer cancel()
	creds, err := func() (creds []transport.Credential, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("the check failed: %v", p)
			}
		}()
		return t.Check(ctx)
	}()
	res.Took = r.now().Sub(start)
	res.Credentials = creds
	res.Expiring = Expiring(creds, start, ExpiryWarning)
	if err == nil {
		res.Healthy = true
		return res
	}
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		err = &domain.Error{Kind: domain.KindUnavailable, Message: fmt.Sprintf("no answer within %s", cmp.Or(r.Timeout, DefaultTimeout)), Err: err}
	}
	res.Kind = string(domain.KindOf(err))
	var de *domain.Error
	if errors.As(err, &de) {
		res.Code = de.Code
	}
	res.Reason = err.Error()
	return res
}

// Expiring returns the credentials of creds that expire within window of
// now (expired ones included), soonest first.
func Expiring(creds []transport.Credential, now time.Time, window time.Duration) []transport.Credential {
	var out []transport.Credential
	for _, c := range creds {
		if c.Expires.Sub(now) <= window {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b transport.Credential) int { return a.Expires.Compare(b.Expires) })
	return out
}

// Summary says in one line how many of results are healthy.
func Summary(results []Result) string {
	bad := 0
	for _, r := range results {
		if !r.Healthy {
			bad++
		}
	}
	var b strings.Builder
	noun := "partners"
	if len(results) == 1 {
		noun = "partner"
	}
	fmt.Fprintf(&b, "%d %s checked: %d healthy", len(results), noun, len(results)-bad)
	if bad > 0 {
		fmt.Fprintf(&b, ", %d unhealthy", bad)
	}
	return b.String()
}
