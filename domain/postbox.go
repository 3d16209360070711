package domain

import (
	"regexp"
	"strings"
)

// PostboxPrefix is where the HTTP API puts the files posted to it, in the
// upload bucket: under outbound/, so that routes match them as any upload.
const PostboxPrefix = "outbound/postbox/"

var (
	partyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	ulidText  = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
)

// ValidID reports whether id is a transfer id as ferry writes them: a ULID,
// 26 characters of Crockford's base32 in upper case.
func ValidID(id string) bool { return ulidText.MatchString(id) }

// ValidParty reports whether name may name a party (an API key's sender or
// recipient): 1-128 letters, digits and . _ : @ -, starting with a letter
// or digit, so it is safe in S3 keys and log lines.
func ValidParty(name string) bool { return partyName.MatchString(name) }

// PostboxKey is the key of a file the HTTP API takes from party for
// transfer id: outbound/postbox/{party}/{id}/{filename}. The key names the
// transfer: intake gives an upload under it that id and that sender, so a
// file uploaded through a presigned URL becomes the transfer the API
// promised, and a posted file's notification finds its transfer made.
func PostboxKey(party, id, filename string) string {
	return PostboxPrefix + party + "/" + id + "/" + filename
}

// ParsePostboxKey returns the party and transfer id a postbox key names;
// ok is false for any other key.
func ParsePostboxKey(key string) (party, id string, ok bool) {
	rest, found := strings.CutPrefix(key, PostboxPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || !ValidParty(parts[0]) || !ValidID(parts[1]) || parts[2] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}
