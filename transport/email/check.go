package email

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

var _ transport.Checker = (*Transport)(nil)

// Check connects to d's relay as a delivery would (TLS verified, the
// password tried once) and quits before any MAIL FROM: nothing is sent.
// It returns the certificates of the endpoint's CA bundle, and fails when
// one has expired.
func (tr *Transport) Check(ctx context.Context, d domain.Destination) ([]transport.Credential, error) {
	e, ok := tr.endpoints[d.Endpoint]
	if d.Type != "email" || !ok {
		return nil, domain.Errorf(domain.KindInvalid, "email: endpoint %q is not configured", d.Endpoint)
	}
	var creds []transport.Credential
	if e.CABundle != "" {
		pemData, err := tr.secrets.Resolve(ctx, e.CABundle)
		if err != nil {
			return nil, err
		}
		if creds, err = transport.Certificates("caBundle "+e.CABundle, pemData); err != nil {
			return nil, err
		}
		if err := transport.Expired(creds, time.Now()); err != nil {
			return creds, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := tr.dial(ctx, e)
	if err != nil {
		return creds, err
	}
	defer c.Close()
	return creds, classifyNil(c.Quit())
}
