// Package sftp delivers transfers to SFTP servers (github.com/pkg/sftp
// over golang.org/x/crypto/ssh).
//
// # Settings
//
// The package owns its destination settings: the routing file's sftp
// section is an object of endpoint name → Endpoint (host, port, user,
// directory, credentials as secret references, pinned host keys, mkdir,
// concurrency, timeout), which ParseEndpoints decodes, defaults and
// validates. A route delivers to one with the destination
// {"type": "sftp", "endpoint": NAME}.
//
// # Delivery
//
// Begin checks the connection and the directory (creating it with Mkdir)
// and creates an empty temporary file there, TempName
// (".ferry-<transfer id>.part"). Every chunk, in any order, is written at
// its own offset into that file with pkg/sftp's concurrent writes:
// re-sending a chunk rewrites the same bytes, so a transfer that was
// interrupted resumes at its first unrecorded chunk, and nothing is
// buffered beyond pkg/sftp's outstanding requests (Concurrency of 32 KiB
// packets). A connection is kept per endpoint and dialled again after an
// error. Complete
// checks the temporary file holds exactly the request's size and renames
// it to FileName in one step (posix-rename@openssh.com when the server
// offers it, which replaces an existing file atomically; plain rename
// otherwise, removing an existing file of that name first). Completing
// again after success finds the final file and returns the same Delivery.
// Abort removes the temporary file of a transfer that failed for good.
//
// # Errors
//
// Every error is a *domain.Error (see classify): network failures, a
// server that went away, a lost connection or an expired context are
// domain.KindUnavailable, worth retrying; a host key that knownHosts does
// not pin is domain.KindInvalid and names the SHA256 fingerprint the
// server presented; refused credentials are domain.KindUnauthorized; a
// missing directory or temporary file is domain.KindNotFound. Those are
// final. Secrets are never logged nor put in errors.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Transport delivers transfers whose destination is {"type": "sftp",
// "endpoint": NAME} to the endpoint of that name. It keeps one SSH
// connection and SFTP session per endpoint, opened on first use and dropped
// after a connection error; it holds no other state, so any process may
// continue a transfer another one started. It is safe for concurrent use.
type Transport struct {
	endpoints map[string]Endpoint
	secrets   transport.Secrets
	source    transport.Source

	mu    sync.Mutex
	conns map[string]*conn
}

var _ transport.Transport = (*Transport)(nil)

// conn is one endpoint's connection.
type conn struct {
	ssh         *ssh.Client
	sftp        *sftp.Client
	posixRename bool
}

func (c *conn) close() {
	_ = c.sftp.Close()
	_ = c.ssh.Close()
}

// New returns a Transport delivering to endpoints (as ParseEndpoints
// returns them: defaults applied, validated), resolving their credentials
// with secrets and reading chunks from source.
func New(endpoints map[string]Endpoint, secrets transport.Secrets, source transport.Source) *Transport {
	return &Transport{endpoints: endpoints, secrets: secrets, source: source, conns: map[string]*conn{}}
}

// Close closes every connection the transport holds. The transport remains
// usable: a later call connects again.
func (tr *Transport) Close() error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for name, c := range tr.conns {
		c.close()
		delete(tr.conns, name)
	}
	return nil
}

// FileName is the name t is delivered under in its endpoint's directory:
// its route's filename template expanded with safe values
// (transport.DeliveredName), which may name folders below the directory.
// A file name shaped like a temporary file (".ferry-….part") gets a
// leading "_", so that no delivery replaces another transfer's temporary
// file.
func FileName(t domain.State) string {
	name := transport.DeliveredName(t)
	dir, base := path.Split(name)
	if strings.HasPrefix(base, tempPrefix) && strings.HasSuffix(base, tempSuffix) {
		base = "_" + base
	}
	return dir + base
}

// A temporary file's name is tempPrefix + transfer id + tempSuffix.
const (
	tempPrefix = ".ferry-"
	tempSuffix = ".part"
)

// TempName is the name of the temporary file t's chunks are written to
// before Complete renames it to FileName.
func TempName(t domain.State) string {
	return tempPrefix + transport.SafeFilename(t.ID, "transfer") + tempSuffix
}

// Begin connects to t's endpoint, makes sure its directory exists
// (creating it with its parents when the endpoint says mkdir) and creates
// t's temporary file empty. It returns no reference. Begin runs before any
// chunk is sent (again after a replay), so emptying the file loses
// nothing. Errors: KindInvalid for an unknown endpoint or a host key
// mismatch, KindUnauthorized for refused credentials, KindNotFound for a
// missing directory, KindUnavailable when the server cannot be reached.
func (tr *Transport) Begin(ctx context.Context, t domain.State) (string, error) {
	err := tr.do(ctx, t, func(c *conn, e Endpoint) error {
		if err := directory(c, e); err != nil {
			return err
		}
		temp := path.Join(e.Directory, TempName(t))
		f, err := c.sftp.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return classify(fmt.Sprintf("sftp: create %s", temp), err)
		}
		if err := f.Close(); err != nil {
			return classify(fmt.Sprintf("sftp: close %s", temp), err)
		}
		return nil
	})
	return "", err
}

// directory makes sure e's directory exists, creating it when e says mkdir.
func directory(c *conn, e Endpoint) error {
	if e.Mkdir {
		if err := c.sftp.MkdirAll(e.Directory); err != nil {
			return classify(fmt.Sprintf("sftp: create directory %s", e.Directory), err)
		}
		return nil
	}
	fi, err := c.sftp.Stat(e.Directory)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return domain.Errorf(domain.KindNotFound, "sftp: directory %s does not exist on %s (set mkdir to create it)", e.Directory, e.address())
	case err != nil:
		return classify(fmt.Sprintf("sftp: stat directory %s", e.Directory), err)
	case !fi.IsDir():
		return domain.Errorf(domain.KindInvalid, "sftp: %s on %s is not a directory", e.Directory, e.address())
	}
	return nil
}

// SendChunk writes chunk c, read from the source, at its offset in t's
// temporary file, in any order. The file must exist (Begin created it),
// so that a file removed under way (Abort, an operator) is never completed
// with a hole. Sending a chunk again rewrites the same bytes. When c is the last
// chunk, the file is cut to the transfer's size, in case an earlier
// attempt left it longer. Errors: the source's (KindNotFound for a missing
// source…), KindNotFound when the temporary file is gone, KindUnavailable
// for a connection lost mid-write.
func (tr *Transport) SendChunk(ctx context.Context, t domain.State, c domain.Chunk) (transport.Sent, error) {
	offset, length := c.Offset, c.Length
	if t.Request.SourceChunked() {
		// The source chose the chunks: only the next one can be sent,
		// and it starts where the recorded ones end.
		if c.Index != t.ChunksSent+1 {
			return transport.Sent{}, domain.Errorf(domain.KindInvalid, "sftp: transfer %s is source-chunked: chunk %d cannot follow %d recorded", t.ID, c.Index, t.ChunksSent)
		}
		offset, length = t.BytesSent, -1
	}
	var n int64
	err := tr.do(ctx, t, func(cn *conn, e Endpoint) error {
		var err error
		n, err = tr.write(ctx, cn, e, t, c, offset, length)
		return err
	})
	if err != nil {
		return transport.Sent{}, err
	}
	return transport.Sent{Bytes: n}, nil
}

func (tr *Transport) write(ctx context.Context, cn *conn, e Endpoint, t domain.State, c domain.Chunk, offset, length int64) (int64, error) {
	rc, err := tr.source.OpenChunk(ctx, t, c)
	if err != nil {
		return 0, classify(fmt.Sprintf("sftp: open chunk %d of transfer %s", c.Index, t.ID), err)
	}
	defer func() { _ = rc.Close() }()
	temp := path.Join(e.Directory, TempName(t))
	f, err := cn.sftp.OpenFile(temp, os.O_WRONLY)
	if errors.Is(err, os.ErrNotExist) {
		return 0, &domain.Error{Kind: domain.KindNotFound, Message: fmt.Sprintf("sftp: temporary file %s is gone; the transfer must start again", temp), Err: err}
	}
	if err != nil {
		return 0, classify(fmt.Sprintf("sftp: open %s", temp), err)
	}
	n, err := writeAt(f, rc, offset, length)
	if err == nil && c.Index == t.Request.Chunks {
		err = cutAt(f, offset+n)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = classify(fmt.Sprintf("sftp: close %s", temp), cerr)
	}
	if err != nil {
		return 0, err
	}
	if length >= 0 && n != length {
		return 0, domain.Errorf(domain.KindInvalid, "sftp: the source gave %d bytes of chunk %d of transfer %s, want %d", n, c.Index, t.ID, length)
	}
	return n, nil
}

// writeAt copies src to f at offset, length bytes (-1: to src's end), with
// pkg/sftp's concurrent writes (ReadFrom sizes them from the
// io.LimitedReader).
func writeAt(f *sftp.File, src io.Reader, offset, length int64) (int64, error) {
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, classify("sftp: seek", err)
	}
	sr := &sourceReader{r: src}
	var r io.Reader = sr
	if length >= 0 {
		r = &io.LimitedReader{R: sr, N: length}
	}
	n, err := f.ReadFrom(r)
	if sr.err != nil {
		return n, classify("sftp: read from the source", sr.err)
	}
	if err != nil {
		return n, classify(fmt.Sprintf("sftp: write %s at %d", f.Name(), offset), err)
	}
	return n, nil
}

// cutAt truncates f to size if it is longer.
func cutAt(f *sftp.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return classify(fmt.Sprintf("sftp: stat %s", f.Name()), err)
	}
	if fi.Size() > size {
		if err := f.Truncate(size); err != nil {
			return classify(fmt.Sprintf("sftp: truncate %s", f.Name()), err)
		}
	}
	return nil
}

// Complete checks t's temporary file holds the transfer's size and renames
// it to FileName, replacing a file of that name. When the temporary file
// is gone but the final one has the right size, Complete already
// succeeded, and it returns the same Delivery. The Delivery's Location is
// sftp://user@host:port/directory/name; its Ref is "". Errors:
// KindInvalid when the temporary file has the wrong size, KindNotFound
// when neither file is there, KindUnavailable for a lost connection.
func (tr *Transport) Complete(ctx context.Context, t domain.State) (transport.Delivery, error) {
	var d transport.Delivery
	want := t.Request.Size
	if t.Request.SourceChunked() {
		want = t.BytesSent
	}
	err := tr.do(ctx, t, func(c *conn, e Endpoint) error {
		temp, final := path.Join(e.Directory, TempName(t)), path.Join(e.Directory, FileName(t))
		d = transport.Delivery{Location: location(e, final)}
		fi, err := c.sftp.Stat(temp)
		switch {
		case errors.Is(err, os.ErrNotExist):
			fi, ferr := c.sftp.Stat(final)
			switch {
			case errors.Is(ferr, os.ErrNotExist):
				return domain.Errorf(domain.KindNotFound, "sftp: neither %s nor %s exists; the transfer must start again", temp, final)
			case ferr != nil:
				return classify(fmt.Sprintf("sftp: stat %s", final), ferr)
			case !fi.Mode().IsRegular() || fi.Size() != want:
				return domain.Errorf(domain.KindConflict, "sftp: %s is gone and %s has %d bytes, want %d", temp, final, fi.Size(), want)
			}
			return nil // completed before
		case err != nil:
			return classify(fmt.Sprintf("sftp: stat %s", temp), err)
		case fi.Size() != want:
			return domain.Errorf(domain.KindInvalid, "sftp: %s has %d bytes, want %d", temp, fi.Size(), want)
		}
		if dir := path.Dir(final); dir != e.Directory {
			// The template files by folder ({sender}/{date}/…): make them.
			if err := c.sftp.MkdirAll(dir); err != nil {
				return classify(fmt.Sprintf("sftp: create directory %s", dir), err)
			}
		}
		return rename(c, temp, final)
	})
	if err != nil {
		return transport.Delivery{}, err
	}
	return d, nil
}

// rename moves temp to final in one step, replacing final.
func rename(c *conn, temp, final string) error {
	if c.posixRename {
		if err := c.sftp.PosixRename(temp, final); err != nil {
			return classify(fmt.Sprintf("sftp: rename %s to %s", temp, final), err)
		}
		return nil
	}
	err := c.sftp.Rename(temp, final)
	if err == nil {
		return nil
	}
	// SFTP v3's rename refuses an existing target: remove it and try
	// once more.
	if _, serr := c.sftp.Stat(final); serr != nil {
		return classify(fmt.Sprintf("sftp: rename %s to %s", temp, final), err)
	}
	if err := c.sftp.Remove(final); err != nil {
		return classify(fmt.Sprintf("sftp: remove %s to replace it", final), err)
	}
	if err := c.sftp.Rename(temp, final); err != nil {
		return classify(fmt.Sprintf("sftp: rename %s to %s", temp, final), err)
	}
	return nil
}

// Abort removes t's temporary file, for the advance handler to call when
// the transfer failed for good; it is not an error that the file is
// already gone. Errors are classified as Complete's.
func (tr *Transport) Abort(ctx context.Context, t domain.State) error {
	return tr.do(ctx, t, func(c *conn, e Endpoint) error {
		temp := path.Join(e.Directory, TempName(t))
		if err := c.sftp.Remove(temp); err != nil && !errors.Is(err, os.ErrNotExist) {
			return classify(fmt.Sprintf("sftp: remove %s", temp), err)
		}
		return nil
	})
}

// location names a delivered file: sftp://user@host:port/path.
func location(e Endpoint, p string) string {
	u := url.URL{Scheme: "sftp", User: url.User(e.User), Host: e.address(), Path: p}
	return u.String()
}

// do runs fn with t's endpoint and its connection. A connection error drops
// the connection; when the connection came from the cache (it may have
// died while the process was idle) fn runs once more on a new one. A
// cancelled ctx closes the connection, so that no call outlives it.
func (tr *Transport) do(ctx context.Context, t domain.State, fn func(c *conn, e Endpoint) error) error {
	name := t.Request.Destination.Endpoint
	e, ok := tr.endpoints[name]
	if !ok {
		return domain.Errorf(domain.KindInvalid, "sftp: transfer %s: the sftp settings have no endpoint %q", t.ID, name)
	}
	for attempt := 1; ; attempt++ {
		c, cached, err := tr.client(ctx, name, e)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { tr.drop(name, c) })
		err = fn(c, e)
		stop()
		if err == nil {
			return nil
		}
		if keepsConnection(err) {
			return err
		}
		tr.drop(name, c)
		if ctx.Err() != nil {
			return stopped(ctx, err)
		}
		if cached && attempt == 1 && connectionLost(err) {
			continue
		}
		return err
	}
}

// stopped is err, from a call whose ctx ended (closing its connection),
// saying so: KindUnavailable.
func stopped(ctx context.Context, err error) *domain.Error {
	e := &domain.Error{Kind: domain.KindUnavailable, Message: "sftp", Err: err}
	var de *domain.Error
	if errors.As(err, &de) {
		e.Message, e.Err = de.Message, de.Err
	}
	e.Message += fmt.Sprintf(" (stopped: %v)", context.Cause(ctx))
	return e
}

// keepsConnection reports whether err leaves the connection usable: the
// server answered with a status. After any other error (the source's
// included) the connection is dropped: dialling again costs little.
func keepsConnection(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) || errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission)
}

// connectionLost reports whether err may mean the connection failed, so
// that a call on a cached connection is worth one more try on a new one
// (a retryable source failure is tried again too, which does no harm).
func connectionLost(err error) bool {
	return domain.KindOf(err) == domain.KindUnavailable
}

// client returns name's connection, and whether it came from the cache.
func (tr *Transport) client(ctx context.Context, name string, e Endpoint) (*conn, bool, error) {
	tr.mu.Lock()
	c, ok := tr.conns[name]
	tr.mu.Unlock()
	if ok {
		return c, true, nil
	}
	c, err := tr.dial(ctx, e)
	if err != nil {
		return nil, false, err
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if old, ok := tr.conns[name]; ok { // another call connected meanwhile
		c.close()
		return old, true, nil
	}
	tr.conns[name] = c
	return c, false, nil
}

// drop closes c and forgets it, unless it was replaced already.
func (tr *Transport) drop(name string, c *conn) {
	tr.mu.Lock()
	if tr.conns[name] == c {
		delete(tr.conns, name)
	}
	tr.mu.Unlock()
	c.close()
}

// dial connects to e, checking its host key against e's pins, and opens an
// SFTP session. The dial, the SSH handshake and the SFTP init are bounded
// by e's timeout and ctx.
func (tr *Transport) dial(ctx context.Context, e Endpoint) (*conn, error) {
	addr := e.address()
	where := fmt.Sprintf("sftp: connect to %s@%s", e.User, addr)
	p, err := parseKnownHosts(e.KnownHosts)
	if err != nil {
		return nil, &domain.Error{Kind: domain.KindInvalid, Message: where, Err: err}
	}
	auth, err := tr.auth(ctx, e)
	if err != nil {
		return nil, classify(where, err)
	}
	timeout := time.Duration(e.Timeout)
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cfg := &ssh.ClientConfig{
		User:              e.User,
		Auth:              auth,
		HostKeyCallback:   p.check,
		HostKeyAlgorithms: p.algorithms(),
		Timeout:           timeout,
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, classify(where, err)
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if err != nil {
		_ = nc.Close()
		return nil, classify(where, ctxErr(ctx, err))
	}
	client := ssh.NewClient(sc, chans, reqs)
	s, err := sftp.NewClient(client,
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(max(e.Concurrency, 1)),
	)
	if err != nil {
		_ = client.Close()
		return nil, classify(where+": start sftp", ctxErr(ctx, err))
	}
	_ = nc.SetDeadline(time.Time{})
	if !stop() { // ctx ended while connecting: nc is closed
		_ = s.Close()
		_ = client.Close()
		return nil, classify(where, ctx.Err())
	}
	_, posix := s.HasExtension("posix-rename@openssh.com")
	return &conn{ssh: client, sftp: s, posixRename: posix}, nil
}

// ctxErr prefers ctx's error to err when ctx has ended: closing the
// connection on cancellation makes the handshake fail with a network error.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// auth resolves e's credentials into SSH authentication methods: the
// private key first, then the password (also answering keyboard-interactive
// prompts). Errors never include a secret.
func (tr *Transport) auth(ctx context.Context, e Endpoint) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if e.PrivateKey != "" {
		key, err := tr.secrets.Resolve(ctx, e.PrivateKey)
		if err != nil {
			return nil, classify("privateKey "+e.PrivateKey, err)
		}
		var signer ssh.Signer
		if e.Passphrase != "" {
			pp, err := tr.secrets.Resolve(ctx, e.Passphrase)
			if err != nil {
				return nil, classify("passphrase "+e.Passphrase, err)
			}
			signer, err = ssh.ParsePrivateKeyWithPassphrase(key, pp)
			if err != nil {
				return nil, domain.Errorf(domain.KindInvalid, "privateKey %s with its passphrase does not parse", e.PrivateKey)
			}
		} else {
			signer, err = ssh.ParsePrivateKey(key)
			if err != nil {
				var pm *ssh.PassphraseMissingError
				if errors.As(err, &pm) {
					return nil, domain.Errorf(domain.KindInvalid, "privateKey %s is encrypted and the endpoint gives no passphrase", e.PrivateKey)
				}
				return nil, domain.Errorf(domain.KindInvalid, "privateKey %s does not parse as a PEM or OpenSSH private key", e.PrivateKey)
			}
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if e.Password != "" {
		pw, err := tr.secrets.Resolve(ctx, e.Password)
		if err != nil {
			return nil, classify("password "+e.Password, err)
		}
		password := string(pw)
		methods = append(methods, ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = password
					}
				}
				return answers, nil
			}))
	}
	return methods, nil
}

// check is the ssh.HostKeyCallback of an endpoint: the presented key must
// be one of the pinned ones and not revoked.
func (p pins) check(_ string, _ net.Addr, key ssh.PublicKey) error {
	presented := string(key.Marshal())
	for _, k := range p.revoked {
		if string(k.Marshal()) == presented {
			return &hostKeyError{fingerprint: ssh.FingerprintSHA256(key), keyType: key.Type(), revoked: true}
		}
	}
	for _, k := range p.accepted {
		if string(k.Marshal()) == presented {
			return nil
		}
	}
	return &hostKeyError{fingerprint: ssh.FingerprintSHA256(key), keyType: key.Type()}
}

// algorithms are the host key algorithms to ask for: those of the pinned
// keys, so that a server with several host keys presents a pinned one.
func (p pins) algorithms() []string {
	var algs []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algs = append(algs, a)
		}
	}
	for _, k := range p.accepted {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(k.Type())
	}
	return algs
}

// sourceReader remembers the source's read error, so that a failed write
// can be told from a failed read.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}
