package intake

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/mesh"
)

// MeshOutbound is what intake needs to address an upload to MESH, as
// NHS England's MESH client does: from, to and workflow come from the
// object's mex-from, mex-to and mex-workflowid metadata; when mex-from is
// absent, the mailbox whose folder the file was put in (the first folder
// under the route's prefix, outbound/mesh/X26ABC1/file.csv) supplies them
// from its outbound mappings.
type MeshOutbound struct {
	// Mailboxes are the sending mailboxes ferry holds credentials for, by
	// upper-case id, with their outbound mappings (first one wins).
	Mailboxes map[string][]MeshMapping
	Compress  mesh.CompressOptions
}

// MeshMapping is a default recipient and workflow for a sending mailbox.
type MeshMapping struct{ To, Workflow string }

// address completes req for a MESH route, or returns why it cannot.
func (m *MeshOutbound) address(req *domain.Requested, route domain.Route, head *s3.HeadObjectOutput) *domain.Error {
	if m == nil {
		return reasonf("route %s sends to MESH, but no MESH environment is configured", route.Name).WithCode("NO_MESH")
	}
	if req.Sender == "" {
		folder, _, inFolder := strings.Cut(strings.TrimPrefix(req.Source.Key, route.Match.Prefix), "/")
		if maps := m.Mailboxes[strings.ToUpper(folder)]; len(maps) > 0 && inFolder {
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
	for _, f := range []struct{ name, v string }{{mexFrom, req.Sender}, {mexTo, req.Recipient}, {mexWorkflow, req.Workflow}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return reasonf("missing metadata: %s (no outbound mapping supplies it)", strings.Join(missing, ", ")).WithCode("MISSING_METADATA")
	}
	req.Sender, req.Recipient = strings.ToUpper(req.Sender), strings.ToUpper(req.Recipient)
	if _, ok := m.Mailboxes[req.Sender]; !ok {
		return reasonf("mex-from %s is not a mailbox ferry can send from", req.Sender).WithCode("UNKNOWN_MAILBOX")
	}
	// MESH header values are ISO-8859-1 (as NHS England's clients write and
	// read them): refuse text that would arrive garbled, naming the field.
	if bad := mesh.MessageOf(*req).NotLatin1(); len(bad) > 0 {
		return reasonf("metadata %s cannot be sent to MESH: header values must be ISO-8859-1 (Latin-1) text", strings.Join(bad, ", ")).WithCode("INVALID_METADATA")
	}
	req.ExpectAck = true
	req.Compress = mesh.ShouldCompress(head.Metadata, aws.ToString(head.ContentEncoding), req.Size, m.Compress)
	return nil
}
