package s3transport

import (
	"net/url"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/domain"
)

// MaxUserMetadata is S3's limit on an object's user metadata: 2 KB, counted
// as the UTF-8 bytes of every key (without the x-amz-meta- prefix) and
// value.
const MaxUserMetadata = 2048

// MetadataDropped is the user metadata key listing, comma-separated, the
// mex-* headers that did not fit in an object's metadata.
const MetadataDropped = "ferry-dropped-metadata"

// metadataPriority orders a MESH message's headers by how much a consumer
// of the landed object needs them. Short identifiers come first: what the
// message is and who sent it to whom (messageid, from, to, workflowid,
// messagetype), and for a report which message it is about and how it
// ended (linkedmsgid, statuscode). Then the sender's free text, which is
// what grows (filename, localid, subject: up to 300, 300 and 500
// characters, tripled by quote_plus), then the rest of the report and the
// content flags. Headers not named here follow, in name order.
var metadataPriority = []string{
	"mex-messageid", "mex-from", "mex-to", "mex-workflowid", "mex-messagetype",
	"mex-linkedmsgid", "mex-statuscode",
	"mex-filename", "mex-localid", "mex-subject",
	"mex-statusevent", "mex-statussuccess", "mex-statustimestamp", "mex-statusdescription",
	"mex-content-checksum", "mex-content-encrypted", "mex-content-compressed", "mex-content-type",
	"mex-partnerid",
}

// droppedReserve is the room kept for ferry-dropped-metadata when some
// headers do not fit: the key and about five header names.
const droppedReserve = len(MetadataDropped) + 100

// ObjectMetadata returns the delivered object's user metadata, and the
// names of the mex-* headers it leaves out (in priority order). It always
// holds ferry-transfer-id. For a MESH source it adds the message's mex-*
// headers (keys lower-case, values quote_plus-encoded as NHS England's MESH
// client writes them) in the order of metadataPriority, each one that fits
// in MaxUserMetadata. When some do not fit, it does the same again in
// MaxUserMetadata less droppedReserve, and lists the headers left out under
// ferry-dropped-metadata, comma-separated, cut short with "..." if the list
// is longer than the room left. Every header stays in the transfer's
// Requested event. The result never exceeds MaxUserMetadata.
func ObjectMetadata(t domain.State) (md map[string]string, dropped []string) {
	md = map[string]string{MetadataTransferID: t.ID}
	if t.Request.Source.Kind == "s3" {
		return md, nil
	}
	type entry struct{ k, v string }
	var entries []entry
	for k, v := range t.Request.Metadata {
		if k = strings.ToLower(k); strings.HasPrefix(k, "mex-") {
			entries = append(entries, entry{k, url.QueryEscape(v)})
		}
	}
	rank := func(k string) int {
		if i := slices.Index(metadataPriority, k); i >= 0 {
			return i
		}
		return len(metadataPriority)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if ra, rb := rank(a.k), rank(b.k); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.k, b.k)
	})
	fill := func(budget int) (size int, kept []entry, dropped []string) {
		size = len(MetadataTransferID) + len(t.ID)
		for _, e := range entries {
			if size+len(e.k)+len(e.v) <= budget {
				kept = append(kept, e)
				size += len(e.k) + len(e.v)
			} else {
				dropped = append(dropped, e.k)
			}
		}
		return size, kept, dropped
	}
	_, kept, dropped := fill(MaxUserMetadata)
	if len(dropped) > 0 {
		var size int
		size, kept, dropped = fill(MaxUserMetadata - droppedReserve)
		list := strings.Join(dropped, ",")
		if room := MaxUserMetadata - size - len(MetadataDropped); len(list) > room {
			list = list[:room-len("...")] + "..."
		}
		md[MetadataDropped] = list
	}
	for _, e := range kept {
		md[e.k] = e.v
	}
	return md, dropped
}

// MetadataSize returns the size S3 counts for user metadata md: the bytes
// of every key and value.
func MetadataSize(md map[string]string) int {
	n := 0
	for k, v := range md {
		n += len(k) + len(v)
	}
	return n
}
