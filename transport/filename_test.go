package transport_test

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

func TestSafeFilename(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name, in, fallback, want string
	}{
		{"plain name is kept", "report-2024_v1.csv", "id", "report-2024_v1.csv"},
		{"directories are dropped", "in/2024/report.csv", "id", "report.csv"},
		{"windows directories are dropped", `C:\Users\x\report.csv`, "id", "report.csv"},
		{"parent traversal keeps the base name", "../../etc/passwd", "id", "passwd"},
		{"windows traversal keeps the base name", `..\..\boot.ini`, "id", "boot.ini"},
		{"dot-dot alone falls back", "..", "id", "id"},
		{"dot alone falls back", ".", "id", "id"},
		{"only dots fall back", "....", "id", "id"},
		{"traversal ending in dot-dot falls back", "a/b/..", "id", "id"},
		{"trailing slash keeps the last directory name", "a/b/", "id", "b"},
		{"empty falls back", "", "id", "id"},
		{"only slashes fall back", "///", "id", "id"},
		{"hidden file keeps its dot", ".profile", "id", ".profile"},
		{"control characters are removed", "re\x00po\nrt\x7f.txt", "id", "report.txt"},
		{"unicode control characters are removed", "a\u0085b\u200bc.txt", "id", "ab_c.txt"},
		{"spaces and punctuation become underscores", "my file (1)+final?.txt", "id", "my_file__1__final_.txt"},
		{"accented letters become one underscore each", "résumé.pdf", "id", "r_sum_.pdf"},
		{"non-latin script", "отчёт.txt", "id", "_____.txt"},
		{"emoji is one character", "🚀.bin", "id", "_.bin"},
		{"invalid UTF-8 is replaced", "a\xffb", "id", "a_b"},
		{"shell and URL metacharacters", "a;b|c&d$e`f'g\"h<i>j*k%l#m", "id", "a_b_c_d_e_f_g_h_i_j_k_l_m"},
		{"fallback is sanitised too", "", "../x y", "x_y"},
		{"unusable fallback gives file", "..", "..", "file"},
		{"long name is cut to 255 bytes keeping the extension", long + ".csv", "id", long[:251] + ".csv"},
		{"long name without extension is cut", long, "id", long[:255]},
		{"long extension is not kept", "a." + long, "id", ("a." + long)[:255]},
		{"long unicode name is cut to 255 bytes", strings.Repeat("é", 300), "id", strings.Repeat("_", 255)},
		{"long name of dots keeps its extension", strings.Repeat(".", 300) + "x", "id", strings.Repeat(".", 254) + "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := transport.SafeFilename(tt.in, tt.fallback)
			if got != tt.want {
				t.Errorf("SafeFilename(%q, %q) = %q, want %q", tt.in, tt.fallback, got, tt.want)
			}
		})
	}
}

func TestSafeFilenameInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.OneOf(
			rapid.String(),
			rapid.StringOf(rapid.SampledFrom([]rune{'.', '/', '\\', 'a', 'é', 0, '\n', '-'})),
		).Draw(t, "name")
		fallback := rapid.String().Draw(t, "fallback")
		got := transport.SafeFilename(name, fallback)
		if got == "" || len(got) > transport.MaxFilename || strings.Trim(got, ".") == "" {
			t.Fatalf("SafeFilename(%q, %q) = %q: empty, too long or only dots", name, fallback, got)
		}
		for _, r := range got {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				t.Fatalf("SafeFilename(%q, %q) = %q: contains %q", name, fallback, got, r)
			}
		}
		if again := transport.SafeFilename(got, fallback); again != got {
			t.Fatalf("SafeFilename is not idempotent: %q then %q", got, again)
		}
	})
}

func TestDeliveredName(t *testing.T) {
	st := domain.State{
		ID:      "01JNCZ6X2A8V3KQW9R0B5T7M4E",
		Created: time.Date(2026, 3, 4, 23, 30, 5, 0, time.FixedZone("X", 3600)),
		Request: domain.Requested{
			Source:    domain.Source{Kind: "s3", Bucket: "in", Key: "outbound/monthly report.csv"},
			Sender:    "X26ABC1",
			Recipient: "../etc",
			Workflow:  "WF/1",
		},
	}
	for _, tt := range []struct{ tmpl, filename, want string }{
		{"", "", "monthly_report.csv"},
		{"{filename}", "a/b/../c.txt", "c.txt"},
		{"{sender}/{date}/{filename}", "", "X26ABC1/2026-03-04/monthly_report.csv"},
		{"{name}-{time}{ext}", "", "monthly_report-223005.csv"},
		{"{transferId}{ext}", ".profile", "01JNCZ6X2A8V3KQW9R0B5T7M4E"},
		{"{recipient}_{workflow}_{filename}", "", ".._etc_WF_1_monthly_report.csv"},
		{"{name}", "archive.tar.gz", "archive.tar"},
	} {
		s := st
		s.Request.Destination = domain.Destination{Type: "s3", Bucket: "out", Filename: tt.tmpl}
		s.Request.Filename = tt.filename
		if err := s.Request.Destination.Validate(); err != nil {
			t.Fatalf("template %q: %v", tt.tmpl, err)
		}
		if got := transport.DeliveredName(s); got != tt.want {
			t.Errorf("DeliveredName(%q, filename %q) = %q, want %q", tt.tmpl, tt.filename, got, tt.want)
		}
	}
}

// TestDeliveredNameInvariants: whatever the upload says, a valid template
// gives a relative name whose folders are named and none is "..", made only
// of safe characters, the same on every call.
func TestDeliveredNameInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tmpl := rapid.SampledFrom([]string{"", "{filename}", "{sender}/{date}/{filename}", "{recipient}-{workflow}-{name}{ext}", "{transferId}.{time}"}).Draw(t, "template")
		text := rapid.StringOf(rapid.SampledFrom([]rune("ab./\\\x00 \n..é{}%")))
		st := domain.State{
			ID:      text.Draw(t, "id"),
			Created: time.Unix(rapid.Int64Range(-1e10, 1e11).Draw(t, "created"), 0),
			Request: domain.Requested{
				Source:      domain.Source{Key: text.Draw(t, "key")},
				Destination: domain.Destination{Type: "sftp", Endpoint: "p", Filename: tmpl},
				Filename:    text.Draw(t, "filename"),
				Sender:      text.Draw(t, "sender"),
				Recipient:   text.Draw(t, "recipient"),
				Workflow:    text.Draw(t, "workflow"),
			},
		}
		name := transport.DeliveredName(st)
		if name != transport.DeliveredName(st) {
			t.Fatalf("not deterministic")
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)) {
				t.Fatalf("%q has unsafe %q", name, r)
			}
		}
		want := strings.Count(tmpl, "/")
		if tmpl == "" {
			want = 0
		}
		if strings.Count(name, "/") != want {
			t.Fatalf("%q has %d folders, the template %q %d: a value added one", name, strings.Count(name, "/"), tmpl, want)
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || strings.Trim(seg, ".") == "" {
				t.Fatalf("%q has a folder or name %q", name, seg)
			}
		}
	})
}
