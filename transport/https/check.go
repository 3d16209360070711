package https

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

var _ transport.Checker = (*Transport)(nil)

// Check checks d's endpoint without sending a file. It parses the
// certificates the endpoint holds (its CA bundle and client certificate:
// the credentials it returns) and fails on an expired one; builds the
// endpoint's client afresh, so its secrets are read again; then makes the
// endpoint's probe request, or, without one, opens a TLS connection to
// the endpoint's host (verifying its certificate, presenting the client
// certificate) and fetches an access token when auth uses one.
func (tr *Transport) Check(ctx context.Context, d domain.Destination) ([]transport.Credential, error) {
	ep, ok := tr.endpoints[d.Endpoint]
	if d.Type != "https" || !ok {
		return nil, domain.Errorf(domain.KindInvalid, "https: endpoint %q is not configured", d.Endpoint)
	}
	op := "https: endpoint " + d.Endpoint
	var creds []transport.Credential
	for _, ref := range []struct{ field, ref string }{{"caBundle", ep.CABundle}, {"clientCert", ep.ClientCert}} {
		if ref.ref == "" {
			continue
		}
		pemData, err := tr.resolve(ctx, ref.field, ref.ref)
		if err != nil {
			return creds, withOp(op, err)
		}
		certs, err := transport.Certificates(ref.field+" "+ref.ref, []byte(pemData))
		if err != nil {
			return creds, withOp(op, err)
		}
		creds = append(creds, certs...)
	}
	if err := transport.Expired(creds, time.Now()); err != nil {
		return creds, withOp(op, err)
	}
	c, err := tr.build(ctx, d.Endpoint, ep)
	if err != nil {
		return creds, withOp(op, err)
	}
	defer c.client.CloseIdleConnections()
	maxBody := int64(ep.MaxErrorBody)
	if p := ep.Probe; p != nil {
		return creds, probe(ctx, c, *p, maxBody)
	}
	if err := handshake(ctx, c, ep.URL); err != nil {
		return creds, err
	}
	if c.creds.usesToken() {
		if _, err := c.creds.accessToken(ctx, c.client, maxBody); err != nil {
			return creds, withOp(op, err)
		}
	}
	return creds, nil
}

// probe makes p with c's headers and credentials.
func probe(ctx context.Context, c *conn, p Probe, maxBody int64) error {
	op := "https: probe " + p.Method + " " + location(p.URL)
	req, err := http.NewRequestWithContext(ctx, p.Method, p.URL, http.NoBody)
	if err != nil {
		return &domain.Error{Kind: domain.KindInvalid, Message: op, Err: err}
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	if err := c.creds.authorize(ctx, c.client, req, maxBody); err != nil {
		return withOp(op, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return classifyErr(op, err, nil)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil // the endpoint answered; a redirect is not a refusal
	}
	return classify(op, resp, maxBody, time.Now())
}

// handshake opens a TLS connection to rawURL's host with c's TLS settings
// and closes it.
func handshake(ctx context.Context, c *conn, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return &domain.Error{Kind: domain.KindInvalid, Message: "https: url", Err: err}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	cfg := c.client.Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.ServerName = u.Hostname()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return classifyErr("https: TLS connection to "+host, err, nil)
	}
	return conn.Close()
}
