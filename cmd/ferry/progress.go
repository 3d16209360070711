package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/schema"
)

// The progress display of send and watch. On a terminal it redraws one
// status line in place (carriage return, erase line) under the timeline:
// the upload's bytes, rate and time left, then the transfer's chunks as a
// bar. Elsewhere (a pipe, a file, CI) it prints plain lines: the upload at
// each tenth, the timeline as it grows. With --json it prints one JSON
// object per event — the EventBridge detail, as subscribers get it — and
// nothing else. It is written here rather than taken from a progress
// library: two lines of output do not need one, and owning them keeps the
// plain and JSON forms exactly as documented.
type progress struct {
	w    io.Writer
	tty  bool
	json bool
	now  func() time.Time

	mu       sync.Mutex
	status   string // the status line drawn last, on a terminal
	reported int    // tenths of the upload reported, in plain mode
}

// outputMode picks the display for w: --json wins; a terminal redraws.
func newProgress(w io.Writer, asJSON bool) *progress {
	return &progress{w: w, tty: !asJSON && isTerminal(w), json: asJSON, now: time.Now}
}

// isTerminal reports whether w is a terminal (a character device: a tty
// or a pseudo-terminal), without a dependency.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// draw replaces the status line (a terminal only).
func (p *progress) draw(line string) {
	p.status = line
	fmt.Fprint(p.w, "\r\x1b[K"+line)
}

// line prints a line above the status line, which is drawn again.
func (p *progress) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		return
	}
	if p.tty && p.status != "" {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintln(p.w, s)
	if p.tty && p.status != "" {
		fmt.Fprint(p.w, p.status)
	}
}

// done ends the status line (a terminal only).
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.status != "" {
		fmt.Fprintln(p.w)
		p.status = ""
	}
}

// uploadReader counts what the upload has read of a file. The SDK may read
// a seekable body twice (once to sign it, once to send it); a seek back to
// the start begins the count again.
type uploadReader struct {
	f       *os.File
	p       *progress
	size    int64
	n       int64
	started time.Time
}

func (p *progress) upload(f *os.File, size int64) *uploadReader {
	return &uploadReader{f: f, p: p, size: size, started: p.now()}
}

func (r *uploadReader) Read(b []byte) (int, error) {
	n, err := r.f.Read(b)
	r.n += int64(n)
	r.p.uploaded(r.n, r.size, r.p.now().Sub(r.started))
	return n, err
}

func (r *uploadReader) Seek(off int64, whence int) (int64, error) {
	pos, err := r.f.Seek(off, whence)
	if err == nil {
		r.n, r.started = pos, r.p.now()
	}
	return pos, err
}

// uploaded shows n of size bytes sent in elapsed.
func (p *progress) uploaded(n, size int64, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		return
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	left := "--:--"
	if rate > 0 {
		left = clock(time.Duration(float64(size-n) / rate * float64(time.Second)))
	}
	text := fmt.Sprintf("upload %s / %s  %s/s  %s left", bytesText(n), bytesText(size), bytesText(int64(rate)), left)
	if p.tty {
		p.draw(text)
		return
	}
	tenth := 10
	if size > 0 {
		tenth = int(n * 10 / size)
	}
	if tenth > p.reported || (n == size && p.reported < 10) {
		p.reported = tenth
		fmt.Fprintln(p.w, text)
	}
}

// event shows one event of the transfer, in its state after it.
func (p *progress) event(e domain.Event, st domain.State) {
	if p.json {
		p.mu.Lock()
		defer p.mu.Unlock()
		b, _ := json.Marshal(schema.NewDetail(e, st))
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	p.line(fmt.Sprintf("%s  v%-3d %-12s %s", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.Seq, e.Type(), describe(e)))
	if p.tty {
		p.mu.Lock()
		p.draw(chunkBar(st))
		p.mu.Unlock()
	}
}

// chunkBar is a transfer's chunks sent as a bar, with its status.
func chunkBar(st domain.State) string {
	const width = 30
	total := max(st.Request.Chunks, 1)
	sent := min(st.ChunksSent, total)
	filled := sent * width / total
	return fmt.Sprintf("chunks [%s%s] %d/%d %s", strings.Repeat("#", filled), strings.Repeat("-", width-filled), sent, total, st.Status)
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func clock(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
