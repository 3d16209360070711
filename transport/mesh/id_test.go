package mesh

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// TestTransferIDsStayTheSame pins ids computed before domain.DerivedID was
// shared (by the meshpoll handler's own recipe): an upgrade must not give a
// message listed again a second transfer.
func TestTransferIDsStayTheSame(t *testing.T) {
	if got, want := TransferID("X26ABC1", "20261130091500123456_ABCDEF"), "01M8NVRWH0CZQH3M4PNF2V5YSJ"; got != want {
		t.Errorf("id = %s, want %s as before", got, want)
	}
	if got, want := TransferID("X26ABC1", "not-a-time"), "0000000000WZYX11FB3S4VFJCW"; got != want {
		t.Errorf("id of a message id without a time = %s, want %s as before", got, want)
	}
}

func TestTransferID(t *testing.T) {
	const (
		mailbox = "X26ABC1"
		other   = "X26ABC2"
		msg1    = "20250301085900123456_A1B2C3"
		msg2    = "20250301085930654321_D4E5F6"
	)
	base := TransferID(mailbox, msg1)

	t.Run("deterministic", func(t *testing.T) {
		if again := TransferID(mailbox, msg1); again != base {
			t.Errorf("got %s then %s", base, again)
		}
	})

	t.Run("distinct per mailbox and message", func(t *testing.T) {
		ids := map[string]string{"base": base}
		for name, id := range map[string]string{
			"mailbox":    TransferID(other, msg1),
			"message":    TransferID(mailbox, msg2),
			"same time":  TransferID(mailbox, msg1[:20]+"_ZZZZZZ"),
			"boundaries": TransferID(mailbox+msg1[:1], msg1[1:]),
		} {
			for seen, sid := range ids {
				if id == sid {
					t.Errorf("%s and %s give the same id %s", name, seen, id)
				}
			}
			ids[name] = id
		}
	})

	t.Run("a ULID of the message's time", func(t *testing.T) {
		for _, tt := range []struct {
			msgID string
			want  time.Time
		}{
			{msg1, time.Date(2025, 3, 1, 8, 59, 0, 0, time.UTC)},
			{"20200529155357895317_3573F8", time.Date(2020, 5, 29, 15, 53, 57, 0, time.UTC)},
			{"20311231235959000000_LATE", time.Date(2031, 12, 31, 23, 59, 59, 0, time.UTC)},
		} {
			id := TransferID(mailbox, tt.msgID)
			u, err := ulid.ParseStrict(id)
			if err != nil {
				t.Fatalf("%s is not a ULID: %v", id, err)
			}
			if got := ulid.Time(u.Time()); !got.Equal(tt.want) {
				t.Errorf("%s: ULID time = %v, want %v", tt.msgID, got.UTC(), tt.want)
			}
		}
		if later := TransferID(mailbox, msg2); !(base < later) {
			t.Errorf("ids do not sort by message time: %s >= %s", base, later)
		}
	})

	t.Run("a message id without a time", func(t *testing.T) {
		id := TransferID(mailbox, "not-a-mesh-id")
		if _, err := ulid.ParseStrict(id); err != nil {
			t.Errorf("%s is not a ULID: %v", id, err)
		}
		if id != TransferID(mailbox, "not-a-mesh-id") {
			t.Errorf("not deterministic")
		}
	})
}
