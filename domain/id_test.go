package domain

import (
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// The object version these tests name.
const (
	bucket  = "ferry-outbound"
	key     = "outbound/monthly report (2).csv"
	version = "3HL4kqtJvjVBH40Nrjfkd"
	etag    = `"9b2cf535f27731c974343645a3985328-3"`
)

var lastModified = time.Date(2025, 3, 1, 9, 0, 1, 0, time.UTC)

// TestDerivedIDsStayTheSame pins ids computed before DerivedID was shared
// (by the intake handler's own recipe; mesh.TransferID's are pinned in
// transport/mesh): a transfer's id must
// not change when ferry is upgraded, or a notification delivered again
// after the upgrade would start a second transfer.
func TestDerivedIDsStayTheSame(t *testing.T) {
	lm := time.Date(2026, 11, 30, 9, 15, 0, 123000000, time.UTC)
	for _, tt := range []struct{ name, got, want string }{
		{"object version", ObjectTransferID("ferry-local", "outbound/a b.csv", "v1", `"etag"`, lm), "01M8NVRWMV721XZ3NWNZRARXWN"},
		{"object without version or time", ObjectTransferID("b", "k", "", "e", time.Time{}), "00000000002K3VA7659V1EASP4"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: id = %s, want %s as before", tt.name, tt.got, tt.want)
		}
	}
}

func TestObjectTransferID(t *testing.T) {
	base := ObjectTransferID(bucket, key, version, etag, lastModified)

	t.Run("deterministic", func(t *testing.T) {
		if again := ObjectTransferID(bucket, key, version, etag, lastModified); again != base {
			t.Errorf("got %s then %s", base, again)
		}
		if other := ObjectTransferID(bucket, key, version, etag, lastModified.In(time.FixedZone("X", 3600))); other != base {
			t.Errorf("same instant in another zone: %s, want %s", other, base)
		}
		if unquoted := ObjectTransferID(bucket, key, version, strings.Trim(etag, `"`), lastModified); unquoted != base {
			t.Errorf("unquoted ETag gives %s, want %s", unquoted, base)
		}
	})

	t.Run("distinct per object version", func(t *testing.T) {
		ids := map[string]string{"base": base}
		for name, id := range map[string]string{
			"version":       ObjectTransferID(bucket, key, "other-version", etag, lastModified),
			"no version":    ObjectTransferID(bucket, key, "", etag, lastModified),
			"etag":          ObjectTransferID(bucket, key, version, `"0000"`, lastModified),
			"key":           ObjectTransferID(bucket, key+"x", version, etag, lastModified),
			"bucket":        ObjectTransferID(bucket+"x", key, version, etag, lastModified),
			"last modified": ObjectTransferID(bucket, key, version, etag, lastModified.Add(time.Second)),
			// Field boundaries count: "ab"+"c" is not "a"+"bc".
			"boundaries": ObjectTransferID(bucket, key[:len(key)-1], key[len(key)-1:]+version, etag, lastModified),
		} {
			for other, seen := range ids {
				if id == seen {
					t.Errorf("%s and %s give the same id %s", name, other, id)
				}
			}
			ids[name] = id
		}
	})

	t.Run("a ULID of LastModified", func(t *testing.T) {
		for _, lm := range []time.Time{lastModified, lastModified.Add(1500 * time.Millisecond), time.Date(2031, 12, 31, 23, 59, 59, 0, time.UTC)} {
			id := ObjectTransferID(bucket, key, version, etag, lm)
			u, err := ulid.ParseStrict(id)
			if err != nil {
				t.Fatalf("%s is not a ULID: %v", id, err)
			}
			if got := ulid.Time(u.Time()); !got.Equal(lm.Truncate(time.Millisecond)) {
				t.Errorf("ULID time = %v, want %v", got.UTC(), lm)
			}
		}
		later := ObjectTransferID(bucket, key, version, etag, lastModified.Add(time.Millisecond))
		if !(base < later) {
			t.Errorf("ids do not sort by upload time: %s >= %s", base, later)
		}
	})
}
