package mesh

import (
	"strings"

	"github.com/ferryhq/ferry/domain"
)

// Addressing addresses uploads on routes to MESH as NHS England's MESH
// client does: from, to and workflow come from the upload's mex-from,
// mex-to and mex-workflowid metadata (which the request already carries as
// sender, recipient and workflow); when mex-from is absent, the mailbox
// whose folder the file was put in (the first folder under the route's
// prefix, outbound/mesh/X26ABC1/file.csv) supplies them from its outbound
// mappings. Config.Addressing builds it.
type Addressing struct {
	// Mailboxes are the sending mailboxes ferry holds credentials for, by
	// upper-case id, with their outbound mappings (the first one wins).
	Mailboxes map[string][]Mapping
	// Compress is the operator's compression settings (ShouldCompress).
	Compress CompressOptions
}

// Address completes req, an upload on route, for MESH: sender, recipient
// and workflow (upper-case mailbox ids), ExpectAck, and Compress by the
// seed's rule (ShouldCompress) from the object's raw user metadata and its
// Content-Encoding. It returns why the upload cannot be sent instead, each
// a KindInvalid *domain.Error with a code: MISSING_METADATA naming the
// fields no metadata or mapping supplies, UNKNOWN_MAILBOX for a sender
// ferry holds no credentials for, INVALID_METADATA naming the header
// fields that ISO-8859-1 cannot carry.
func (a *Addressing) Address(req *domain.Requested, route domain.Route, metadata map[string]string, contentEncoding string) *domain.Error {
	if req.Sender == "" {
		folder, _, inFolder := strings.Cut(strings.TrimPrefix(req.Source.Key, route.Match.Prefix), "/")
		if maps := a.Mailboxes[strings.ToUpper(folder)]; len(maps) > 0 && inFolder {
			req.Sender = strings.ToUpper(folder)
			if req.Recipient == "" {
				req.Recipient = maps[0].To
			}
			if req.Workflow == "" {
				req.Workflow = maps[0].Workflow
			}
		}
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{hdrFrom, req.Sender}, {hdrTo, req.Recipient}, {hdrWorkflowID, req.Workflow}} {
		if f.v == "" {
			missing = append(missing, strings.ToLower(f.name))
		}
	}
	if len(missing) > 0 {
		return invalid("MISSING_METADATA", "missing metadata: %s (no outbound mapping supplies it)", strings.Join(missing, ", "))
	}
	req.Sender, req.Recipient = strings.ToUpper(req.Sender), strings.ToUpper(req.Recipient)
	if _, ok := a.Mailboxes[req.Sender]; !ok {
		return invalid("UNKNOWN_MAILBOX", "mex-from %s is not a mailbox ferry can send from", req.Sender)
	}
	// MESH header values are ISO-8859-1 (as NHS England's clients write and
	// read them): refuse text that would arrive garbled, naming the field.
	if bad := MessageOf(*req).NotLatin1(); len(bad) > 0 {
		return invalid("INVALID_METADATA", "metadata %s cannot be sent to MESH: header values must be ISO-8859-1 (Latin-1) text", strings.Join(bad, ", "))
	}
	req.ExpectAck = true
	req.Compress = ShouldCompress(metadata, contentEncoding, req.Size, a.Compress)
	return nil
}

// invalid is a KindInvalid error with code.
func invalid(code, format string, args ...any) *domain.Error {
	return domain.Errorf(domain.KindInvalid, format, args...).WithCode(code)
}
