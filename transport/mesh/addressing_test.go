package mesh

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/domain"
)

func TestConfigAddressing(t *testing.T) {
	c := Config{
		Mailboxes: []Mailbox{
			{ID: "x26abc1", OutboundMappings: []Mapping{{To: "x26abc2", Workflow: "TEST_WORKFLOW"}, {To: "X26ABC3", Workflow: "SECOND"}}},
			{ID: "X26ABC2"},
		},
		CompressThreshold: 4 << 10,
		NeverCompress:     true,
	}
	want := &Addressing{
		Mailboxes: map[string][]Mapping{
			"X26ABC1": {{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}, {To: "X26ABC3", Workflow: "SECOND"}},
			"X26ABC2": nil,
		},
		Compress: CompressOptions{Threshold: 4 << 10, Never: true},
	}
	if got := c.Addressing(); !reflect.DeepEqual(got, want) {
		t.Errorf("Addressing() = %+v, want %+v", got, want)
	}
}

func TestAddress(t *testing.T) {
	a := &Addressing{
		Mailboxes: map[string][]Mapping{"X26ABC1": {{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}}, "X26ABC3": nil},
		Compress:  CompressOptions{Threshold: 100},
	}
	route := domain.Route{Name: "mesh-out", Match: domain.Match{Prefix: "outbound/"}, Destination: domain.Destination{Type: "mesh"}}
	tests := []struct {
		name                  string
		key                   string
		from, to, workflow    string
		metadata              map[string]string
		want                  [3]string // from, to, workflow after addressing
		wantCode, wantMessage string
	}{
		{name: "by metadata", key: "outbound/f.csv", from: "x26abc3", to: "x26abc1", workflow: "W", want: [3]string{"X26ABC3", "X26ABC1", "W"}},
		{name: "by folder", key: "outbound/x26abc1/f.csv", want: [3]string{"X26ABC1", "X26ABC2", "TEST_WORKFLOW"}},
		{name: "folder, metadata recipient wins", key: "outbound/X26ABC1/f.csv", to: "X26ABC3", want: [3]string{"X26ABC1", "X26ABC3", "TEST_WORKFLOW"}},
		{name: "a file named like a mailbox is no folder", key: "outbound/X26ABC1",
			wantCode: "MISSING_METADATA", wantMessage: "missing metadata: mex-from, mex-to, mex-workflowid"},
		{name: "folder of a mailbox without mappings", key: "outbound/X26ABC3/f.csv",
			wantCode: "MISSING_METADATA", wantMessage: "missing metadata: mex-from, mex-to, mex-workflowid"},
		{name: "no workflow", key: "outbound/f.csv", from: "X26ABC1", to: "X26ABC2",
			wantCode: "MISSING_METADATA", wantMessage: "missing metadata: mex-workflowid"},
		{name: "unknown sender", key: "outbound/f.csv", from: "x26zzz9", to: "X26ABC2", workflow: "W",
			wantCode: "UNKNOWN_MAILBOX", wantMessage: "mex-from X26ZZZ9 is not a mailbox"},
		{name: "subject outside ISO-8859-1", key: "outbound/X26ABC1/f.csv", metadata: map[string]string{"mex-subject": "€100"},
			wantCode: "INVALID_METADATA", wantMessage: "metadata mex-subject cannot be sent to MESH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := domain.Requested{
				Source: domain.Source{Kind: "s3", Bucket: "b", Key: tt.key},
				Sender: tt.from, Recipient: tt.to, Workflow: tt.workflow,
				Filename: "f.csv", Size: 10, Metadata: tt.metadata,
			}
			reason := a.Address(&req, route, nil, "")
			if tt.wantCode != "" {
				if reason == nil {
					t.Fatalf("Address = nil, want %s", tt.wantCode)
				}
				if reason.Kind != domain.KindInvalid || reason.Code != tt.wantCode || !strings.Contains(reason.Message, tt.wantMessage) {
					t.Errorf("Address = %s/%s %q, want %s/%s saying %q", reason.Kind, reason.Code, reason.Message, domain.KindInvalid, tt.wantCode, tt.wantMessage)
				}
				return
			}
			if reason != nil {
				t.Fatalf("Address = %v, want nil", reason)
			}
			if got := [3]string{req.Sender, req.Recipient, req.Workflow}; got != tt.want {
				t.Errorf("from, to, workflow = %q, want %q", got, tt.want)
			}
			if !req.ExpectAck {
				t.Error("ExpectAck = false, want true: MESH acknowledges deliveries")
			}
		})
	}

	t.Run("compression follows ShouldCompress", func(t *testing.T) {
		for _, tt := range []struct {
			size     int64
			metadata map[string]string
			encoding string
			want     bool
		}{
			{100, nil, "", true},
			{99, nil, "", false},
			{100, nil, "gzip", false},
			{99, map[string]string{"Mex-Content-Compress": "Y"}, "", true},
			{100, map[string]string{"mex-content-compressed": "Y"}, "", false},
		} {
			req := domain.Requested{Source: domain.Source{Key: "outbound/X26ABC1/f.csv"}, Size: tt.size}
			if reason := a.Address(&req, route, tt.metadata, tt.encoding); reason != nil {
				t.Fatalf("Address = %v", reason)
			}
			if req.Compress != tt.want || req.Compress != ShouldCompress(tt.metadata, tt.encoding, tt.size, a.Compress) {
				t.Errorf("size %d, metadata %v, encoding %q: Compress = %t, want %t", tt.size, tt.metadata, tt.encoding, req.Compress, tt.want)
			}
		}
	})
}

func TestInboundConfigLand(t *testing.T) {
	data := MessageHeaders{MessageType: MessageTypeData, FileName: "report.csv"}
	noName := MessageHeaders{MessageType: MessageTypeData}
	report := MessageHeaders{MessageType: MessageTypeReport, FileName: "report.csv"}
	tests := []struct {
		name       string
		in         InboundConfig
		h          MessageHeaders
		wantPrefix string
		wantFile   string
	}{
		{"default prefix", InboundConfig{Bucket: "in"}, data, "inbound/X26ABC1/", "M1.dat"},
		{"configured prefix", InboundConfig{Bucket: "in", Prefix: "mesh/in/"}, data, "mesh/in/X26ABC1/", "M1.dat"},
		{"sender's filename", InboundConfig{Bucket: "in", UseSenderFilename: true}, data, "inbound/X26ABC1/", "report.csv"},
		{"sender gave none", InboundConfig{Bucket: "in", UseSenderFilename: true}, noName, "inbound/X26ABC1/", "M1.dat"},
		{"report", InboundConfig{Bucket: "in", UseSenderFilename: true}, report, "inbound/X26ABC1/", "M1.ctl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dest, file := tt.in.Land("X26ABC1", "M1", tt.h)
			if want := (domain.Destination{Type: "s3", Bucket: "in", Prefix: tt.wantPrefix}); dest != want || file != tt.wantFile {
				t.Errorf("Land = %+v, %q; want %+v, %q", dest, file, want, tt.wantFile)
			}
		})
	}
}
