package s3transport_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ferryhq/ferry/domain"
	s3transport "github.com/ferryhq/ferry/transport/s3"
	"github.com/ferryhq/ferry/transport/transporttest"
)

const transferID = "01JNZ0TESTTRANSFER00000000"

// meshState is an inbound MESH transfer whose message has headers hdrs.
func meshState(t testing.TB, hdrs map[string]string) domain.State {
	return transporttest.NewState(t, transferID, domain.Requested{
		Source:      domain.Source{Kind: "mesh", Mailbox: "X26ABC3", MessageID: "20250301085900000000_IN0001"},
		Destination: domain.Destination{Type: "s3", Bucket: "dst", Prefix: "inbound/"},
		Chunks:      1,
		Metadata:    hdrs,
	})
}

// essentials are the headers of a typical message that every consumer
// needs; they are short.
func essentials() map[string]string {
	return map[string]string{
		"mex-messageid": "20250301085900000000_IN0001", "mex-from": "X26ABC2", "mex-to": "X26ABC3",
		"mex-workflowid": "TEST_WORKFLOW", "mex-messagetype": "DATA",
	}
}

// fataler is what checkMetadata needs of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// checkMetadata checks what holds for every result of ObjectMetadata: within
// S3's limit, the transfer id kept, every mex-* header either kept
// (quote_plus-encoded, key lower-case) or reported dropped, never both.
func checkMetadata(t fataler, hdrs, md map[string]string, dropped []string) {
	t.Helper()
	if n := s3transport.MetadataSize(md); n > s3transport.MaxUserMetadata {
		t.Fatalf("metadata is %d bytes, over S3's %d: %v", n, s3transport.MaxUserMetadata, md)
	}
	if md[s3transport.MetadataTransferID] != transferID {
		t.Fatalf("%s = %q, want %q", s3transport.MetadataTransferID, md[s3transport.MetadataTransferID], transferID)
	}
	for k, v := range hdrs {
		k = strings.ToLower(k)
		got, kept := md[k]
		switch {
		case kept && slices.Contains(dropped, k):
			t.Fatalf("%s is both kept and dropped", k)
		case kept && got != url.QueryEscape(v):
			t.Fatalf("%s = %q, want %q", k, got, url.QueryEscape(v))
		case kept:
			if dec, err := url.QueryUnescape(got); err != nil || dec != v {
				t.Fatalf("%s = %q decodes to %q (%v), want %q", k, got, dec, err, v)
			}
		case !slices.Contains(dropped, k):
			t.Fatalf("%s is neither kept nor reported dropped", k)
		}
	}
	if list, ok := md[s3transport.MetadataDropped]; ok != (len(dropped) > 0) || ok && list != strings.Join(dropped, ",") && !strings.HasSuffix(list, "...") {
		t.Fatalf("%s = %q (present %t), dropped %v", s3transport.MetadataDropped, list, ok, dropped)
	}
	if len(md) != len(hdrs)-len(dropped)+1+min(1, len(dropped)) {
		t.Fatalf("metadata has %d keys for %d headers, %d dropped: %v", len(md), len(hdrs), len(dropped), md)
	}
}

func TestObjectMetadata(t *testing.T) {
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	with := func(more map[string]string) map[string]string {
		h := essentials()
		for k, v := range more {
			h[k] = v
		}
		return h
	}
	for _, tc := range []struct {
		name        string
		hdrs        map[string]string
		kept        []string // must be kept
		wantDropped []string
	}{
		{"small headers are all kept, quote_plus-encoded", with(map[string]string{
			"mex-subject": "weekly figures & more", "mex-localid": "L/1", "mex-FileName": "a b.csv",
		}), []string{"mex-messageid", "mex-subject", "mex-localid", "mex-filename"}, nil},
		{"a subject too long after encoding is dropped, shorter headers kept", with(map[string]string{
			// 500 characters, 1500 bytes quote_plus-encoded, with the
			// rest too much for 2 KB.
			"mex-subject": long("/", 500), "mex-localid": long("/", 300), "mex-filename": "a.dat",
		}), []string{"mex-messageid", "mex-from", "mex-to", "mex-workflowid", "mex-messagetype", "mex-filename", "mex-localid"}, []string{"mex-subject"}},
		{"non-ASCII text grows sixfold: the lowest-priority long header goes first", with(map[string]string{
			"mex-localid": long("é", 200), "mex-subject": long("£", 200), "mex-partnerid": "P1",
		}), []string{"mex-messageid", "mex-localid", "mex-partnerid"}, []string{"mex-subject"}},
		{"every free-text header at the sandbox's maximum", with(map[string]string{
			"mex-filename": long("%", 300), "mex-localid": long("+", 300), "mex-subject": long("&", 500),
			"mex-partnerid": long("=", 500), "mex-content-type": long(";", 100), "mex-content-checksum": long("a", 100),
		}), []string{"mex-messageid", "mex-from", "mex-to", "mex-workflowid", "mex-messagetype", "mex-filename", "mex-content-checksum", "mex-content-type"},
			[]string{"mex-localid", "mex-subject", "mex-partnerid"}},
		{"a report keeps what links it to its message", map[string]string{
			"mex-messageid": "R1", "mex-messagetype": "REPORT", "mex-linkedmsgid": "M1", "mex-statuscode": "14",
			"mex-to": "X26ABC1", "mex-statusdescription": long("/", 700),
		}, []string{"mex-linkedmsgid", "mex-statuscode", "mex-messagetype"}, []string{"mex-statusdescription"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, dropped := s3transport.ObjectMetadata(meshState(t, tc.hdrs))
			checkMetadata(t, tc.hdrs, md, dropped)
			for _, k := range tc.kept {
				if _, ok := md[k]; !ok {
					t.Errorf("%s was dropped; want it kept (dropped %v)", k, dropped)
				}
			}
			if !slices.Equal(dropped, tc.wantDropped) {
				t.Errorf("dropped %v, want %v", dropped, tc.wantDropped)
			}
			if len(tc.wantDropped) > 0 && md[s3transport.MetadataDropped] != strings.Join(tc.wantDropped, ",") {
				t.Errorf("%s = %q, want %q", s3transport.MetadataDropped, md[s3transport.MetadataDropped], strings.Join(tc.wantDropped, ","))
			}
		})
	}
	t.Run("an S3 source's metadata is not copied", func(t *testing.T) {
		st := meshState(t, essentials())
		st.Request.Source = domain.Source{Kind: "s3", Bucket: "b", Key: "k"}
		md, dropped := s3transport.ObjectMetadata(st)
		if len(md) != 1 || md[s3transport.MetadataTransferID] != transferID || dropped != nil {
			t.Errorf("metadata %v, dropped %v; want only the transfer id", md, dropped)
		}
	})
	t.Run("so many headers that their names do not fit either", func(t *testing.T) {
		h := essentials()
		for i := range 200 {
			h[fmt.Sprintf("mex-x-custom-header-%03d", i)] = long("v", 40)
		}
		md, dropped := s3transport.ObjectMetadata(meshState(t, h))
		checkMetadata(t, h, md, dropped)
		if list := md[s3transport.MetadataDropped]; !strings.HasSuffix(list, "...") || !strings.HasPrefix(list, "mex-x-custom-header-") {
			t.Errorf("%s = %q, want a list of custom headers cut short", s3transport.MetadataDropped, list)
		}
		for k := range essentials() {
			if _, ok := md[k]; !ok {
				t.Errorf("%s dropped; want it kept before any custom header", k)
			}
		}
	})
}

// TestObjectMetadataInvariants: whatever the headers, the metadata fits in
// S3's 2 KB, keeps the transfer id, and accounts for every header.
func TestObjectMetadataInvariants(tt *testing.T) {
	rapid.Check(tt, func(t *rapid.T) {
		names := []string{"mex-messageid", "mex-from", "mex-to", "mex-workflowid", "mex-subject", "mex-localid",
			"mex-filename", "mex-partnerid", "mex-statusdescription", "mex-chunk-range", "mex-x-a", "mex-x-b", "Mex-Subject-2"}
		hdrs := map[string]string{}
		for _, k := range rapid.SliceOfDistinct(rapid.SampledFrom(names), func(s string) string { return s }).Draw(t, "names") {
			hdrs[k] = rapid.StringOfN(rapid.SampledFrom([]rune{'a', ' ', '/', 'é', '£', '%', '+'}), 0, 600, -1).Draw(t, k)
		}
		md, dropped := s3transport.ObjectMetadata(meshState(tt, hdrs))
		checkMetadata(t, hdrs, md, dropped)
	})
}

// TestBeginLogsDroppedMetadata: Begin says which headers it leaves out of
// the object's metadata. (S3 is a closed port: the log comes before the
// request, which fails.)
func TestBeginLogsDroppedMetadata(t *testing.T) {
	var buf bytes.Buffer
	tr := s3transport.New(newClient(closedPort(t), 1)).WithLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	hdrs := essentials()
	hdrs["mex-subject"] = strings.Repeat("/", 700)
	_, err := tr.Begin(t.Context(), meshState(t, hdrs))
	wantKind(t, err, domain.KindUnavailable, "")
	if out := buf.String(); !strings.Contains(out, `"dropped":["mex-subject"]`) || !strings.Contains(out, transferID) {
		t.Errorf("log = %s, want a line naming the transfer and the dropped mex-subject", out)
	}
}
