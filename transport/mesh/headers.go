package mesh

import (
	"net/http"
	"strconv"
	"strings"
)

// The header names MESH uses, in the spelling of its API specification
// (HTTP header names are case-insensitive).
const (
	hdrTo                = "mex-To"
	hdrFrom              = "mex-From"
	hdrWorkflowID        = "mex-WorkflowID"
	hdrSubject           = "mex-Subject"
	hdrLocalID           = "mex-LocalID"
	hdrPartnerID         = "mex-PartnerID"
	hdrFileName          = "mex-FileName"
	hdrChecksum          = "mex-Content-Checksum"
	hdrEncrypted         = "mex-Content-Encrypted"
	hdrCompressed        = "mex-Content-Compressed"
	hdrContentType       = "mex-Content-Type"
	hdrChunkRange        = "mex-Chunk-Range"
	hdrTotalChunks       = "mex-Total-Chunks"
	hdrMessageID         = "mex-MessageID"
	hdrMessageType       = "mex-MessageType"
	hdrLinkedMsgID       = "mex-LinkedMsgID"
	hdrStatusCode        = "mex-StatusCode"
	hdrStatusEvent       = "mex-StatusEvent"
	hdrStatusDescription = "mex-StatusDescription"
	hdrStatusSuccess     = "mex-StatusSuccess"
	hdrStatusTimestamp   = "mex-StatusTimestamp"
	hdrClientVersion     = "mex-ClientVersion"
	hdrOSName            = "mex-OSName"
	hdrOSVersion         = "mex-OSVersion"
	hdrOSArchitecture    = "mex-OSArchitecture"
)

// Message types a downloaded message can have.
const (
	MessageTypeData   = "DATA"
	MessageTypeReport = "REPORT"
)

// MessageHeaders are the mex-* headers of a downloaded message.
type MessageHeaders struct {
	MessageID   string
	From        string // "" for reports MESH itself raised
	To          string
	WorkflowID  string
	Subject     string
	LocalID     string
	PartnerID   string
	FileName    string // MESH supplies "{MessageID}.dat" when the sender gave none
	MessageType string // MessageTypeData or MessageTypeReport
	ContentType string // mex-Content-Type: the sender's media type, if given

	// LinkedMsgID is, on a REPORT, the message the report is about.
	LinkedMsgID string
	// StatusCode is "00" for a successful transfer; anything else on a
	// REPORT is an error (e.g. "14" undelivered).
	StatusCode        string
	StatusEvent       string // e.g. TRANSFER, SEND
	StatusDescription string
	StatusSuccess     string // SUCCESS or ERROR
	StatusTimestamp   string // yyyyMMddHHmmss

	Checksum string // mex-Content-Checksum as the sender gave it
	// ContentCompressed is mex-Content-Compressed: the sender says the data
	// itself is compressed. Beware: the sandbox (and perhaps MESH) also sets
	// it whenever the response is gzip-encoded for transport, so it is
	// only trustworthy when Download.ContentEncoding is "".
	ContentCompressed bool
	ContentEncrypted  bool // mex-Content-Encrypted

	// All holds every mex-* response header, keys lower-case.
	All map[string]string
}

// parseHeaders reads the mex-* headers of a response.
func parseHeaders(h http.Header) MessageHeaders {
	all := make(map[string]string)
	for k, v := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "mex-") && len(v) > 0 {
			all[lk] = v[0]
		}
	}
	get := func(name string) string { return all[strings.ToLower(name)] }
	return MessageHeaders{
		MessageID:         get(hdrMessageID),
		From:              get(hdrFrom),
		To:                get(hdrTo),
		WorkflowID:        get(hdrWorkflowID),
		Subject:           get(hdrSubject),
		LocalID:           get(hdrLocalID),
		PartnerID:         get(hdrPartnerID),
		FileName:          get(hdrFileName),
		MessageType:       strings.ToUpper(get(hdrMessageType)),
		ContentType:       get(hdrContentType),
		LinkedMsgID:       get(hdrLinkedMsgID),
		StatusCode:        get(hdrStatusCode),
		StatusEvent:       get(hdrStatusEvent),
		StatusDescription: get(hdrStatusDescription),
		StatusSuccess:     get(hdrStatusSuccess),
		StatusTimestamp:   get(hdrStatusTimestamp),
		Checksum:          get(hdrChecksum),
		ContentCompressed: truthy(get(hdrCompressed)),
		ContentEncrypted:  truthy(get(hdrEncrypted)),
		All:               all,
	}
}

// chunkRange reads "n:N" from mex-Chunk-Range, falling back to
// mex-Total-Chunks and then to 1:1. A total below the chunk number (MESH
// sends "1:0" on reports, which have no data) becomes the chunk number.
func chunkRange(h http.Header, requested int) (chunk, total int) {
	chunk, total = requested, 0
	if n, tot, ok := strings.Cut(h.Get(hdrChunkRange), ":"); ok {
		if v, err := strconv.Atoi(strings.TrimSpace(n)); err == nil && v > 0 {
			chunk = v
		}
		if v, err := strconv.Atoi(strings.TrimSpace(tot)); err == nil {
			total = v
		}
	} else if v, err := strconv.Atoi(strings.TrimSpace(h.Get(hdrTotalChunks))); err == nil {
		total = v
	}
	if total < chunk {
		total = chunk
	}
	return chunk, total
}

// truthy reads MESH's flag values (Y/N, and the spellings Python's
// strtobool accepts).
func truthy(v string) bool {
	b, ok := parseBool(v)
	return ok && b
}

// parseBool accepts y, yes, t, true, on, 1 and n, no, f, false, off, 0 in
// any case, as the seed's strtobool does.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "t", "true", "on", "1":
		return true, true
	case "n", "no", "f", "false", "off", "0":
		return false, true
	}
	return false, false
}
