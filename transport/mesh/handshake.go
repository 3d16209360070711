package mesh

import (
	"context"
	"log/slog"
	"time"
)

// HandshakeInterval is how often EnsureHandshake handshakes per mailbox:
// MESH asks clients to handshake about once a day.
const HandshakeInterval = 24 * time.Hour

// HandshakeRecord is a record of handshakes shared by every process that
// sends or polls for a mailbox (in AWS, every concurrent Lambda instance),
// so that the mailbox handshakes once a day rather than once per process.
// store.Store implements it with one conditional DynamoDB write.
type HandshakeRecord interface {
	// ClaimHandshake claims mailbox's handshake at now unless one was
	// claimed less than every before now. It returns claimed true when
	// the caller must handshake, and otherwise the time of the handshake
	// already claimed.
	ClaimHandshake(ctx context.Context, mailbox string, now time.Time, every time.Duration) (last time.Time, claimed bool, err error)
	// ReleaseHandshake gives back a claim made at claimedAt whose
	// handshake failed, so that the next caller tries again. It leaves a
	// later claim alone.
	ReleaseHandshake(ctx context.Context, mailbox string, claimedAt time.Time) error
}

// EnsureHandshake handshakes (see Handshake) unless this mailbox has
// handshaken within HandshakeInterval: as known to this client, which
// Outbound and meshpoll share within a process, or, when
// ClientConfig.Handshakes is set, to any process sharing that record. Concurrent
// calls on one client handshake at most once. When the shared record
// cannot be read or written, EnsureHandshake logs that and handshakes
// anyway rather than hold up sending or polling. A failed handshake is
// not remembered, so the next call tries again. Errors are Handshake's.
func (c *Client) EnsureHandshake(ctx context.Context) error {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	now := c.cfg.Now()
	if !c.lastHandshake.IsZero() && now.Sub(c.lastHandshake) < HandshakeInterval {
		return nil
	}
	rec := c.cfg.Handshakes
	claimed := false
	if rec != nil {
		last, ok, err := rec.ClaimHandshake(ctx, c.mailbox, now, HandshakeInterval)
		switch {
		case err != nil:
			c.log().WarnContext(ctx, "mesh: shared handshake record unavailable; handshaking anyway", "mailbox", c.mailbox, "error", err)
		case !ok:
			c.lastHandshake = last // another process handshook today
			return nil
		default:
			claimed = true
		}
	}
	if err := c.Handshake(ctx); err != nil {
		if claimed {
			if rerr := rec.ReleaseHandshake(context.WithoutCancel(ctx), c.mailbox, now); rerr != nil {
				c.log().WarnContext(ctx, "mesh: could not release the handshake claim after a failed handshake", "mailbox", c.mailbox, "error", rerr)
			}
		}
		return err
	}
	c.lastHandshake = now
	return nil
}

func (c *Client) log() *slog.Logger {
	if c.cfg.Log != nil {
		return c.cfg.Log
	}
	return slog.Default()
}
