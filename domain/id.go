package domain

import (
	"crypto/sha256"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// DerivedID is ferry's one recipe for a deterministic transfer id: a ULID
// whose time part is at, so ids sort by when their file arrived, and whose
// random part is the first 10 bytes of the SHA-256 of parts joined by NUL.
// The same parts always give the same id, so a source that reports one file
// twice (an S3 notification delivered again, a MESH inbox listed again)
// creates one transfer: the second append of version 1 loses the
// conditional write. A time outside ULID's range (before 1970, or none)
// gives time part zero.
//
// Each source names its file by its own parts (ObjectTransferID for an S3
// object version, mesh.TransferID for a MESH message); the first part, or
// the number of parts, keeps the sources' ids apart.
func DerivedID(at time.Time, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	var id ulid.ULID
	if err := id.SetTime(ulid.Timestamp(at)); err != nil {
		_ = id.SetTime(0)
	}
	if err := id.SetEntropy(sum[:10]); err != nil {
		panic(err) // 10 bytes is always the right length
	}
	return id.String()
}

// ObjectTransferID is the transfer id of an S3 object version: DerivedID of
// its LastModified and identity (bucket, key, version id, ETag without
// quotes, and LastModified). The intake handler names transfers with it;
// a sender that has just uploaded an object can compute the id itself from
// a HeadObject of that version (`ferry send` does).
func ObjectTransferID(bucket, key, versionID, etag string, lastModified time.Time) string {
	lastModified = lastModified.UTC()
	// The empty last part is a trailing NUL: ids of object versions have
	// always ended their hashed identity with one, and must stay the same.
	return DerivedID(lastModified, bucket, key, versionID, strings.Trim(etag, `"`), lastModified.Format(time.RFC3339Nano), "")
}
