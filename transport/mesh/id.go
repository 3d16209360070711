package mesh

import (
	"time"

	"github.com/ferryhq/ferry/domain"
)

// TransferID is the id of the inbound transfer of a MESH message:
// domain.DerivedID of the message's time (MESH ids begin yyyyMMddHHmmss)
// and its mailbox and message id. Listing the message again yields the
// same id, so it is registered once.
func TransferID(mailbox, msgID string) string {
	return domain.DerivedID(ParseTime(msgID), "mesh", mailbox, msgID)
}

// ParseTime reads MESH's yyyyMMddHHmmss timestamps (message ids and report
// times begin with one); the zero time when s does not begin with one.
func ParseTime(s string) time.Time {
	if len(s) < 14 {
		return time.Time{}
	}
	t, err := time.Parse("20060102150405", s[:14])
	if err != nil {
		return time.Time{}
	}
	return t
}
