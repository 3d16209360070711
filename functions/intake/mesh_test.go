package intake

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/mesh"
)

// meshRoutes sends uploads under outbound/mesh/ to MESH; the rest follow
// testRoutes.
var meshRoutes = domain.Routes{Routes: append([]domain.Route{{
	Name:        "mesh-out",
	Match:       domain.Match{Bucket: bucket, Prefix: "outbound/mesh/"},
	Destination: domain.Destination{Type: "mesh"},
	ChunkSize:   20 * domain.MiB,
	Retry:       domain.RetryPolicy{MaxAttempts: 5},
}}, testRoutes.Routes...)}

const meshThreshold = domain.MiB

// meshOutbound holds credentials for X26ABC1 (two mappings; the first
// wins) and X26ABC3 (none).
func meshOutbound() *mesh.Addressing {
	return &mesh.Addressing{
		Mailboxes: map[string][]mesh.Mapping{
			"X26ABC1": {{To: "X26ABC2", Workflow: "TEST_WORKFLOW"}, {To: "X26ABC3", Workflow: "SECOND_WORKFLOW"}},
			"X26ABC3": nil,
		},
		Compress: mesh.CompressOptions{Threshold: meshThreshold},
	}
}

// meshUpload puts obj at k (which must need no URL encoding), notifies
// intake of it and returns the transfer's events.
func meshUpload(t *testing.T, m *mesh.Addressing, k string, obj object) []domain.Event {
	t.Helper()
	f := newFixture(nil)
	f.h.Routes = meshRoutes
	if m != nil { // a nil *mesh.Addressing would be a non-nil Addresser
		f.h.MESH = m
	}
	f.objects.objects = map[string]object{}
	if obj.versionID == "" {
		obj.versionID, obj.etag, obj.lastModified = version, etag, lastModified
	}
	f.put(k, obj)
	resp := handle(t, f.h, message("m1", notification(t, k, obj.versionID)))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", failures(resp))
	}
	_, evs := only(t, f.store)
	return evs
}

// requestOf returns the Requested of a transfer that was accepted.
func requestOf(t *testing.T, evs []domain.Event) domain.Requested {
	t.Helper()
	if got := eventTypes(evs); !slices.Equal(got, []domain.EventType{domain.TypeRequested}) {
		var reason string
		if len(evs) > 1 {
			reason = evs[1].Payload.(domain.Failed).Message
		}
		t.Fatalf("events = %v (%s), want [Requested]", got, reason)
	}
	return evs[0].Payload.(domain.Requested)
}

func TestMESHUploadAddressedByMetadata(t *testing.T) {
	evs := meshUpload(t, meshOutbound(), "outbound/mesh/report.csv", object{size: 2 * meshThreshold, metadata: map[string]string{
		"Mex-From":       "x26abc1",
		"MEX-TO":         "x26abc2",
		"mex-WorkflowID": "SPINE%5FWORKFLOW%3A1", // quote_plus of SPINE_WORKFLOW:1
		"mex-subject":    "March+figures",
	}})
	got := requestOf(t, evs)
	want := domain.Requested{
		Source:      domain.Source{Kind: "s3", Bucket: bucket, Key: "outbound/mesh/report.csv", VersionID: version, ETag: etag},
		Route:       "mesh-out",
		Destination: domain.Destination{Type: "mesh"},
		Sender:      "X26ABC1",
		Recipient:   "X26ABC2",
		Workflow:    "SPINE_WORKFLOW:1",
		Filename:    "report.csv",
		Size:        2 * meshThreshold,
		ChunkSize:   20 * domain.MiB,
		Chunks:      1,
		Retry:       domain.RetryPolicy{MaxAttempts: 5, BaseDelay: domain.DefaultRetryPolicy.BaseDelay, MaxDelay: domain.DefaultRetryPolicy.MaxDelay},
		ExpectAck:   true,
		Compress:    true,
		Metadata:    map[string]string{"mex-subject": "March figures"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Requested:\n got %+v\nwant %+v", got, want)
	}
}

func TestMESHUploadAddressedByFolder(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		metadata map[string]string
		want     [3]string // from, to, workflow
	}{
		{"mailbox folder", "outbound/mesh/X26ABC1/f.csv", nil, [3]string{"X26ABC1", "X26ABC2", "TEST_WORKFLOW"}},
		{"folder in lower case", "outbound/mesh/x26abc1/f.csv", nil, [3]string{"X26ABC1", "X26ABC2", "TEST_WORKFLOW"}},
		{"deeper folders", "outbound/mesh/X26ABC1/2025/03/f.csv", nil, [3]string{"X26ABC1", "X26ABC2", "TEST_WORKFLOW"}},
		{"file named like its folder", "outbound/mesh/X26ABC1/X26ABC1", nil, [3]string{"X26ABC1", "X26ABC2", "TEST_WORKFLOW"}},
		{"metadata recipient wins", "outbound/mesh/X26ABC1/f.csv", map[string]string{"mex-to": "X26ABC3"}, [3]string{"X26ABC1", "X26ABC3", "TEST_WORKFLOW"}},
		{"metadata workflow wins", "outbound/mesh/X26ABC1/f.csv", map[string]string{"mex-workflowid": "OTHER"}, [3]string{"X26ABC1", "X26ABC2", "OTHER"}},
		{"mex-from beats the folder", "outbound/mesh/X26ABC1/f.csv", map[string]string{"mex-from": "X26ABC3", "mex-to": "X26ABC1", "mex-workflowid": "W"}, [3]string{"X26ABC3", "X26ABC1", "W"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := requestOf(t, meshUpload(t, meshOutbound(), tt.key, object{size: 10, metadata: tt.metadata}))
			if got := [3]string{r.Sender, r.Recipient, r.Workflow}; got != tt.want {
				t.Errorf("from, to, workflow = %q, want %q", got, tt.want)
			}
			if r.Route != "mesh-out" || !r.ExpectAck {
				t.Errorf("route %q, expectAck %t; want mesh-out, true", r.Route, r.ExpectAck)
			}
		})
	}
}

func TestMESHUploadRejected(t *testing.T) {
	tests := []struct {
		name      string
		mesh      *mesh.Addressing
		key       string
		metadata  map[string]string
		wantCode  string
		wantInMsg []string
		notInMsg  []string
	}{
		{
			name:      "nothing addresses it",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/f.csv",
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: mex-from, mex-to, mex-workflowid"},
		},
		{
			name:      "no recipient or workflow",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/f.csv",
			metadata:  map[string]string{"mex-from": "X26ABC1"},
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: mex-to, mex-workflowid"},
			notInMsg:  []string{"mex-from"},
		},
		{
			name:      "no workflow",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/f.csv",
			metadata:  map[string]string{"mex-from": "X26ABC1", "mex-to": "X26ABC2"},
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: mex-workflowid"},
		},
		{
			name:      "folder of a mailbox without mappings",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/X26ABC3/f.csv",
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: mex-from, mex-to, mex-workflowid"},
		},
		{
			name:      "a file named like a mailbox is no folder",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/X26ABC1",
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: mex-from"},
		},
		{
			name:      "folder of an unknown mailbox",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/X26ZZZ9/f.csv",
			wantCode:  "MISSING_METADATA",
			wantInMsg: []string{"missing metadata: mex-from"},
		},
		{
			name:      "mex-from names a mailbox ferry cannot send from",
			mesh:      meshOutbound(),
			key:       "outbound/mesh/f.csv",
			metadata:  map[string]string{"mex-from": "x26zzz9", "mex-to": "X26ABC2", "mex-workflowid": "W"},
			wantCode:  "UNKNOWN_MAILBOX",
			wantInMsg: []string{"X26ZZZ9"},
		},
		{
			name:      "no MESH configured",
			mesh:      nil,
			key:       "outbound/mesh/X26ABC1/f.csv",
			metadata:  map[string]string{"mex-from": "X26ABC1", "mex-to": "X26ABC2", "mex-workflowid": "W"},
			wantCode:  "NO_MESH",
			wantInMsg: []string{"mesh-out"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := meshUpload(t, tt.mesh, tt.key, object{size: 10, metadata: tt.metadata})
			if got, want := eventTypes(evs), []domain.EventType{domain.TypeRequested, domain.TypeFailed}; !slices.Equal(got, want) {
				t.Fatalf("events = %v, want %v", got, want)
			}
			req := evs[0].Payload.(domain.Requested)
			if req.Route != "mesh-out" || req.Destination.Type != "mesh" {
				t.Errorf("route %q to %q, want mesh-out to mesh", req.Route, req.Destination.Type)
			}
			fl := evs[1].Payload.(domain.Failed)
			if fl.Kind != domain.KindInvalid || fl.Code != tt.wantCode || fl.Retryable {
				t.Errorf("failure %s/%q retryable %t, want final %s/%q", fl.Kind, fl.Code, fl.Retryable, domain.KindInvalid, tt.wantCode)
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(fl.Message, s) {
					t.Errorf("message %q does not mention %q", fl.Message, s)
				}
			}
			for _, s := range tt.notInMsg {
				if strings.Contains(fl.Message, s) {
					t.Errorf("message %q mentions %q", fl.Message, s)
				}
			}
		})
	}
}

func TestMESHUploadCompression(t *testing.T) {
	addressed := func(extra ...string) map[string]string {
		md := map[string]string{"mex-from": "X26ABC1", "mex-to": "X26ABC2", "mex-workflowid": "W"}
		for i := 0; i+1 < len(extra); i += 2 {
			md[extra[i]] = extra[i+1]
		}
		return md
	}
	large, small := int64(meshThreshold), int64(meshThreshold-1)
	tests := []struct {
		name     string
		size     int64
		metadata map[string]string
		encoding string
		never    bool
		want     bool
	}{
		{"at the threshold", large, addressed(), "", false, true},
		{"below the threshold", small, addressed(), "", false, false},
		{"asked to compress", small, addressed("Mex-Content-Compress", "Y"), "", false, true},
		{"asked to compress, quote_plus", small, addressed("mex-content-compress", "%74rue"), "", false, true},
		{"asked not to compress", large, addressed("mex-content-compress", "n"), "", false, false},
		{"object has a Content-Encoding", large, addressed(), "gzip", false, false},
		{"Content-Encoding, but asked to compress", large, addressed("mex-content-compress", "yes"), "gzip", false, true},
		{"data already compressed", large, addressed("mex-content-compressed", "Y"), "", false, false},
		{"already compressed beats asked", large, addressed("mex-content-compressed", "Y", "mex-content-compress", "Y"), "", false, false},
		{"never compress", large, addressed("mex-content-compress", "Y"), "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := meshOutbound()
			m.Compress.Never = tt.never
			r := requestOf(t, meshUpload(t, m, "outbound/mesh/f.csv", object{size: tt.size, metadata: tt.metadata, contentEncoding: tt.encoding}))
			if r.Compress != tt.want {
				t.Errorf("Compress = %t, want %t", r.Compress, tt.want)
			}
			if wantRule := mesh.ShouldCompress(tt.metadata, tt.encoding, tt.size, m.Compress); r.Compress != wantRule {
				t.Errorf("Compress = %t, mesh.ShouldCompress says %t", r.Compress, wantRule)
			}
		})
	}
}

func TestS3RouteWithMexMetadata(t *testing.T) {
	// mex-from and mex-to are the MESH client's names for sender and
	// recipient: they satisfy the route's Require. The upload is on an s3
	// route, so it is not addressed for MESH even though MESH is configured.
	f := newFixture(map[string]string{"mex-from": "X26ABC1", "mex-to": "X26ABC2", "mex-workflowid": "W"})
	f.h.Routes = meshRoutes
	f.h.MESH = meshOutbound()
	resp := handle(t, f.h, message("m1", notification(t, keyURL, version)))
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures: %v", failures(resp))
	}
	_, evs := only(t, f.store)
	r := requestOf(t, evs)
	if r.Sender != "X26ABC1" || r.Recipient != "X26ABC2" || r.Workflow != "W" {
		t.Errorf("from, to, workflow = %q, %q, %q; want the mex-* values", r.Sender, r.Recipient, r.Workflow)
	}
	if r.Route != "to-partner" || r.ExpectAck || r.Compress {
		t.Errorf("route %q, expectAck %t, compress %t; want to-partner without MESH settings", r.Route, r.ExpectAck, r.Compress)
	}
}
