// Package mailtest helps tests write MIME messages by hand.
package mailtest

import (
	"encoding/base64"
	"io"
)

// Base64 returns a writer that encodes what it is given as base64 in lines
// of 76 characters ended by CRLF, as MIME bodies are, into w. Close writes
// the last line.
func Base64(w io.Writer) io.WriteCloser {
	return base64.NewEncoder(base64.StdEncoding, &lines{w: w})
}

// lines breaks what it writes into lines of 76 characters.
type lines struct {
	w   io.Writer
	col int
}

func (l *lines) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n, p, l.col = n+k, p[k:], l.col+k
		if l.col == 76 {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}
