package intake

import (
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/domain"
)

// addressedMeta is metadata that addresses an upload fully, plus extra
// key/value pairs.
func addressedMeta(extra ...string) map[string]string {
	md := map[string]string{"mex-from": "X26ABC1", "mex-to": "X26ABC2", "mex-workflowid": "W"}
	for i := 0; i+1 < len(extra); i += 2 {
		md[extra[i]] = extra[i+1]
	}
	return md
}

func TestMESHUploadWithLatin1TextAccepted(t *testing.T) {
	// quote_plus of "£100 for the café" and "réf-1", as NHS England's client writes them.
	evs := meshUpload(t, meshOutbound(), "outbound/mesh/f.csv", object{size: 10, metadata: addressedMeta(
		"mex-subject", "%C2%A3100+for+the+caf%C3%A9", "mex-localid", "r%C3%A9f-1")})
	req := requestOf(t, evs)
	if got := req.Metadata["mex-subject"]; got != "£100 for the café" {
		t.Errorf("subject = %q, want %q", got, "£100 for the café")
	}
	if got := req.Metadata["mex-localid"]; got != "réf-1" {
		t.Errorf("local id = %q, want %q", got, "réf-1")
	}
}

func TestMESHUploadWithTextOutsideLatin1Rejected(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		metadata map[string]string
		field    string
	}{
		{"euro in mex-subject", "outbound/mesh/f.csv", addressedMeta("mex-subject", "%E2%82%AC100"), "mex-subject"},
		{"tick in ferry's subject", "outbound/mesh/f.csv", addressedMeta("subject", "done+%E2%9C%93"), "mex-subject"},
		{"tick in mex-localid", "outbound/mesh/f.csv", addressedMeta("mex-localid", "%E2%9C%93"), "mex-localid"},
		{"Japanese file name", "outbound/mesh/f.csv", addressedMeta("mex-filename", "%E6%97%A5%E6%9C%AC.csv"), "mex-filename"},
		{"file name from the key", "outbound/mesh/X26ABC1/€.csv", nil, "mex-filename"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := meshUpload(t, meshOutbound(), tt.key, object{size: 10, metadata: tt.metadata})
			if got, want := eventTypes(evs), []domain.EventType{domain.TypeRequested, domain.TypeFailed}; !slices.Equal(got, want) {
				t.Fatalf("events = %v, want %v", got, want)
			}
			fl := evs[1].Payload.(domain.Failed)
			if fl.Kind != domain.KindInvalid || fl.Code != "INVALID_METADATA" || fl.Retryable {
				t.Errorf("failure %s/%q retryable %t, want final %s/INVALID_METADATA", fl.Kind, fl.Code, fl.Retryable, domain.KindInvalid)
			}
			if !strings.Contains(fl.Message, tt.field) || !strings.Contains(fl.Message, "ISO-8859-1") {
				t.Errorf("message %q does not name %s and ISO-8859-1", fl.Message, tt.field)
			}
		})
	}
}
