// Package meshpoll turns messages waiting in MESH inboxes into inbound
// transfers. It runs on a schedule that ticks every few minutes and polls
// each mailbox whose poll interval is due (in `ferry local`, a ticker per
// mailbox at that interval). Each message becomes one transfer, identified by the mailbox and
// MESH message id, so listing the same message again changes nothing; the
// advance function then downloads it chunk by chunk into S3 at
// inbound/{mailbox}/{message_id}.dat (reports as .ctl) and acknowledges it
// once the object is complete.
//
// A non-delivery report about a message ferry sent fails that outbound
// transfer with the report's status code.
package meshpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport/mesh"
)

// Store is what meshpoll needs of the event store.
type Store interface {
	Load(ctx context.Context, id string) (domain.State, error)
	Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error)
	// FindByRef returns the transfer whose remote reference is ref.
	FindByRef(ctx context.Context, ref string) (string, error)
}

// Inbox is what meshpoll needs of one mailbox's MESH client.
type Inbox interface {
	// EnsureHandshake handshakes unless the mailbox has within the day
	// (mesh.Client keeps that rule, shared across processes).
	EnsureHandshake(ctx context.Context) error
	Inbox(ctx context.Context, maxResults int, continueFrom string) (mesh.InboxPage, error)
	Head(ctx context.Context, id string) (mesh.Head, error)
}

// Landing says where an inbox message lands (mesh.InboundConfig.Land: the
// inbound bucket, under prefix + mailbox + "/", as {message_id}.dat or .ctl
// or the sender's filename).
type Landing interface {
	Land(mailbox, msgID string, h mesh.MessageHeaders) (dest domain.Destination, filename string)
}

// Handler is the meshpoll Lambda.
type Handler struct {
	Store     Store
	Mailboxes map[string]Inbox // by mailbox id
	// Landing says where messages land; required.
	Landing Landing
	// PageLimit is max_results per inbox listing (default 500).
	PageLimit int
	// MaxPages bounds the listings of one poll when pages keep coming back
	// full (default 10).
	MaxPages int
	// Concurrency bounds the messages registered at once (default 4).
	Concurrency int
	// ReportGrace is how long a report about a message ferry cannot find
	// yet is left in the inbox before it is landed anyway (default 10m).
	ReportGrace time.Duration
	// Interval is how often each inbox is polled (the routing file's
	// mesh.inbound.pollInterval), and Tick how often the schedule invokes
	// the handler. An invocation at time t polls the inboxes whose interval
	// began within the tick before t, so a 5-minute interval on a 1-minute
	// tick polls at :00, :05, :10… Zero values poll every inbox every time.
	Interval, Tick time.Duration
	Now            func() time.Time
	Log            *slog.Logger
}

// Input is the invocation's payload: the EventBridge scheduled event, whose
// time says which inboxes are due, or {"mailbox": "X26ABC1"} to poll one
// inbox now.
type Input struct {
	Mailbox string    `json:"mailbox"`
	Time    time.Time `json:"time"`
}

// Result counts what one poll did.
type Result struct {
	Listed     int `json:"listed"`
	Created    int `json:"created"`
	Known      int `json:"known"`
	Failed     int `json:"failed"`
	ReportsFor int `json:"reportsFor"` // outbound transfers failed by a report
	// Refused counts messages recorded as failed without being downloaded
	// (an id unsafe in a URL path or S3 key).
	Refused int `json:"refused"`
}

// Handle polls the mailbox named in the input or, for a scheduled event,
// every mailbox due at the event's time, at once. The result sums the
// polls'; an error names each mailbox whose inbox could not be listed.
func (h *Handler) Handle(ctx context.Context, in Input) (Result, error) {
	if in.Mailbox != "" {
		return h.Poll(ctx, in.Mailbox)
	}
	due := h.Due(in.Time)
	results := make([]Result, len(due))
	errs := make([]error, len(due))
	var wg sync.WaitGroup
	for i, mailbox := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = h.Poll(ctx, mailbox)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("mailbox %s: %w", mailbox, errs[i])
			}
		}()
	}
	wg.Wait()
	var sum Result
	for _, r := range results {
		sum.Listed += r.Listed
		sum.Created += r.Created
		sum.Known += r.Known
		sum.Failed += r.Failed
		sum.ReportsFor += r.ReportsFor
		sum.Refused += r.Refused
	}
	return sum, errors.Join(errs...)
}

// Due returns, sorted, the mailboxes whose poll is due at t: all of them
// when t is zero (an invocation that is not a scheduled event) or when the
// interval is no longer than the tick.
func (h *Handler) Due(t time.Time) []string {
	var due []string
	for mailbox := range h.Mailboxes {
		if t.IsZero() || h.Tick <= 0 || h.Interval <= h.Tick || t.Sub(t.Truncate(h.Interval)) < h.Tick {
			due = append(due, mailbox)
		}
	}
	slices.Sort(due)
	return due
}

// Poll lists the mailbox's inbox and registers every message not yet
// known. A message that could not be registered stays in the inbox and is
// tried on the next poll; Poll returns an error only when the inbox could
// not be listed.
func (h *Handler) Poll(ctx context.Context, mailbox string) (Result, error) {
	var res Result
	inbox, ok := h.Mailboxes[mailbox]
	if !ok {
		return res, domain.Errorf(domain.KindInvalid, "mailbox %s is not configured", mailbox)
	}
	log := h.Log.With("mailbox", mailbox)
	if err := inbox.EnsureHandshake(ctx); err != nil {
		return res, err
	}
	set := h.settings()
	from := ""
	for range set.maxPages {
		page, err := inbox.Inbox(ctx, set.pageLimit, from)
		if err != nil {
			return res, err
		}
		res.Listed += len(page.MessageIDs)
		h.register(ctx, log, mailbox, inbox, page.MessageIDs, &res)
		if len(page.MessageIDs) < set.pageLimit {
			break
		}
		from = page.ContinueFrom // "" when MESH gives no next link: list again
	}
	log.InfoContext(ctx, "inbox polled", "listed", res.Listed, "created", res.Created, "known", res.Known, "failed", res.Failed, "refused", res.Refused)
	return res, nil
}

// settings are the handler's tunables with every zero field set to its
// default: the one place meshpoll applies its defaults.
type settings struct {
	pageLimit, maxPages, concurrency int
	reportGrace                      time.Duration
}

func (h *Handler) settings() settings {
	s := settings{pageLimit: h.PageLimit, maxPages: h.MaxPages, concurrency: h.Concurrency, reportGrace: h.ReportGrace}
	if s.pageLimit <= 0 {
		s.pageLimit = 500
	}
	if s.maxPages <= 0 {
		s.maxPages = 10
	}
	if s.concurrency <= 0 {
		s.concurrency = 4
	}
	if s.reportGrace <= 0 {
		s.reportGrace = 10 * time.Minute
	}
	return s
}

func (h *Handler) register(ctx context.Context, log *slog.Logger, mailbox string, inbox Inbox, ids []string, res *Result) {
	var mu sync.Mutex
	sem := make(chan struct{}, h.settings().concurrency)
	var wg sync.WaitGroup
	for _, msgID := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			outcome, err := h.message(ctx, mailbox, inbox, msgID)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.Failed++
				log.WarnContext(ctx, "message not registered; it stays in the inbox", "messageId", msgID, "error", err)
			case outcome == known:
				res.Known++
			case outcome == refused:
				res.Refused++
			default:
				res.Created++
				if outcome == createdAfterReport {
					res.ReportsFor++
				}
			}
		}()
	}
	wg.Wait()
}

type outcome int

const (
	known outcome = iota
	created
	createdAfterReport
	refused
)

// message registers one inbox message as a transfer.
func (h *Handler) message(ctx context.Context, mailbox string, inbox Inbox, msgID string) (outcome, error) {
	id := mesh.TransferID(mailbox, msgID)
	if _, err := h.Store.Load(ctx, id); err == nil {
		return known, nil
	} else if domain.KindOf(err) != domain.KindNotFound {
		return known, err
	}
	if err := mesh.ValidMessageID(msgID); err != nil {
		// An id that is not safe in a URL path or an S3 key is never
		// used as one: the message is recorded as refused (listing it
		// again finds that record) and left in the inbox for MESH to
		// expire.
		return h.refuse(ctx, id, mailbox, msgID, err)
	}
	head, err := inbox.Head(ctx, msgID)
	if err != nil {
		return known, err
	}
	out := created
	if head.Headers.MessageType == mesh.MessageTypeReport {
		failedOne, err := h.report(ctx, head.Headers)
		if err != nil {
			return known, err
		}
		if failedOne {
			out = createdAfterReport
		}
	}
	dest, filename := h.Landing.Land(mailbox, msgID, head.Headers)
	req := domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: mailbox, MessageID: msgID},
		Route:       "mesh-inbound",
		Destination: dest,
		Sender:      head.Headers.From,
		Recipient:   mailbox,
		Workflow:    head.Headers.WorkflowID,
		Filename:    filename,
		ChunkSize:   0, // MESH chose the chunks
		Chunks:      max(head.Total, 1),
		AckSource:   true,
		Metadata:    head.Headers.All,
	}
	if d, err := store.DecideAppend(ctx, h.Store, domain.State{ID: id}, domain.Request{Requested: req}, h.Now()); err != nil || d.Lost {
		return known, err
	}
	h.Log.InfoContext(ctx, "inbound transfer requested", "transfer", id, "version", 1, "mailbox", mailbox, "messageId", msgID, "chunks", req.Chunks, "type", head.Headers.MessageType)
	return out, nil
}

// maxRecordedID bounds how much of a refused message id is recorded.
const maxRecordedID = 200

// refuse records an inbox message ferry will not download as a transfer
// that failed at once, code INVALID_MESSAGE_ID.
func (h *Handler) refuse(ctx context.Context, id, mailbox, msgID string, why error) (outcome, error) {
	recorded := msgID
	if len(recorded) > maxRecordedID {
		recorded = strings.ToValidUTF8(recorded[:maxRecordedID], "") + "…"
	}
	reason := &domain.Error{Kind: domain.KindInvalid, Code: "INVALID_MESSAGE_ID",
		Message: fmt.Sprintf("MESH message in %s not downloaded: %v", mailbox, why)}
	cmd := domain.Reject{Requested: domain.Requested{
		Source:    domain.Source{Kind: "mesh", Mailbox: mailbox, MessageID: recorded},
		Route:     "mesh-inbound",
		Recipient: mailbox,
	}, Reason: reason}
	d, err := store.DecideAppend(ctx, h.Store, domain.State{ID: id}, cmd, h.Now())
	if err != nil || d.Lost {
		return known, err
	}
	h.Log.WarnContext(ctx, "inbound message refused", "transfer", id, "version", d.State.Version, "mailbox", mailbox, "reason", reason.Message)
	return refused, nil
}

// errReportEarly holds back a report whose outbound transfer is not
// findable yet (the read model lags the event store a little).
var errReportEarly = errors.New("report names a message ferry cannot find yet")

// report fails the outbound transfer a non-delivery report is about. It
// reports whether it failed one.
func (h *Handler) report(ctx context.Context, hd mesh.MessageHeaders) (bool, error) {
	if hd.LinkedMsgID == "" || hd.StatusCode == "00" {
		return false, nil
	}
	tid, err := h.Store.FindByRef(ctx, hd.LinkedMsgID)
	if domain.KindOf(err) == domain.KindNotFound {
		// Not ours, too old to wait for, or of unknown age: land it
		// anyway rather than hold the inbox up for ever.
		if ts := mesh.ParseTime(hd.StatusTimestamp); ts.IsZero() || h.Now().Sub(ts) > h.settings().reportGrace {
			return false, nil
		}
		return false, errReportEarly
	}
	if err != nil {
		return false, err
	}
	st, err := h.Store.Load(ctx, tid)
	if err != nil {
		return false, err
	}
	if st.Status != domain.StatusDelivered || !st.Request.ExpectAck {
		// Already acknowledged, failed or cancelled; or delivered without
		// waiting for an acknowledgement, and so final: nothing to fail.
		return false, nil
	}
	reason := &domain.Error{Kind: domain.KindInvalid, Code: hd.StatusCode,
		Message: fmt.Sprintf("MESH non-delivery report %s: %s (event %s)", hd.MessageID, hd.StatusDescription, hd.StatusEvent)}
	d, err := store.DecideAppend(ctx, h.Store, st, domain.Fail{Err: reason}, h.Now())
	if err != nil {
		return false, err
	}
	h.Log.WarnContext(ctx, "outbound transfer failed by a non-delivery report", "transfer", tid, "version", st.Version+1, "code", hd.StatusCode, "lostRace", d.Lost)
	return true, nil
}
