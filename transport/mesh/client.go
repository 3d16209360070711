// Package mesh is a client for NHS England's MESH API v2 (Message Exchange
// for Social care and Health): handshake, chunked and gzip-compressed
// sending, inbox listing, chunked download, acknowledgement and tracking;
// and ferry's MESH transport built on it.
//
// The package owns everything MESH about ferry, as each transport package
// owns its destination: its settings (Config, the routing file's "mesh"
// section: ParseConfig, WithDefaults, Validate), its addressing rule for
// uploads (Addressing: from, to and workflow from mex-* metadata or the
// mailbox folder's outbound mapping, the ISO-8859-1 check, the compression
// decision), where inbound messages land (InboundConfig.Land), the outbound
// transport (Outbound) and the inbound source (Inbound). The handlers that
// use these declare the small interfaces they need; a route names the
// transport only by its destination type, "mesh".
//
// Every error it returns is a *domain.Error. Only KindUnavailable (network
// failures, timeouts, HTTP 408, 429 and 5xx) is worth repeating; the HTTP
// status and MESH's own error code are kept in Message and Code. The client
// never retries by itself.
package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// MediaTypeV2 asks MESH for version 2 responses.
const MediaTypeV2 = "application/vnd.mesh.v2+json"

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// Client talks to one MESH mailbox. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	mailbox string // upper case
	base    *url.URL
	http    *http.Client

	hsMu          sync.Mutex // held while EnsureHandshake decides and handshakes
	lastHandshake time.Time  // of this mailbox, by this or (per Handshakes) another process
}

// Mailbox returns the client's mailbox id, upper case.
func (c *Client) Mailbox() string { return c.mailbox }

// String names the client's endpoint and mailbox, never its secrets.
func (c *Client) String() string {
	return fmt.Sprintf("mesh.Client{URL: %q, Mailbox: %q}", c.cfg.URL, c.mailbox)
}

// Format prints String for every verb.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, c.String()) }

// Message is what a sender says about a message it sends. To and
// WorkflowID are required.
type Message struct {
	To         string // recipient mailbox id
	WorkflowID string
	Subject    string
	LocalID    string
	FileName   string
	Checksum   string // mex-Content-Checksum; MESH accepts letters, digits, whitespace and ":-/"
	// Encrypted and Compressed tell the recipient the data itself is
	// encrypted or compressed (mex-Content-Encrypted / -Compressed: Y).
	// They are independent of the gzip transport encoding Send applies.
	Encrypted  bool
	Compressed bool
}

// Handshake validates the mailbox and its credentials (POST
// /{mailbox} with mex-ClientVersion, mex-OSName, mex-OSVersion and
// mex-OSArchitecture). MESH asks for it at most about once a day per
// mailbox. Returns KindUnauthorized when the credentials are refused.
func (c *Client) Handshake(ctx context.Context) error {
	h := http.Header{}
	h[hdrClientVersion] = []string{c.cfg.ClientVersion}
	h[hdrOSName] = []string{runtime.GOOS}
	h[hdrOSVersion] = []string{osVersion()}
	h[hdrOSArchitecture] = []string{runtime.GOARCH}
	resp, err := c.do(ctx, request{
		op: "mesh handshake " + c.mailbox, method: http.MethodPost, path: []string{c.mailbox},
		header: h, ok: []int{http.StatusOK},
	})
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// Send sends chunk 1 of total of a new message and returns its MESH
// message id (POST /{mailbox}/outbox, with mex-Chunk-Range 1:total when
// total > 1). When gzip is true, body is the uncompressed chunk: Send
// compresses it as it streams (never holding the chunk in memory) and sends
// Content-Encoding: gzip; every later chunk of the message must then be
// sent with gzip too. The body is sent with its length when it has a Len()
// or is a regular *os.File and gzip is false, else with chunked
// transfer-encoding. Send stops reading body before it returns.
//
// Header values go on the wire as ISO-8859-1, as NHS England's clients
// write and read them (a "£" in the subject is the single byte 0xA3); a
// field ISO-8859-1 cannot carry is refused before anything is sent.
//
// Repeating Send creates a second message. Errors: KindInvalid for a bad
// message (locally, including text outside ISO-8859-1, or MESH 400/417/422 with its code, e.g. "12"
// unregistered recipient, "06" malformed headers, "02" empty body),
// KindUnauthorized, KindUnavailable.
func (c *Client) Send(ctx context.Context, m Message, chunk, total int, body io.Reader, gzip bool) (string, error) {
	to := strings.ToUpper(strings.TrimSpace(m.To))
	op := fmt.Sprintf("mesh send from %s to %s", c.mailbox, to)
	if chunk != 1 || total < 1 {
		return "", domain.Errorf(domain.KindInvalid, "%s: Send sends chunk 1 of a total of at least 1, not %d of %d", op, chunk, total)
	}
	if err := m.validate(); err != nil {
		return "", domain.Errorf(domain.KindInvalid, "%s: %s", op, err)
	}
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	m.To = to
	for _, f := range m.textFields() {
		if f.value != "" || f.name == hdrTo || f.name == hdrWorkflowID {
			v, _ := toLatin1(f.value) // validate checked every field
			h[f.name] = []string{v}
		}
	}
	if m.Encrypted {
		h[hdrEncrypted] = []string{"Y"}
	}
	if m.Compressed {
		h[hdrCompressed] = []string{"Y"}
	}
	if total > 1 {
		h[hdrChunkRange] = []string{"1:" + strconv.Itoa(total)}
	}
	resp, err := c.do(ctx, request{
		op: op, method: http.MethodPost, path: []string{c.mailbox, "outbox"},
		header: h, body: body, gzip: gzip, ok: []int{http.StatusAccepted, http.StatusOK},
	})
	if err != nil {
		return "", err
	}
	defer drain(resp)
	var out struct {
		MessageID   string `json:"message_id"`
		MessageIDV1 string `json:"messageID"`
	}
	if err := decode(resp, &out); err != nil {
		return "", &domain.Error{Kind: domain.KindInternal, Message: op + ": unreadable response", Err: err}
	}
	id := out.MessageID
	if id == "" {
		id = out.MessageIDV1
	}
	if id == "" {
		return "", domain.Errorf(domain.KindInternal, "%s: response carries no message_id", op)
	}
	return id, nil
}

// SendChunk sends chunk (2..total) of the message Send started (POST
// /{mailbox}/outbox/{id}/{chunk} with mex-Chunk-Range chunk:total); body
// and gzip as for Send, and gzip must match chunk 1. Send the chunks in
// order: MESH finalises the message when the last chunk arrives.
// Re-sending a chunk before the last replaces it. Errors: KindConflict
// (423) once the message is finalised, which is what a repeat of the last
// chunk after a lost response gets; KindNotFound for an unknown message;
// KindInvalid (417) for a bad range or a changed Content-Encoding;
// KindUnauthorized; KindUnavailable.
func (c *Client) SendChunk(ctx context.Context, messageID string, chunk, total int, body io.Reader, gzip bool) error {
	op := fmt.Sprintf("mesh send chunk %d/%d of %s", chunk, total, messageID)
	if chunk < 2 || chunk > total {
		return domain.Errorf(domain.KindInvalid, "%s: SendChunk sends chunks 2 to total", op)
	}
	if err := checkID(messageID); err != nil {
		return domain.Errorf(domain.KindInvalid, "%s: %s", op, err)
	}
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	h[hdrChunkRange] = []string{strconv.Itoa(chunk) + ":" + strconv.Itoa(total)}
	resp, err := c.do(ctx, request{
		op: op, method: http.MethodPost, path: []string{c.mailbox, "outbox", messageID, strconv.Itoa(chunk)},
		header: h, body: body, gzip: gzip, ok: []int{http.StatusAccepted, http.StatusOK},
	})
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// InboxPage is one page of the inbox listing.
type InboxPage struct {
	// MessageIDs are messages ready to download (fully uploaded, not yet
	// acknowledged), oldest first.
	MessageIDs []string
	// ContinueFrom, when not "", fetches the next page; it is the
	// continue_from of links.next.
	ContinueFrom string
	// ApproxCount is MESH's eventually consistent count of the inbox.
	ApproxCount int
}

// Inbox lists up to maxResults message ids (0 means MESH's default of
// 500; MESH accepts 10 to 5000 and Inbox clamps to that range), starting
// after continueFrom ("" for the first page). When a page is full, more may
// be waiting: follow ContinueFrom, or poll again. Errors: KindUnauthorized,
// KindInvalid, KindUnavailable.
func (c *Client) Inbox(ctx context.Context, maxResults int, continueFrom string) (InboxPage, error) {
	op := "mesh list inbox " + c.mailbox
	q := url.Values{}
	if maxResults > 0 {
		q.Set("max_results", strconv.Itoa(min(max(maxResults, 10), 5000)))
	}
	if continueFrom != "" {
		q.Set("continue_from", continueFrom)
	}
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, path: []string{c.mailbox, "inbox"}, query: q, ok: []int{http.StatusOK}})
	if err != nil {
		return InboxPage{}, err
	}
	defer drain(resp)
	var out struct {
		Messages []string          `json:"messages"`
		Links    map[string]string `json:"links"`
		Count    *int              `json:"approx_inbox_count"`
	}
	if err := decode(resp, &out); err != nil {
		return InboxPage{}, &domain.Error{Kind: domain.KindInternal, Message: op + ": unreadable response", Err: err}
	}
	page := InboxPage{MessageIDs: out.Messages}
	if page.MessageIDs == nil {
		page.MessageIDs = []string{}
	}
	if out.Count != nil {
		page.ApproxCount = *out.Count
	}
	if next := out.Links["next"]; next != "" {
		if u, err := url.Parse(next); err == nil {
			page.ContinueFrom = u.Query().Get("continue_from")
		}
	}
	return page, nil
}

// Download is one downloaded chunk of a message.
type Download struct {
	Headers MessageHeaders
	// Chunk and Total come from mex-Chunk-Range (1:1 when absent; a report
	// is chunk 1 of 1).
	Chunk, Total int
	// ContentEncoding is the response's Content-Encoding ("" or "gzip").
	ContentEncoding string
	// Body yields the chunk's data as the sender gave it: a gzip-encoded
	// response is decompressed as it is read. Read errors are
	// *domain.Error (KindUnavailable for a broken connection, KindInvalid
	// for corrupt gzip data). The caller must Close it.
	Body io.ReadCloser
}

// Download fetches chunk (1-based) of message id: chunk 1 is GET
// /{mailbox}/inbox/{id}, chunk n is GET /{mailbox}/inbox/{id}/{n}. It asks
// for gzip (saving bandwidth) and decompresses itself. A REPORT has an
// empty body. Downloading does not acknowledge. Errors: KindNotFound (404
// unknown message or chunk; 410 expired, or not yet fully uploaded),
// KindUnauthorized (also when the mailbox is not the recipient),
// KindUnavailable.
func (c *Client) Download(ctx context.Context, id string, chunk int) (*Download, error) {
	op := fmt.Sprintf("mesh download %s chunk %d", id, chunk)
	if chunk < 1 {
		return nil, domain.Errorf(domain.KindInvalid, "%s: chunks are numbered from 1", op)
	}
	if err := checkID(id); err != nil {
		return nil, domain.Errorf(domain.KindInvalid, "%s: %s", op, err)
	}
	path := []string{c.mailbox, "inbox", id}
	if chunk > 1 {
		path = append(path, strconv.Itoa(chunk))
	}
	resp, err := c.do(ctx, request{
		op: op, method: http.MethodGet, path: path,
		header: http.Header{"Accept-Encoding": {"gzip"}}, ok: []int{http.StatusOK, http.StatusPartialContent},
	})
	if err != nil {
		return nil, err
	}
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	if enc == "identity" {
		enc = ""
	}
	if enc != "" && enc != "gzip" {
		drain(resp)
		return nil, domain.Errorf(domain.KindInternal, "%s: unsupported Content-Encoding %q", op, enc)
	}
	d := &Download{Headers: parseHeaders(resp.Header), ContentEncoding: enc}
	d.Chunk, d.Total = chunkRange(resp.Header, chunk)
	if d.Chunk != chunk {
		drain(resp)
		return nil, domain.Errorf(domain.KindInternal, "%s: MESH answered with chunk %d", op, d.Chunk)
	}
	d.Body = &body{op: op + ": reading body", resp: resp.Body, gzip: enc == "gzip"}
	return d, nil
}

// Acknowledge tells MESH the message is safely received, removing it from
// the inbox listing (PUT /{mailbox}/inbox/{id}/status/acknowledged). It is
// safe to repeat. Errors: KindNotFound, KindUnauthorized, KindUnavailable.
func (c *Client) Acknowledge(ctx context.Context, id string) error {
	op := "mesh acknowledge " + id
	if err := checkID(id); err != nil {
		return domain.Errorf(domain.KindInvalid, "%s: %s", op, err)
	}
	resp, err := c.do(ctx, request{
		op: op, method: http.MethodPut, path: []string{c.mailbox, "inbox", id, "status", "acknowledged"},
		ok: []int{http.StatusOK, http.StatusNoContent},
	})
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// Tracking statuses MESH reports for a sent message.
const (
	StatusUploading     = "uploading"     // chunks still arriving; not yet in the recipient's inbox
	StatusAccepted      = "accepted"      // complete, waiting in the recipient's inbox
	StatusAcknowledged  = "acknowledged"  // the recipient acknowledged it
	StatusUndeliverable = "undeliverable" // MESH gave up delivering it
	StatusError         = "error"         // delivery failed
)

// Tracking is what MESH knows of a message this mailbox sent.
type Tracking struct {
	MessageID         string
	LocalID           string
	WorkflowID        string
	FileName          string
	Recipient         string
	RecipientName     string
	RecipientODS      string
	RecipientOrg      string
	Status            string // one of the Status constants, lower case
	StatusSuccess     bool   // false once an error event is recorded, or for reports
	StatusCode        string
	StatusEvent       string
	StatusDescription string
	StatusTimestamp   time.Time // zero when MESH gives none
	UploadTimestamp   time.Time
	ExpiryTime        time.Time // when it expires from the recipient's inbox
}

// Track returns the status of a message this mailbox sent (GET
// /{mailbox}/outbox/tracking?messageID=...). Errors: KindNotFound (also for
// another mailbox's message), KindUnauthorized, KindUnavailable.
func (c *Client) Track(ctx context.Context, messageID string) (Tracking, error) {
	op := "mesh track " + messageID
	if err := checkID(messageID); err != nil {
		return Tracking{}, domain.Errorf(domain.KindInvalid, "%s: %s", op, err)
	}
	resp, err := c.do(ctx, request{
		op: op, method: http.MethodGet, path: []string{c.mailbox, "outbox", "tracking"},
		query: url.Values{"messageID": {messageID}}, ok: []int{http.StatusOK},
	})
	if err != nil {
		return Tracking{}, err
	}
	defer drain(resp)
	var out struct {
		MessageID         string `json:"message_id"`
		LocalID           string `json:"local_id"`
		WorkflowID        string `json:"workflow_id"`
		FileName          string `json:"filename"`
		Recipient         string `json:"recipient"`
		RecipientName     string `json:"recipient_name"`
		RecipientODS      string `json:"recipient_ods_code"`
		RecipientOrg      string `json:"recipient_org_code"`
		Status            string `json:"status"`
		StatusSuccess     *bool  `json:"status_success"`
		StatusCode        string `json:"status_code"`
		StatusEvent       string `json:"status_event"`
		StatusDescription string `json:"status_description"`
		StatusTimestamp   string `json:"status_timestamp"`
		UploadTimestamp   string `json:"upload_timestamp"`
		ExpiryTime        string `json:"expiry_time"`
	}
	if err := decode(resp, &out); err != nil {
		return Tracking{}, &domain.Error{Kind: domain.KindInternal, Message: op + ": unreadable response", Err: err}
	}
	return Tracking{
		MessageID: out.MessageID, LocalID: out.LocalID, WorkflowID: out.WorkflowID, FileName: out.FileName,
		Recipient: out.Recipient, RecipientName: out.RecipientName, RecipientODS: out.RecipientODS, RecipientOrg: out.RecipientOrg,
		Status: strings.ToLower(out.Status), StatusSuccess: out.StatusSuccess != nil && *out.StatusSuccess,
		StatusCode: out.StatusCode, StatusEvent: out.StatusEvent, StatusDescription: out.StatusDescription,
		StatusTimestamp: parseTime(out.StatusTimestamp), UploadTimestamp: parseTime(out.UploadTimestamp),
		ExpiryTime: parseTime(out.ExpiryTime),
	}, nil
}

// request describes one call to MESH.
type request struct {
	op     string // start of every error message
	method string
	path   []string // segments after /messageexchange
	query  url.Values
	header http.Header
	body   io.Reader // nil for none
	gzip   bool      // compress body on the fly
	ok     []int     // statuses that mean success
}

// errDetached stops a request reading a caller's body once the call has
// returned.
var errDetached = errors.New("mesh: request finished; body no longer read")

// do sends r with a fresh authentication token and returns the response
// when its status is one of r.ok; otherwise it closes the response and
// returns a classified error. When do returns, r.body is no longer read.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	u := requestURL(c.base, r.path)
	u.RawQuery = r.query.Encode()
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), nil)
	if err != nil {
		return nil, &domain.Error{Kind: domain.KindInternal, Message: r.op + ": building request", Err: err}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", MediaTypeV2)
	req.Header.Set("User-Agent", c.userAgent())
	req.Header.Set("Authorization", AuthHeader(c.mailbox, c.cfg.Password, c.cfg.SharedKey, newNonce(), 1, c.cfg.Now()))

	var src *guarded
	var pipe *io.PipeReader
	var gzDone <-chan struct{}
	if r.body != nil {
		src = &guarded{r: r.body}
		if r.gzip {
			pipe, gzDone = gzipPipe(src)
			req.Body, req.ContentLength = pipe, -1
			req.Header.Set("Content-Encoding", "gzip")
		} else {
			n := lengthOf(r.body)
			switch {
			case n == 0:
				req.Body, req.ContentLength = http.NoBody, 0
			default:
				req.Body, req.ContentLength = io.NopCloser(src), n // n < 0: chunked
			}
		}
	}
	resp, err := c.http.Do(req)
	var srcErr error
	if src != nil {
		srcErr = src.detach()
		if pipe != nil {
			pipe.CloseWithError(errDetached)
			<-gzDone
		}
	}
	if srcErr != nil {
		if err == nil {
			drain(resp)
		}
		return nil, ioError(r.op+": reading the body to send", srcErr)
	}
	if err != nil {
		return nil, ioError(r.op, err)
	}
	for _, s := range r.ok {
		if resp.StatusCode == s {
			return resp, nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	drain(resp)
	return nil, statusError(r.op, resp.StatusCode, b)
}

func (c *Client) userAgent() string {
	return fmt.Sprintf("ferry;%s;N/A;%s;%s;%s", c.cfg.ClientVersion, runtime.GOARCH, runtime.GOOS, osVersion())
}

// guarded passes reads through to a caller's reader until detached, and
// remembers the first error the reader returned (other than io.EOF).
// Detaching waits for a read in progress, so after do returns the caller's
// reader is never touched again.
type guarded struct {
	mu       sync.Mutex
	r        io.Reader
	detached bool
	err      error
}

func (g *guarded) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.detached {
		return 0, errDetached
	}
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF && g.err == nil {
		g.err = err
	}
	return n, err
}

func (g *guarded) detach() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.detached = true
	return g.err
}

// lengthOf returns how many bytes r will yield when that is known without
// reading it (a Len() method, or a regular *os.File), else -1.
func lengthOf(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return max(fi.Size()-off, 0)
	}
	return -1
}

// MaxMessageIDLength bounds the length of a message id ValidMessageID
// accepts. MESH's ids are 20-odd characters (yyyyMMddHHmmssffffff_XXXXXX),
// the sandbox's are UUIDs (36).
const MaxMessageIDLength = 100

// ValidMessageID reports whether id, a MESH message id, is safe to use as
// one piece of a URL path or an S3 key: 1 to MaxMessageIDLength ASCII
// letters, digits, '-', '_' or '.', not starting with '.'. Every Client
// method that takes an id checks it, and so must any code that builds a
// key or a path from an id MESH gave (meshpoll, before an id becomes
// inbound/{mailbox}/{id}.dat). The error is a *domain.Error of
// KindInvalid, quoting the id (escaped, and cut short when long).
func ValidMessageID(id string) error {
	bad := func(why string) error {
		shown := id
		if len(shown) > 40 {
			shown = shown[:40] + "…"
		}
		return domain.Errorf(domain.KindInvalid, "invalid MESH message id %q: %s", shown, why)
	}
	switch {
	case id == "":
		return bad("empty")
	case len(id) > MaxMessageIDLength:
		return bad(fmt.Sprintf("longer than %d characters", MaxMessageIDLength))
	case id[0] == '.':
		return bad("starts with '.'")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return bad("only letters, digits, '-', '_' and '.' are allowed")
		}
	}
	return nil
}

// checkID is ValidMessageID as a plain error, for the client's messages.
func checkID(id string) error {
	if err := ValidMessageID(id); err != nil {
		return errors.New(err.(*domain.Error).Message)
	}
	return nil
}

// requestURL returns base with the path segments appended, each escaped
// with url.PathEscape (so a '/', '?', '#' or '%' in one never changes the
// request's path), with both Path and RawPath set.
func requestURL(base *url.URL, segments []string) *url.URL {
	u := *base
	plain, raw := strings.TrimRight(base.Path, "/"), strings.TrimRight(base.EscapedPath(), "/")
	for _, s := range segments {
		plain += "/" + s
		raw += "/" + url.PathEscape(s)
	}
	u.Path, u.RawPath = plain, raw
	return &u
}

// textField is one of a Message's text headers.
type textField struct{ name, value string }

// textFields lists m's text headers in a fixed order, by wire name.
func (m Message) textFields() []textField {
	return []textField{
		{hdrTo, m.To}, {hdrWorkflowID, m.WorkflowID}, {hdrSubject, m.Subject},
		{hdrLocalID, m.LocalID}, {hdrFileName, m.FileName}, {hdrChecksum, m.Checksum},
	}
}

// NotLatin1 returns the lower-case header names (mex-subject, mex-localid,
// …) of m's fields that ISO-8859-1 cannot carry, in a fixed order, or nil.
// Send refuses a message with any; callers that accept text from users
// (intake) check it first so the sender learns which field is at fault.
func (m Message) NotLatin1() []string {
	var bad []string
	for _, f := range m.textFields() {
		if !isLatin1(f.value) {
			bad = append(bad, strings.ToLower(f.name))
		}
	}
	return bad
}

func (m Message) validate() error {
	var problems []string
	if strings.TrimSpace(m.To) == "" {
		problems = append(problems, "To is required")
	}
	if strings.TrimSpace(m.WorkflowID) == "" {
		problems = append(problems, "WorkflowID is required")
	}
	for _, f := range m.textFields() {
		if strings.ContainsFunc(f.value, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
			problems = append(problems, strings.ToLower(f.name)+" contains control characters")
		}
	}
	if bad := m.NotLatin1(); len(bad) > 0 {
		problems = append(problems, strings.Join(bad, ", ")+": text ISO-8859-1 cannot carry")
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

func decode(resp *http.Response, v any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// drain reads a little of what is left so the connection can be reused,
// then closes the body.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
}

// parseTime reads MESH's timestamps: RFC 3339, or ISO 8601 without a zone
// (taken as UTC). Anything else is the zero time.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "20060102150405"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

var (
	osVersionOnce sync.Once
	osVersionText string
)

// osVersion is the kernel release where it can be read, else "unknown".
func osVersion() string {
	osVersionOnce.Do(func() {
		osVersionText = "unknown"
		if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			if v := strings.TrimSpace(string(b)); v != "" {
				osVersionText = v
			}
		}
	})
	return osVersionText
}
