package mesh

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuthScheme is the Authorization scheme MESH uses.
const AuthScheme = "NHSMESH"

// AuthHeader returns the Authorization header value for one MESH request:
//
//	NHSMESH {MAILBOX}:{nonce}:{nonceCount}:{yyyyMMddHHmm}:{hmac}
//
// where the mailbox is upper-cased, the timestamp is t in UTC, and hmac is
// the lower-case hex HMAC-SHA256, keyed with sharedKey, of
// "{MAILBOX}:{nonce}:{nonceCount}:{password}:{timestamp}". The result
// carries the HMAC, never the password or key.
func AuthHeader(mailbox, password, sharedKey, nonce string, nonceCount int, t time.Time) string {
	mailbox = strings.ToUpper(mailbox)
	ts := t.UTC().Format("200601021504")
	count := strconv.Itoa(nonceCount)
	mac := hmac.New(sha256.New, []byte(sharedKey))
	mac.Write([]byte(mailbox + ":" + nonce + ":" + count + ":" + password + ":" + ts))
	return AuthScheme + " " + mailbox + ":" + nonce + ":" + count + ":" + ts + ":" + hex.EncodeToString(mac.Sum(nil))
}

// newNonce returns a random version-4 UUID from crypto/rand. A token is
// single-use on the real service, so every request gets a fresh one.
func newNonce() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a predictable
		// nonce would be worse than stopping.
		panic("mesh: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
