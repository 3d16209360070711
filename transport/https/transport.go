package https

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// HeaderTransferID is the request header carrying the transfer id, so a
// receiver can recognise a repeated delivery.
const HeaderTransferID = "X-Ferry-Transfer-Id"

// Transport delivers to https endpoints. It keeps no transfer state
// between calls and is safe for concurrent use; it caches, per endpoint,
// the HTTP client and resolved credentials (built on first use) and an
// access token.
type Transport struct {
	endpoints map[string]Endpoint
	secrets   transport.Secrets
	source    transport.Source

	mu    sync.Mutex
	conns map[string]*conn
}

var _ transport.Transport = (*Transport)(nil)

// New returns a transport delivering to endpoints (from ParseEndpoints),
// resolving their secrets with secrets and reading payloads from source.
func New(endpoints map[string]Endpoint, secrets transport.Secrets, source transport.Source) *Transport {
	return &Transport{endpoints: endpoints, secrets: secrets, source: source, conns: map[string]*conn{}}
}

// conn is what requests to one endpoint need once its secrets are
// resolved.
type conn struct {
	name    string
	ep      Endpoint
	client  *http.Client
	headers http.Header
	creds   *credentials
}

// endpoint returns the conn of t's destination, building it on first use.
// Errors: KindInvalid for a destination that is not an https one, names
// no configured endpoint, or whose secrets do not parse; the secrets'
// errors.
func (tr *Transport) endpoint(ctx context.Context, t domain.State) (*conn, error) {
	d := t.Request.Destination
	if d.Type != "https" {
		return nil, domain.Errorf(domain.KindInvalid, "https: transfer %s has a %q destination", t.ID, d.Type)
	}
	tr.mu.Lock()
	c, ok := tr.conns[d.Endpoint]
	tr.mu.Unlock()
	if ok {
		return c, nil
	}
	ep, ok := tr.endpoints[d.Endpoint]
	if !ok {
		return nil, domain.Errorf(domain.KindInvalid, "https: transfer %s names endpoint %q, which is not configured", t.ID, d.Endpoint)
	}
	c, err := tr.build(ctx, d.Endpoint, ep)
	if err != nil {
		return nil, withOp("https: endpoint "+d.Endpoint, err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if prev, ok := tr.conns[d.Endpoint]; ok {
		return prev, nil
	}
	tr.conns[d.Endpoint] = c
	return c, nil
}

// resolve returns the secret ref names, as a string.
func (tr *Transport) resolve(ctx context.Context, field, ref string) (string, error) {
	if tr.secrets == nil {
		return "", domain.Errorf(domain.KindInternal, "%s: no secrets resolver", field)
	}
	v, err := tr.secrets.Resolve(ctx, ref)
	if err != nil {
		return "", withOp(field+" "+ref, err)
	}
	return string(v), nil
}

// build resolves ep's secrets and makes its client.
func (tr *Transport) build(ctx context.Context, name string, ep Endpoint) (*conn, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ep.CABundle != "" {
		pemCAs, err := tr.resolve(ctx, "caBundle", ep.CABundle)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(pemCAs)) {
			return nil, domain.Errorf(domain.KindInvalid, "caBundle %s holds no PEM certificate", ep.CABundle)
		}
		tlsCfg.RootCAs = pool
	}
	if ep.ClientCert != "" {
		cert, err := tr.resolve(ctx, "clientCert", ep.ClientCert)
		if err != nil {
			return nil, err
		}
		key, err := tr.resolve(ctx, "clientKey", ep.ClientKey)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
		if err != nil {
			return nil, domain.Errorf(domain.KindInvalid, "clientCert %s and clientKey %s are not a PEM certificate and its key", ep.ClientCert, ep.ClientKey)
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	rt := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	client := &http.Client{Transport: rt, Timeout: time.Duration(ep.Timeout)}
	headers := http.Header{}
	var secretHeaders []string // dropped on a redirect to another host
	for _, k := range sortedKeys(ep.Headers) {
		v := ep.Headers[k]
		if domain.IsSecretRef(v) {
			var err error
			if v, err = tr.resolve(ctx, "headers."+k, v); err != nil {
				return nil, err
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, domain.Errorf(domain.KindInvalid, "headers.%s: the secret %s holds a control character", k, ep.Headers[k])
			}
			secretHeaders = append(secretHeaders, k)
		}
		headers.Set(k, v)
	}
	creds := &credentials{auth: ep.Auth}
	var err error
	switch a := ep.Auth; a.Type {
	case AuthAPIKey:
		creds.apiKey, err = tr.resolve(ctx, "auth.key", a.Key)
		if err == nil && strings.ContainsAny(creds.apiKey, "\r\n\x00") {
			err = domain.Errorf(domain.KindInvalid, "auth.key: the secret %s holds a control character", a.Key)
		}
	case AuthBasic:
		creds.password, err = tr.resolve(ctx, "auth.password", a.Password)
	case AuthOAuth2:
		creds.secret, err = tr.resolve(ctx, "auth.clientSecret", a.ClientSecret)
	case AuthJWT:
		var pemKey string
		if pemKey, err = tr.resolve(ctx, "auth.privateKey", a.PrivateKey); err == nil {
			var perr error
			if creds.key, creds.method, perr = signingKey([]byte(pemKey)); perr != nil {
				err = domain.Errorf(domain.KindInvalid, "auth.privateKey %s: %v", a.PrivateKey, perr)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if ep.Auth.Type == AuthAPIKey {
		secretHeaders = append(secretHeaders, ep.Auth.Header)
	}
	client.CheckRedirect = checkRedirect(ep.FollowRedirects, secretHeaders)
	return &conn{name: name, ep: ep, client: client, headers: headers, creds: creds}, nil
}

// expectContinueOver is the body length above which a request asks the
// receiver to accept it (Expect: 100-continue) before the body is sent.
const expectContinueOver = 1 << 20

// maxRedirects bounds the redirects a request follows.
const maxRedirects = 10

// checkRedirect is the client's redirect policy: without follow, the
// redirect is the response (a final failure, see classify); with it, up to
// maxRedirects https redirects are followed, and a redirect to another
// host loses the headers holding secrets (net/http already drops
// Authorization and cookies there).
func checkRedirect(follow bool, secretHeaders []string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		switch {
		case !follow:
			return http.ErrUseLastResponse
		case req.URL.Scheme != "https":
			return domain.Errorf(domain.KindInvalid, "redirect to a %s URL refused: only https is followed", req.URL.Scheme)
		case len(via) >= maxRedirects:
			return domain.Errorf(domain.KindInvalid, "stopped after %d redirects", maxRedirects)
		}
		if req.URL.Host != via[0].URL.Host {
			for _, h := range secretHeaders {
				req.Header.Del(h)
			}
		}
		return nil
	}
}

// checkPlan refuses a transfer whose plan the endpoint cannot carry out.
func checkPlan(c *conn, t domain.State) error {
	if c.ep.Mode == ModeRanged && t.Request.SourceChunked() && t.Request.Chunks > 1 {
		return domain.Errorf(domain.KindInvalid, "https: endpoint %s sends ranges, which need chunk lengths known in advance; transfer %s's source chooses them (use mode whole)", c.name, t.ID)
	}
	if t.Request.Chunks < 1 {
		return domain.Errorf(domain.KindInvalid, "https: transfer %s has no chunks", t.ID)
	}
	return nil
}

// Begin checks that t's destination is a configured endpoint able to take
// t, and builds the endpoint's client (resolving its secrets) if it is the
// first use. It sends nothing and returns "". Errors: KindInvalid for an
// unknown endpoint, secrets that do not parse, or a source-chunked
// transfer of several chunks to a ranged endpoint; the secrets' errors.
func (tr *Transport) Begin(ctx context.Context, t domain.State) (string, error) {
	c, err := tr.endpoint(ctx, t)
	if err != nil {
		return "", err
	}
	return "", checkPlan(c, t)
}

// SendChunk sends chunk c of t.
//
// In whole mode every chunk but the last only checks that the source has
// it (opening and closing it; a source-chunked transfer's chunk is read
// through to count its bytes) and sends nothing; the last chunk sends the
// whole file, every chunk read from the source in turn as the request
// streams. Repeating the last chunk (a retry) sends the whole file again.
//
// In ranged mode each chunk is one request carrying
// Content-Range: bytes first-last/size, and repeating a chunk sends it
// again. A transfer of one chunk is one request without Content-Range in
// either mode.
//
// Every request carries X-Ferry-Transfer-Id and Idempotency-Key (the
// transfer id, with "/<index>" in ranged mode) so that a receiver can
// recognise a repeat. The response's Location (else ETag) header is the
// returned Ref.
//
// Errors: the source's (KindNotFound for a missing source), KindConflict
// for a chunk that reads longer or shorter than planned, KindInvalid for
// a chunk not in t's plan, and the response's class (see the package
// comment).
func (tr *Transport) SendChunk(ctx context.Context, t domain.State, ch domain.Chunk) (transport.Sent, error) {
	c, err := tr.endpoint(ctx, t)
	if err != nil {
		return transport.Sent{}, err
	}
	if err := checkPlan(c, t); err != nil {
		return transport.Sent{}, err
	}
	n := t.Request.Chunks
	if ch.Index < 1 || ch.Index > n || ch != t.Request.Chunk(ch.Index) {
		return transport.Sent{}, domain.Errorf(domain.KindInvalid, "https: chunk %+v is not chunk %d of transfer %s's plan", ch, ch.Index, t.ID)
	}
	op := fmt.Sprintf("https: send chunk %d of %d of %s to endpoint %s", ch.Index, n, t.ID, c.name)
	switch {
	case n == 1:
		return tr.send(ctx, c, t, op, 1, 1, "")
	case c.ep.Mode == ModeRanged:
		return tr.send(ctx, c, t, op, ch.Index, ch.Index, fmt.Sprintf("bytes %d-%d/%d", ch.Offset, ch.Offset+ch.Length-1, t.Request.Size))
	case ch.Index < n:
		return tr.check(ctx, t, ch, op)
	default:
		op = fmt.Sprintf("https: send %s (%d chunks) to endpoint %s", t.ID, n, c.name)
		return tr.send(ctx, c, t, op, 1, n, "")
	}
}

// check is whole mode's SendChunk of a chunk other than the last: the last
// sends them all. A planned chunk's length is known, so the source is not
// read (the last chunk's request reads it, and checks every length); a
// source-chunked chunk is read through to learn its length.
func (tr *Transport) check(ctx context.Context, t domain.State, ch domain.Chunk, op string) (transport.Sent, error) {
	if ch.Length >= 0 {
		return transport.Sent{Bytes: ch.Length}, nil
	}
	rc, err := tr.source.OpenChunk(ctx, t, ch)
	if err != nil {
		return transport.Sent{}, withOp(op, sourceErr(ch, err))
	}
	defer func() { _ = rc.Close() }()
	read, err := io.Copy(io.Discard, rc)
	if err != nil {
		return transport.Sent{}, withOp(op, sourceErr(ch, err))
	}
	return transport.Sent{Bytes: read}, nil
}

// send streams chunks first..last of t in one request (with contentRange
// when it is a range), retrying once with a fresh token after a 401 when
// the endpoint's token may have been revoked.
func (tr *Transport) send(ctx context.Context, c *conn, t domain.State, op string, first, last int, contentRange string) (transport.Sent, error) {
	sent, status, err := tr.attempt(ctx, c, t, op, first, last, contentRange)
	if status == http.StatusUnauthorized && c.creds.usesToken() {
		c.creds.dropToken()
		sent, _, err = tr.attempt(ctx, c, t, op, first, last, contentRange)
	}
	return sent, err
}

// attempt makes one request of chunks first..last and returns what was
// sent, the response status (0 without a response) and the classified
// error.
func (tr *Transport) attempt(ctx context.Context, c *conn, t domain.State, op string, first, last int, contentRange string) (transport.Sent, int, error) {
	ep := c.ep
	open := func() (io.ReadCloser, *chunks, int64, error) {
		b, err := openChunks(ctx, tr.source, t, first, last)
		if err != nil {
			return nil, nil, 0, err
		}
		length := int64(-1)
		if !t.Request.SourceChunked() {
			length = 0
			for i := first; i <= last; i++ {
				length += t.Request.Chunk(i).Length
			}
		}
		var body io.ReadCloser = b
		if ep.SOAP != nil {
			body, length = wrapSOAP(*ep.SOAP, b, length)
		}
		return body, b, length, nil
	}
	body, payload, length, err := open()
	if err != nil {
		return transport.Sent{}, 0, withOp(op, err)
	}
	sendBody := body
	if length == 0 {
		_ = body.Close() // an empty file: the source has been checked
		sendBody = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, ep.Method, ep.URL, sendBody)
	if err != nil {
		_ = body.Close()
		return transport.Sent{}, 0, &domain.Error{Kind: domain.KindInvalid, Message: op, Err: err}
	}
	req.ContentLength = length
	var mu sync.Mutex // guards payload, which GetBody replaces
	latest := func() *chunks {
		mu.Lock()
		defer mu.Unlock()
		return payload
	}
	if length != 0 {
		// Lets the client replay the body for a 307/308 redirect or an
		// HTTP/2 retry: the chunks are opened afresh from the source.
		req.GetBody = func() (io.ReadCloser, error) {
			b, p, _, err := open()
			if err == nil {
				mu.Lock()
				payload = p
				mu.Unlock()
			}
			return b, err
		}
	}
	for k, v := range c.headers {
		req.Header[k] = slices.Clone(v)
	}
	req.Header.Set(HeaderTransferID, t.ID)
	key := t.ID
	if contentRange != "" {
		key += fmt.Sprintf("/%d", first)
		req.Header.Set("Content-Range", contentRange)
	}
	req.Header.Set("Idempotency-Key", key)
	if length < 0 || length > expectContinueOver {
		// As curl does: a receiver refusing the request (401, 413…)
		// says so before the body is sent.
		req.Header.Set("Expect", "100-continue")
	}
	if name := t.Request.Filename; name != "" {
		if cd := mime.FormatMediaType("attachment", map[string]string{"filename": transport.SafeFilename(name, t.ID)}); cd != "" {
			req.Header.Set("Content-Disposition", cd)
		}
	}
	if ep.SOAP != nil {
		ct, action := soapContentType(*ep.SOAP)
		req.Header.Set("Content-Type", ct)
		if action != "" {
			req.Header.Set("SOAPAction", action)
		}
	} else if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if err := c.creds.authorize(ctx, c.client, req, int64(ep.MaxErrorBody)); err != nil {
		_ = body.Close()
		return transport.Sent{}, 0, withOp(op, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return transport.Sent{}, 0, classifyErr(op, err, latest().sourceErrOf())
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		_ = resp.Body.Close()
	}()
	if err := classify(op, resp, int64(ep.MaxErrorBody), time.Now()); err != nil {
		return transport.Sent{}, resp.StatusCode, err
	}
	if err := latest().sourceErrOf(); err != nil {
		// The peer answered before reading all of the body.
		return transport.Sent{}, resp.StatusCode, withOp(op, err)
	}
	sent := transport.Sent{Ref: responseRef(resp), Bytes: t.Request.Chunk(last).Length}
	if t.Request.SourceChunked() {
		sent.Bytes = latest().lastRead()
	}
	return sent, resp.StatusCode, nil
}

// responseRef is what the receiver calls the delivery: its Location
// header, else its ETag.
func responseRef(resp *http.Response) string {
	if loc := resp.Header.Get("Location"); loc != "" {
		return sanitize(loc, 1024)
	}
	return sanitize(resp.Header.Get("ETag"), 256)
}

// location is u without its query and fragment, which may hold a key.
func location(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = "", false, "", ""
	return p.String()
}

// Complete sends nothing: the last SendChunk delivered the file. It
// returns Location the endpoint's URL (without its query, which may hold
// a key) and, for a transfer of one chunk,
// Ref the receiver's reference from that chunk's response (t.Ref); the
// state keeps no later chunk's reference, so a transfer of several chunks
// has Ref "" (its last ChunkSent event records the reference). It is
// deterministic, so calling it again gives the same result. Errors:
// KindInvalid for a transfer whose chunks are not all recorded or whose
// destination is not a configured endpoint.
func (tr *Transport) Complete(_ context.Context, t domain.State) (transport.Delivery, error) {
	d := t.Request.Destination
	ep, ok := tr.endpoints[d.Endpoint]
	if d.Type != "https" || !ok {
		return transport.Delivery{}, domain.Errorf(domain.KindInvalid, "https: transfer %s's destination is not a configured https endpoint", t.ID)
	}
	if t.ChunksSent < t.Request.Chunks {
		return transport.Delivery{}, domain.Errorf(domain.KindInvalid, "https: complete %s with %d of %d chunks sent", t.ID, t.ChunksSent, t.Request.Chunks)
	}
	del := transport.Delivery{Location: location(ep.URL)}
	if t.Request.Chunks == 1 {
		del.Ref = t.Ref
	}
	return del, nil
}
