package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ferryhq/ferry/domain"
)

// events of a three-chunk transfer and its state after each.
func threeChunks() ([]domain.Event, []domain.State) {
	id, t0 := "01J00000000000000000000001", time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	payloads := []domain.Payload{
		domain.Requested{Route: "r", Sender: "lab-a", Recipient: "lab-b", Size: 30, ChunkSize: 10, Chunks: 3, Destination: domain.Destination{Type: "null"}},
		domain.Started{}, domain.ChunkSent{Index: 1, Bytes: 10}, domain.ChunkSent{Index: 2, Bytes: 10}, domain.ChunkSent{Index: 3, Bytes: 10},
		domain.Delivered{Location: "null://x"},
	}
	var evs []domain.Event
	var sts []domain.State
	st := domain.State{ID: id}
	for i, p := range payloads {
		e := domain.Event{TransferID: id, Seq: i + 1, At: t0.Add(time.Duration(i) * time.Second), Payload: p}
		st = domain.Fold(st, e)
		evs, sts = append(evs, e), append(sts, st)
	}
	return evs, sts
}

// show runs an upload of 100 bytes, read in 10-byte reads, and the
// transfer's events through a progress display on w.
func show(t *testing.T, p *progress) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	p.now = func() time.Time { clock = clock.Add(100 * time.Millisecond); return clock }
	r := p.upload(f, 100)
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	for {
		if _, err := r.Read(buf); err == io.EOF {
			break
		}
	}
	p.done()
	evs, sts := threeChunks()
	for i := range evs {
		p.event(evs[i], sts[i])
	}
	p.done()
}

// TestProgressOnATerminal: on a pseudo-terminal the upload and the chunks
// are one status line redrawn in place, the timeline printed above it.
func TestProgressOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	p := newProgress(tty, false)
	if !p.tty {
		t.Fatal("a pseudo-terminal was not taken for a terminal")
	}
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx)
		got <- string(b)
	}()
	show(t, p)
	tty.Close()
	out := <-got
	for _, want := range []string{
		"\r\x1b[Kupload 100 B / 100 B", "B/s", "left",
		"chunks [----------", "chunks [##########--------------------] 1/3 IN_PROGRESS",
		"chunks [##############################] 3/3 DELIVERED",
		"ChunkSent    chunk=3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	if n := strings.Count(out, "\rupload") + strings.Count(out, "\x1b[Kupload"); n < 10 {
		t.Errorf("the upload line was drawn %d times, want once per read", n)
	}
}

// TestProgressPlain: elsewhere, plain lines: the upload at each tenth, the
// timeline, no control characters.
func TestProgressPlain(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, false)
	show(t, p)
	s := out.String()
	if strings.ContainsAny(s, "\r\x1b") {
		t.Errorf("control characters in plain output:\n%q", s)
	}
	if n := strings.Count(s, "upload "); n != 10 {
		t.Errorf("%d upload lines, want one per tenth (10):\n%s", n, s)
	}
	if !strings.Contains(s, "upload 100 B / 100 B") || strings.Count(s, "\n") != 16 || strings.Contains(s, "chunks [") {
		t.Errorf("plain output:\n%s", s)
	}
}

// TestProgressJSON: --json prints one JSON object per event and nothing
// else.
func TestProgressJSON(t *testing.T) {
	var out bytes.Buffer
	show(t, newProgress(&out, true))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6 events:\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		var d struct {
			TransferID string
			Seq        int
			ChunksSent int
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil || d.Seq != i+1 {
			t.Errorf("line %d %q: %v", i, l, err)
		}
	}
}
