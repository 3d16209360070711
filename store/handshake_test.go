package store

import (
	"testing"
	"time"
)

// The handshake item travels on the table's stream like every item; the
// stream readers must not take it for an event.
func TestHandshakeItemIsNoEvent(t *testing.T) {
	item := handshakeKey("X26ABC1")
	item[attrAt] = str(formatTime(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)))
	img := image(t, item)
	if IsEventImage(img) {
		t.Fatalf("IsEventImage(handshake item %v) = true", img)
	}
	if _, _, err := DecodeImage(img); err == nil {
		t.Errorf("DecodeImage(handshake item) succeeded, want an error")
	}
}
