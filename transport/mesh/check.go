package mesh

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/transport"
)

// Check checks the client's mailbox without sending anything: it parses
// the certificates the client holds (its client certificate and the CA it
// trusts: the credentials it returns, with their expiry), fails on an
// expired one, then handshakes once (POST /{mailbox}), which verifies the
// server's certificate, presents the client certificate and authenticates
// the mailbox. A refused password is KindUnauthorized.
func (c *Client) Check(ctx context.Context) ([]transport.Credential, error) {
	var creds []transport.Credential
	for _, p := range []struct {
		name string
		pem  []byte
	}{{"mesh client certificate of " + c.mailbox, c.cfg.ClientCertPEM}, {"mesh CA", c.cfg.CACertPEM}} {
		if len(p.pem) == 0 {
			continue
		}
		certs, err := transport.Certificates(p.name, p.pem)
		if err != nil {
			return creds, err
		}
		creds = append(creds, certs...)
	}
	if err := transport.Expired(creds, time.Now()); err != nil {
		return creds, err
	}
	return creds, c.Handshake(ctx)
}
