package mesh

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

func TestLatin1(t *testing.T) {
	cases := []struct {
		name, utf8, wire string
	}{
		{"ASCII unchanged", "weekly figures", "weekly figures"},
		{"pound sign is one byte", "£5", "\xa35"},
		{"accents", "café résumé", "caf\xe9 r\xe9sum\xe9"},
		{"top of the range", "ÿ", "\xff"},
		{"no-break space", "a\u00a0b", "a\xa0b"},
		{"empty", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := toLatin1(c.utf8)
			if !ok || got != c.wire {
				t.Errorf("toLatin1(%q) = %q, %t; want %q, true", c.utf8, got, ok, c.wire)
			}
			if back := fromLatin1(c.wire); back != c.utf8 {
				t.Errorf("fromLatin1(%q) = %q, want %q", c.wire, back, c.utf8)
			}
		})
	}
	for _, s := range []string{"€100", "done ✓", "日本", "emoji 🚢", "bad utf-8 \xa3"} {
		if got, ok := toLatin1(s); ok {
			t.Errorf("toLatin1(%q) = %q, true; want refused", s, got)
		}
	}
	// Every byte decodes to the character of that code: nothing becomes U+FFFD.
	var all []byte
	for b := 0; b < 256; b++ {
		all = append(all, byte(b))
	}
	dec := fromLatin1(string(all))
	i := 0
	for _, r := range dec {
		if r != rune(i) {
			t.Fatalf("byte 0x%02x decoded as %U", i, r)
		}
		i++
	}
	if back, ok := toLatin1(dec); !ok || back != string(all) {
		t.Errorf("round trip of all 256 bytes failed")
	}
}

func TestSendWritesHeadersAsLatin1(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"message_id":"ABC123"}`)
	})
	c := testClient(t, srv.URL)
	m := Message{To: "X26ABC2", WorkflowID: "W", Subject: "£100 for the café", LocalID: "réf-1", FileName: "données.csv"}
	if _, err := c.Send(ctxTimeout(t, 5*time.Second), m, 1, 1, strings.NewReader("x"), false); err != nil {
		t.Fatal(err)
	}
	h := requests()[0].header
	for name, want := range map[string]string{
		"mex-Subject":  "\xa3100 for the caf\xe9",
		"mex-LocalID":  "r\xe9f-1",
		"mex-FileName": "donn\xe9es.csv",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s on the wire = %q, want %q (ISO-8859-1)", name, got, want)
		}
	}
}

func TestSendRefusesTextOutsideLatin1(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"message_id":"ABC123"}`)
	})
	c := testClient(t, srv.URL)
	cases := []struct {
		name  string
		m     Message
		field string
	}{
		{"subject with euro", Message{To: "X26ABC2", WorkflowID: "W", Subject: "€100"}, "mex-subject"},
		{"local id with tick", Message{To: "X26ABC2", WorkflowID: "W", LocalID: "done ✓"}, "mex-localid"},
		{"file name in Japanese", Message{To: "X26ABC2", WorkflowID: "W", FileName: "日本.csv"}, "mex-filename"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Send(ctxTimeout(t, 5*time.Second), tc.m, 1, 1, strings.NewReader("x"), false)
			wantError(t, err, domain.KindInvalid, "", tc.field, "ISO-8859-1")
			if got := tc.m.NotLatin1(); !reflect.DeepEqual(got, []string{tc.field}) {
				t.Errorf("NotLatin1() = %v, want [%s]", got, tc.field)
			}
		})
	}
	if n := len(requests()); n != 0 {
		t.Errorf("%d requests reached MESH; a refused message must not be sent", n)
	}
	if got := (Message{To: "X26ABC2", WorkflowID: "W", Subject: "£ é"}).NotLatin1(); got != nil {
		t.Errorf("NotLatin1 of Latin-1 text = %v, want nil", got)
	}
}

func TestDownloadReadsHeadersAsLatin1(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// What mesh-sandbox sends for a subject of "£5 café" from mesh-client.
		w.Header()["Mex-Subject"] = []string{"\xa35 caf\xe9"}
		w.Header()["Mex-Localid"] = []string{"plain"}
		w.Header()["Mex-Messageid"] = []string{"ABC123"}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, "data")
		}
	}))
	defer srv.Close()
	c := testClient(t, srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	d, err := c.Download(ctx, "ABC123", 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Body.Close()
	if d.Headers.Subject != "£5 café" || d.Headers.All["mex-subject"] != "£5 café" {
		t.Errorf("Subject = %q, All[mex-subject] = %q; want %q", d.Headers.Subject, d.Headers.All["mex-subject"], "£5 café")
	}
	if d.Headers.LocalID != "plain" {
		t.Errorf("LocalID = %q", d.Headers.LocalID)
	}
	hd, err := c.Head(ctx, "ABC123")
	if err != nil {
		t.Fatal(err)
	}
	if hd.Headers.Subject != "£5 café" {
		t.Errorf("Head Subject = %q, want %q", hd.Headers.Subject, "£5 café")
	}
}

func TestValidMessageID(t *testing.T) {
	good := []string{
		"20200529155357895317_3573F8",          // MESH
		"0d1d3b6c-7f1e-4ad4-a2d6-5b1c7ad4a0e1", // sandbox (UUID)
		"a", "A.b-c_d", strings.Repeat("x", MaxMessageIDLength),
	}
	for _, id := range good {
		if err := ValidMessageID(id); err != nil {
			t.Errorf("ValidMessageID(%q) = %v, want nil", id, err)
		}
	}
	bad := []string{
		"", ".", "..", ".hidden", "a/b", "../etc", "a?b", "a#b", "a%2Fb", "a b", "a\nb", "a\\b",
		"caf\u00e9", "a:b", "a;b", strings.Repeat("x", MaxMessageIDLength+1),
	}
	for _, id := range bad {
		err := ValidMessageID(id)
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("ValidMessageID(%q) = %v, want a KindInvalid error", id, err)
		}
	}
}

func TestClientRefusesUnsafeMessageIDs(t *testing.T) {
	srv, requests := fakeMESH(t, func(w http.ResponseWriter, r *http.Request) {})
	c := testClient(t, srv.URL)
	ctx := ctxTimeout(t, 5*time.Second)
	id := "../../X26ABC2/inbox"
	calls := map[string]error{
		"SendChunk":   c.SendChunk(ctx, id, 2, 2, strings.NewReader("x"), false),
		"Acknowledge": c.Acknowledge(ctx, id),
		"Download": func() error {
			_, err := c.Download(ctx, id, 1)
			return err
		}(),
		"Head": func() error {
			_, err := c.Head(ctx, id)
			return err
		}(),
		"Track": func() error {
			_, err := c.Track(ctx, id)
			return err
		}(),
	}
	for name, err := range calls {
		wantError(t, err, domain.KindInvalid, "", "invalid MESH message id")
		_ = name
	}
	if n := len(requests()); n != 0 {
		t.Errorf("%d requests reached MESH with an unsafe id", n)
	}
}

func TestRequestURLEscapesEachSegment(t *testing.T) {
	base, _ := url.Parse("https://mesh.example/base path/messageexchange")
	u := requestURL(base, []string{"X26ABC1", "a b", "c/d?e#f%g"})
	if want := "/base path/messageexchange/X26ABC1/a b/c/d?e#f%g"; u.Path != want {
		t.Errorf("Path = %q, want %q", u.Path, want)
	}
	if want := "https://mesh.example/base%20path/messageexchange/X26ABC1/a%20b/c%2Fd%3Fe%23f%25g"; u.String() != want {
		t.Errorf("URL = %q, want %q", u.String(), want)
	}
	if base.Path != "/base path/messageexchange" {
		t.Errorf("base changed to %q", base.Path)
	}
	// A mailbox that needs escaping reaches the server as one segment.
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.EscapedPath() }))
	defer srv.Close()
	c := testClient(t, srv.URL, func(cfg *ClientConfig) { cfg.Mailbox = "x26%abc?1" })
	_ = c.Handshake(ctxTimeout(t, 5*time.Second))
	if want := "/messageexchange/X26%25ABC%3F1"; got != want {
		t.Errorf("server saw path %q, want %q", got, want)
	}
}
