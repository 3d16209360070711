package email

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/transport"
)

// crlf turns a message written with \n line ends into SMTP's \r\n.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// walked is a part and its bytes as Walk gave them.
type walked struct {
	Part
	body string
}

func walkAll(t *testing.T, raw string) ([]walked, error) {
	t.Helper()
	var out []walked
	err := Walk(strings.NewReader(crlf(raw)), func(p Part, body io.Reader) error {
		b, err := io.ReadAll(body)
		out = append(out, walked{p, string(b)})
		return err
	})
	return out, err
}

// twoAttachments is multipart/mixed with a text, a base64 attachment with
// an RFC 2231 name and a quoted-printable one with an RFC 2047 name, in
// ISO-8859-1 text (whose bytes must stay as they are).
const twoAttachments = `From: Ann Lab <ann@lab.example>
To: files@in.example
Subject: Results
Message-ID: <m1@lab.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: multipart/alternative; boundary="b2"

--b2
Content-Type: text/plain; charset=utf-8

Here are the results.
--b2
Content-Type: text/html; charset=utf-8

<p>Here are the results.</p>
--b2--
--b1
Content-Type: application/pdf
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf

JVBERi0xLjQKAP8BAgM=
--b1
Content-Type: text/csv; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable
Content-Disposition: attachment; filename="=?ISO-8859-1?Q?caf=E9s.csv?="

name,price
caf=E9,2=A3
--b1--
`

func TestWalkTwoAttachments(t *testing.T) {
	got, err := walkAll(t, twoAttachments)
	if err != nil {
		t.Fatal(err)
	}
	want := []walked{
		{Part{Index: 1, ContentType: "text/plain"}, "Here are the results."},
		{Part{Index: 2, ContentType: "text/html"}, "<p>Here are the results.</p>"},
		{Part{Index: 3, Name: "résumé final.pdf", ContentType: "application/pdf", Attachment: true}, "%PDF-1.4\n\x00\xff\x01\x02\x03"},
		{Part{Index: 4, Name: "cafés.csv", ContentType: "text/csv", Attachment: true}, "name,price\r\ncaf\xe9,2\xa3"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Walk found\n%+v\nwant\n%+v", got, want)
	}
	if names := []string{got[2].Filename(), got[3].Filename()}; !slices.Equal(names, []string{"r_sum__final.pdf", "caf_s.csv"}) {
		t.Errorf("stored names %q", names)
	}
	if got := chosen(partsOf(got), false); !slices.Equal(got, []int{3, 4}) {
		t.Errorf("chosen = %v, want the two attachments", got)
	}
}

func partsOf(ws []walked) []Part {
	var ps []Part
	for _, w := range ws {
		ps = append(ps, w.Part)
	}
	return ps
}

func TestWalkNames(t *testing.T) {
	long := strings.Repeat("a", 300) + ".csv"
	tests := []struct {
		name, disposition, contentType, want string
	}{
		{"rfc 2047 utf-8 base64", `attachment; filename="=?UTF-8?B?cmVzdW3DqS5wZGY=?="`, "application/pdf", "resum_.pdf"},
		{"rfc 2231 continuation", `attachment; filename*0*=UTF-8''%C3%A9t%C3%A9; filename*1=".txt"`, "text/plain", "_t_.txt"},
		{"name in content type", `attachment`, `application/octet-stream; name="data.bin"`, "data.bin"},
		{"dot dot slash", `attachment; filename="../../etc/passwd"`, "text/plain", "passwd"},
		{"backslashes", `attachment; filename="..\\..\\boot.ini"`, "text/plain", "boot.ini"},
		{"only dots", `attachment; filename=".."`, "application/pdf", "attachment-1.pdf"},
		{"control characters", `attachment; filename="=?UTF-8?Q?a=0Db=00c=07.txt?="`, "text/plain", "abc.txt"},
		{"no name", `attachment`, "image/png", "attachment-1.png"},
		{"forwarded message", `inline`, "message/rfc822", "attachment-1.eml"},
		{"overlong", `attachment; filename="` + long + `"`, "text/csv", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: " + tt.contentType +
				"\nContent-Disposition: " + tt.disposition + "\n\nbody\n--x--\n"
			got, err := walkAll(t, raw)
			if err != nil || len(got) != 1 || !got[0].Attachment {
				t.Fatalf("Walk = %+v, %v; want one attachment", got, err)
			}
			name := got[0].Filename()
			if tt.want == "" {
				if len(name) > transport.MaxFilename || !strings.HasSuffix(name, ".csv") || strings.Trim(name, "a") != ".csv" {
					t.Errorf("overlong name became %q (%d bytes)", name, len(name))
				}
				return
			}
			if name != tt.want {
				t.Errorf("Filename() = %q (from %q), want %q", name, got[0].Name, tt.want)
			}
		})
	}
}

func TestWalkTextOnly(t *testing.T) {
	got, err := walkAll(t, "From: a@b.example\nSubject: hi\n\nJust text.\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Attachment || got[0].ContentType != "text/plain" || got[0].body != "Just text.\r\n" {
		t.Fatalf("Walk = %+v", got)
	}
	if got[0].Filename() != "body.txt" {
		t.Errorf("a text's name is %q", got[0].Filename())
	}
	if c := chosen(partsOf(got), false); len(c) != 0 {
		t.Errorf("chosen without body = %v, want none", c)
	}
	if c := chosen(partsOf(got), true); !slices.Equal(c, []int{1}) {
		t.Errorf("chosen with body = %v, want the text", c)
	}
	// text/plain is preferred to an earlier text/html
	html := []Part{{Index: 1, ContentType: "text/html"}, {Index: 2, ContentType: "text/plain"}, {Index: 3, ContentType: "text/plain"}}
	if c := chosen(html, true); !slices.Equal(c, []int{2}) {
		t.Errorf("chosen of html and plain = %v, want [2]", c)
	}
}

func TestWalkMalformed(t *testing.T) {
	tests := map[string]string{
		"unterminated multipart": "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: application/pdf\n\nabc",
		"bad base64":             "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n--x--\n",
		"no boundary":            "Content-Type: multipart/mixed\n\n--x\nContent-Type: text/plain\n\nabc\n--x--\n",
		"unknown encoding":       "Content-Type: application/pdf\nContent-Transfer-Encoding: x-martian\n\nabc\n",
		"header garbage":         "this is not a header\n\nabc\n",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := walkAll(t, raw)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Walk = %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("too many parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=x\n\n")
		for range MaxParts + 1 {
			b.WriteString("--x\nContent-Type: application/pdf\n\nabc\n")
		}
		b.WriteString("--x--\n")
		if _, err := walkAll(t, b.String()); !errors.Is(err, ErrTooManyParts) {
			t.Fatalf("Walk = %v, want ErrTooManyParts", err)
		}
	})
}
