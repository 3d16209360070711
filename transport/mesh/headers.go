package mesh

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
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

// parseHeaders reads the mex-* headers of a response. Header values are
// bytes; MESH and NHS England's clients write them as ISO-8859-1, so each
// byte is read as the character of that code (0xA3 is "£") and the values
// returned are ordinary UTF-8 Go strings.
func parseHeaders(h http.Header) MessageHeaders {
	all := make(map[string]string)
	for k, v := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "mex-") && len(v) > 0 {
			all[lk] = fromLatin1(v[0])
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

// toLatin1 returns s (UTF-8) as ISO-8859-1 bytes, one byte per character,
// for a header value on the wire. ok is false when s holds a character
// ISO-8859-1 cannot carry (above U+00FF) or is not valid UTF-8; the value
// must then not be sent.
func toLatin1(s string) (latin1 string, ok bool) {
	if isASCII(s) {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff || r == utf8.RuneError {
			return "", false
		}
		b = append(b, byte(r))
	}
	return string(b), true
}

// isASCII reports whether s is all ASCII: the same text in UTF-8 and in
// ISO-8859-1, so neither conversion needs to copy it.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isLatin1 reports whether toLatin1 can encode s.
func isLatin1(s string) bool {
	_, ok := toLatin1(s)
	return ok
}

// fromLatin1 reads header bytes as ISO-8859-1 and returns them as UTF-8.
// Every byte sequence is valid ISO-8859-1, so nothing is lost or replaced.
func fromLatin1(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
