package intake

import (
	"crypto/sha256"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// TransferID derives the transfer id of an S3 object version. The same
// object version always yields the same id, so a notification delivered
// twice creates one transfer: the second append of version 1 loses the
// conditional write. The id is a ULID whose time part is the object's
// LastModified, so ids sort by upload time; its random part is a hash of the
// object's identity (bucket, key, version id, ETag and LastModified).
//
// A sender that has just uploaded an object can compute the id itself from a
// HeadObject of that version (`ferry send` does).
func TransferID(bucket, key, versionID, etag string, lastModified time.Time) string {
	lastModified = lastModified.UTC()
	h := sha256.New()
	for _, part := range []string{bucket, key, versionID, strings.Trim(etag, `"`), lastModified.Format(time.RFC3339Nano)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	var id ulid.ULID
	if err := id.SetTime(ulid.Timestamp(lastModified)); err != nil {
		// Times before 1970 or after 10889 cannot be ULID times; use zero.
		_ = id.SetTime(0)
	}
	if err := id.SetEntropy(h.Sum(nil)[:10]); err != nil {
		panic(err) // 10 bytes is always the right length
	}
	return id.String()
}
