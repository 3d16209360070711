package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Email: files that arrive as attachments of a received message. SES (or
// ferry local's SMTP listener) stores the raw message under EmailPrefix of
// the upload bucket; the email function stores each attachment under an
// EmailKey and makes it a transfer, routed by the message's recipient
// address (Match.EmailTo) and held to the route's Email policy.
const (
	// EmailPrefix is where the raw received messages are kept in the upload
	// bucket, each under its SES message id. It is outside outbound/, so a
	// raw message is never an upload itself.
	EmailPrefix = "email/"
	// EmailAttachmentPrefix is where the email function puts the
	// attachments it takes from a message: under outbound/, so that routes
	// match them and advance reads them as any upload.
	EmailAttachmentPrefix = "outbound/email/"
	// DefaultMaxEmailSize is SES's limit on a received message, 40 MB.
	DefaultMaxEmailSize = 40 << 20
)

// Metadata of an attachment's object (and so of its transfer), written by
// the email function; intake reads them back from an upload under an
// EmailKey.
const (
	MetaEmailFrom      = "email-from"       // the sender's address (From, else the envelope's)
	MetaEmailTo        = "email-to"         // the recipient address the message was received for
	MetaEmailMessageID = "email-message-id" // the Message-ID header
	MetaEmailFilename  = "email-filename"   // the attachment's name as the message gave it, decoded
	MetaCorrelationID  = "correlation-id"   // shared by the transfers of one message
	MetaVerdictPrefix  = "email-"           // + a verdict's name: email-spf, email-virus, …
)

// EmailKey is the key of the attachment that is transfer id:
// outbound/email/{id}/{filename}. Like a postbox key it names its transfer,
// so the attachment's notification finds the transfer made, and intake
// makes it, the same, if the email function stopped before it did.
func EmailKey(id, filename string) string { return EmailAttachmentPrefix + id + "/" + filename }

// ParseEmailKey returns the transfer id an EmailKey names; ok is false for
// any other key.
func ParseEmailKey(key string) (id string, ok bool) {
	rest, found := strings.CutPrefix(key, EmailAttachmentPrefix)
	if !found {
		return "", false
	}
	id, name, found := strings.Cut(rest, "/")
	if !found || !ValidID(id) || name == "" || strings.Contains(name, "/") {
		return "", false
	}
	return id, true
}

// EmailTransferID is the transfer id of attachment n (1-based; 0 for the
// message itself, when it is rejected as a whole) of the message SES
// received as messageID at, for one of its recipients. Invoked again for
// the same message, the email function names the same transfers.
func EmailTransferID(messageID, recipient string, n int, at time.Time) string {
	return DerivedID(at.UTC(), "email", messageID, strings.ToLower(recipient), fmt.Sprint(n))
}

// Verdict names, as SES reports them.
const (
	VerdictSPF   = "spf"
	VerdictDKIM  = "dkim"
	VerdictDMARC = "dmarc"
	VerdictSpam  = "spam"
	VerdictVirus = "virus"
)

// VerdictNames are the verdicts SES reports on a received message, in the
// order they are checked.
var VerdictNames = []string{VerdictVirus, VerdictSpam, VerdictDMARC, VerdictDKIM, VerdictSPF}

// Verdicts are SES's findings on a received message, by verdict name:
// PASS, FAIL, GRAY or PROCESSING_FAILED (DMARC: also DISABLED).
type Verdicts map[string]string

// Rules for a verdict, in EmailPolicy.Verdicts.
const (
	RulePass    = "pass"    // the verdict must be PASS
	RuleNotFail = "notFail" // anything but FAIL
	RuleAny     = "any"     // not checked
)

// DefaultVerdictRules is what a route that says nothing requires: the
// virus scan passed, and DMARC did not fail.
var DefaultVerdictRules = map[string]string{VerdictVirus: RulePass, VerdictDMARC: RuleNotFail}

// EmailPolicy is what a route accepts of received email. Its zero value
// accepts any sender, rejects a message without attachments, and applies
// DefaultVerdictRules.
type EmailPolicy struct {
	// AllowedSenders are addresses ("ann@partner.example") or domains
	// ("partner.example" or "@partner.example"; not their subdomains),
	// compared without regard to case; empty allows everyone.
	AllowedSenders []string `json:"allowedSenders,omitempty"`
	// Body makes a message without attachments one transfer of its body
	// (its first text part); without it such a message is rejected.
	Body bool `json:"body,omitempty"`
	// Verdicts sets the rule for each verdict named (spf, dkim, dmarc,
	// spam, virus): pass, notFail or any. Verdicts not named keep
	// DefaultVerdictRules' rule, or none.
	Verdicts map[string]string `json:"verdicts,omitempty"`
	// MaxSize bounds the whole message; 0 means DefaultMaxEmailSize.
	MaxSize ByteSize `json:"maxSize,omitempty"`
}

// Validate reports every problem in p at once.
func (p EmailPolicy) Validate() error {
	var errs []error
	for name, rule := range p.Verdicts {
		if !slices.Contains(VerdictNames, name) {
			errs = append(errs, fmt.Errorf("email: unknown verdict %q (want one of %s)", name, strings.Join(VerdictNames, ", ")))
		}
		if rule != RulePass && rule != RuleNotFail && rule != RuleAny {
			errs = append(errs, fmt.Errorf("email: verdict %s: rule %q is not pass, notFail or any", name, rule))
		}
	}
	for _, s := range p.AllowedSenders {
		if strings.TrimLeft(strings.TrimSpace(s), "@") == "" {
			errs = append(errs, errors.New("email: allowedSenders lists an empty address"))
		}
	}
	if p.MaxSize < 0 {
		errs = append(errs, errors.New("email: maxSize must be positive"))
	}
	return errors.Join(errs...)
}

// MaxMessage returns the largest message the policy accepts, in bytes.
func (p EmailPolicy) MaxMessage() int64 {
	if p.MaxSize == 0 {
		return DefaultMaxEmailSize
	}
	return int64(p.MaxSize)
}

// Allows reports whether address may send to the route.
func (p EmailPolicy) Allows(address string) bool {
	if len(p.AllowedSenders) == 0 {
		return true
	}
	address = strings.ToLower(strings.TrimSpace(address))
	_, domain, _ := strings.Cut(address, "@")
	for _, s := range p.AllowedSenders {
		s = strings.ToLower(strings.TrimSpace(s))
		if strings.Contains(strings.TrimPrefix(s, "@"), "@") {
			if s == address {
				return true
			}
		} else if domain != "" && strings.TrimPrefix(s, "@") == domain {
			return true
		}
	}
	return false
}

// Check returns the first verdict that breaks the policy's rules, as a
// KindInvalid error with code VERDICT_FAILED naming it, or nil. A verdict
// SES did not report counts as missing, which only "any" accepts.
func (p EmailPolicy) Check(v Verdicts) *Error {
	for _, name := range VerdictNames {
		rule, ok := p.Verdicts[name]
		if !ok {
			rule, ok = DefaultVerdictRules[name]
		}
		if !ok || rule == RuleAny {
			continue
		}
		got := strings.ToUpper(v[name])
		if (rule == RulePass && got != "PASS") || (rule == RuleNotFail && (got == "FAIL" || got == "")) {
			shown := got
			if shown == "" {
				shown = "missing"
			}
			return Errorf(KindInvalid, "%s verdict %s (the route requires %s)", name, shown, rule).WithCode("VERDICT_FAILED")
		}
	}
	return nil
}

// matchAddress reports whether want (an address, or "@domain") matches the
// recipient address got, without regard to case.
func matchAddress(want, got string) bool {
	want, got = strings.ToLower(strings.TrimSpace(want)), strings.ToLower(strings.TrimSpace(got))
	if d, ok := strings.CutPrefix(want, "@"); ok {
		_, gd, _ := strings.Cut(got, "@")
		return gd != "" && gd == d
	}
	return want == got
}
