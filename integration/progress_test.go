//go:build integration

package integration

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// TestSendShowsProgressOnATerminal: `ferry send --watch` on a
// pseudo-terminal draws the upload's progress and then the transfer's
// chunks as a bar, redrawn in place, until the three chunks are delivered.
func TestSendShowsProgressOnATerminal(t *testing.T) {
	s := uniq("progress")
	file := filepath.Join(t.TempDir(), s+".bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte("p"), 12<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(stack.bin, "send", file, "--key", "outbound/"+s+".bin", "--meta", "sender="+s, "--meta", "recipient=partner-a", "--watch")
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+stack.endpoint,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "FERRY_S3_PATH_STYLE=true")
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, ptmx) // until the command exits and the terminal closes
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ferry send --watch: %v\n%q", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"\x1b[Kupload ", "12.0 MiB / 12.0 MiB", "left", "\x1b[Kchunks [", "3/3 DELIVERED", "Delivered"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, got)
		}
	}
}
