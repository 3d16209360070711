package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/bus"
	"github.com/ferryhq/ferry/internal/metrics"
	"github.com/ferryhq/ferry/store"
)

// The detail types the health check publishes.
const (
	DetailUnhealthy = "Partner Unhealthy"
	DetailHealthy   = "Partner Healthy"
	DetailExpiring  = "Credential Expiring"
)

// NoticeDays are the days before a credential expires at which the
// scheduled check publishes Credential Expiring, once each.
var NoticeDays = []int{30, 14, 7, 1}

// AuthBackoff is how many refused logins in a row make the scheduled check
// back off a partner, and the first pause; each further refusal doubles
// it, up to a day. A MESH mailbox or an SFTP account that locks after a few
// failed logins is then never locked by ferry's checks.
const (
	AuthBackoffAfter = 3
	AuthBackoffFirst = time.Hour
	AuthBackoffMax   = 24 * time.Hour
)

// Store is what the scheduled check keeps its state in (store.Store).
type Store interface {
	PartnerHealth(ctx context.Context, partner string) (store.PartnerHealth, bool, error)
	PutPartnerHealth(ctx context.Context, h store.PartnerHealth, prevChecked time.Time) error
	ClaimNotice(ctx context.Context, partner, key string, now time.Time) (bool, error)
	MarkNotice(ctx context.Context, partner, key string) error
}

// Handler is the scheduled health Lambda: each invocation checks every
// partner once (Runner), records each one's state, and publishes Partner
// Unhealthy or Partner Healthy when the state changes and Credential
// Expiring when a credential comes within 30, 14, 7 or 1 days of its
// expiry. A partner whose credentials were refused AuthBackoffAfter times
// in a row is checked less often (AuthBackoffFirst, doubling). Every event
// is recorded before it is published and marked after, so an event whose
// publishing fails is published by the next run: none is lost, and a crash
// between publishing and marking sends one twice, as EventBridge itself
// may.
type Handler struct {
	Targets []Target
	Runner  Runner
	Store   Store
	// Bus is where the events go.
	Bus bus.Bus
	// MetricsNamespace, when set, receives UnhealthyPartners (the
	// number of partners unhealthy after the run) each run, which the
	// template's alarm watches.
	MetricsNamespace string
	Now              func() time.Time
	Log              *slog.Logger
}

// PartnerDetail is the detail of Partner Unhealthy and Partner Healthy.
type PartnerDetail struct {
	Partner string    `json:"partner"`
	Type    string    `json:"type"`
	Routes  []string  `json:"routes"`
	Healthy bool      `json:"healthy"`
	Kind    string    `json:"kind,omitempty"`
	Code    string    `json:"code,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Since   time.Time `json:"since"`
}

// ExpiringDetail is the detail of Credential Expiring.
type ExpiringDetail struct {
	Partner    string    `json:"partner"`
	Routes     []string  `json:"routes"`
	Credential string    `json:"credential"`
	Subject    string    `json:"subject"`
	Expires    time.Time `json:"expires"`
	DaysLeft   int       `json:"daysLeft"`
	Notice     int       `json:"notice"` // the notice: 30, 14, 7 or 1 days
}

// Handle runs one scheduled check. Its error joins what could not be
// recorded or published, so the invocation shows as failed; every partner
// is checked regardless.
func (h *Handler) Handle(ctx context.Context) error {
	now := h.now()
	var todo []Target
	var errs []error
	bad := 0 // partners unhealthy after the run
	prev := make(map[string]store.PartnerHealth, len(h.Targets))
	known := map[string]bool{}
	for _, t := range h.Targets {
		p, ok, err := h.Store.PartnerHealth(ctx, t.Partner)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		prev[t.Partner], known[t.Partner] = p, ok
		if ok && p.AuthFailures >= AuthBackoffAfter && now.Before(p.Checked.Add(backoff(p.AuthFailures))) {
			h.Log.WarnContext(ctx, "partner refused its credentials; backing off", "partner", t.Partner,
				"refusals", p.AuthFailures, "next", p.Checked.Add(backoff(p.AuthFailures)))
			if !p.Announced {
				errs = append(errs, h.announce(ctx, t, p))
			}
			bad++ // its credentials were refused: still unhealthy
			continue
		}
		todo = append(todo, t)
	}
	runner := h.Runner
	if runner.Now == nil {
		runner.Now = h.now
	}
	results := runner.Run(ctx, todo)
	for i, r := range results {
		errs = append(errs, h.record(ctx, todo[i], r, prev[r.Partner], known[r.Partner], now))
		errs = append(errs, h.expiring(ctx, todo[i], r, now))
		if !r.Healthy {
			bad++
		}
	}
	if h.MetricsNamespace != "" {
		metrics.Count(ctx, h.Log, h.MetricsNamespace, "UnhealthyPartners", bad, "partners", len(h.Targets))
	}
	return errors.Join(errs...)
}

// backoff is the pause after n refused logins in a row (n ≥
// AuthBackoffAfter).
func backoff(n int) time.Duration {
	d := AuthBackoffFirst
	for i := AuthBackoffAfter; i < n && d < AuthBackoffMax; i++ {
		d *= 2
	}
	return min(d, AuthBackoffMax)
}

// record stores r as t's state and announces a change. A partner seen for
// the first time is announced only when unhealthy.
func (h *Handler) record(ctx context.Context, t Target, r Result, p store.PartnerHealth, known bool, now time.Time) error {
	next := store.PartnerHealth{Partner: t.Partner, Healthy: r.Healthy, Kind: r.Kind, Code: r.Code, Reason: r.Reason,
		Since: now, Checked: now, Announced: true}
	if r.Kind == string(domain.KindUnauthorized) {
		next.AuthFailures = p.AuthFailures + 1
	}
	changed := !known && !r.Healthy || known && p.Healthy != r.Healthy
	switch {
	case changed:
		next.Announced = false
	case known:
		next.Since, next.Announced = p.Since, p.Announced
	}
	if err := h.Store.PutPartnerHealth(ctx, next, p.Checked); errors.Is(err, store.ErrConflict) {
		return nil // another run recorded this partner meanwhile and announces its own finding
	} else if err != nil {
		return err
	}
	if next.Announced {
		return nil
	}
	return h.announce(ctx, t, next)
}

// announce publishes p's state and marks it announced.
func (h *Handler) announce(ctx context.Context, t Target, p store.PartnerHealth) error {
	typ := DetailUnhealthy
	if p.Healthy {
		typ = DetailHealthy
	}
	d := PartnerDetail{Partner: p.Partner, Type: t.Type, Routes: t.Routes, Healthy: p.Healthy, Kind: p.Kind, Code: p.Code, Reason: p.Reason, Since: p.Since}
	if err := h.publish(ctx, typ, "partner/"+p.Partner, d); err != nil {
		return err
	}
	h.Log.InfoContext(ctx, typ, "partner", p.Partner, "reason", p.Reason)
	p.Announced = true
	if err := h.Store.PutPartnerHealth(ctx, p, p.Checked); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// expiring publishes the Credential Expiring notices r's credentials are
// due, the latest threshold only: a certificate first seen 10 days before
// its expiry gets the 14-day notice, then the 7-day and 1-day ones.
func (h *Handler) expiring(ctx context.Context, t Target, r Result, now time.Time) error {
	var errs []error
	for _, c := range r.Expiring {
		left := c.Expires.Sub(now)
		notice := Notice(left)
		if notice == 0 {
			continue
		}
		key := fmt.Sprintf("expiring#%s#%s#%d", c.Name, c.Expires.UTC().Format(time.RFC3339), notice)
		claimed, err := h.Store.ClaimNotice(ctx, t.Partner, key, now)
		if err != nil || !claimed {
			errs = append(errs, err)
			continue
		}
		d := ExpiringDetail{Partner: t.Partner, Routes: t.Routes, Credential: c.Name, Subject: c.Subject, Expires: c.Expires,
			DaysLeft: int(left.Hours() / 24), Notice: notice}
		if err := h.publish(ctx, DetailExpiring, "partner/"+t.Partner, d); err != nil {
			errs = append(errs, err)
			continue
		}
		h.Log.WarnContext(ctx, DetailExpiring, "partner", t.Partner, "credential", c.Name, "expires", c.Expires, "notice", notice)
		errs = append(errs, h.Store.MarkNotice(ctx, t.Partner, key))
	}
	return errors.Join(errs...)
}

// Notice returns which of NoticeDays a credential that expires in left is
// due: the smallest threshold at or above left (1 for an expired one), or
// 0 when left is more than the largest.
func Notice(left time.Duration) int {
	due := 0
	for _, d := range NoticeDays {
		if left <= time.Duration(d)*24*time.Hour {
			if due == 0 || d < due {
				due = d
			}
		}
	}
	return due
}

func (h *Handler) publish(ctx context.Context, detailType, resource string, detail any) error {
	return h.Bus.Put(ctx, detailType, resource, detail, h.now())
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}
