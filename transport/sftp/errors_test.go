package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/sftp"

	"github.com/ferryhq/ferry/domain"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want domain.Kind
	}{
		{"host key mismatch", fmt.Errorf("ssh: handshake failed: %w", &hostKeyError{fingerprint: "SHA256:x", keyType: "ssh-ed25519"}), domain.KindInvalid},
		{"refused credentials", errors.New("ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain"), domain.KindUnauthorized},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, domain.KindUnavailable},
		{"connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), domain.KindUnavailable},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), domain.KindUnavailable},
		{"handshake cut short", fmt.Errorf("ssh: handshake failed: %w", io.EOF), domain.KindUnavailable},
		{"unexpected EOF", io.ErrUnexpectedEOF, domain.KindUnavailable},
		{"closed connection", fmt.Errorf("read: %w", net.ErrClosed), domain.KindUnavailable},
		{"deadline", os.ErrDeadlineExceeded, domain.KindUnavailable},
		{"cancelled", context.Canceled, domain.KindUnavailable},
		{"context deadline", context.DeadlineExceeded, domain.KindUnavailable},
		{"sftp connection lost", sftp.ErrSSHFxConnectionLost, domain.KindUnavailable},
		{"no such file (status)", &sftp.StatusError{Code: 2}, domain.KindNotFound},
		{"no such file (normalised)", &os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}, domain.KindNotFound},
		{"permission denied (status)", &sftp.StatusError{Code: 3}, domain.KindUnauthorized},
		{"permission denied (normalised)", os.ErrPermission, domain.KindUnauthorized},
		{"generic failure", &sftp.StatusError{Code: 4}, domain.KindUnavailable},
		{"unsupported", &sftp.StatusError{Code: 8}, domain.KindInvalid},
		{"bad message", &sftp.StatusError{Code: 5}, domain.KindInternal},
		{"a domain error keeps its kind", domain.Errorf(domain.KindNotFound, "no source"), domain.KindNotFound},
		{"a wrapped domain error keeps its kind", fmt.Errorf("read: %w", domain.Errorf(domain.KindConflict, "replaced")), domain.KindConflict},
		{"unknown", errors.New("something odd"), domain.KindInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify("sftp: op", tc.err)
			if got.Kind != tc.want {
				t.Errorf("classify(%v) kind = %s, want %s", tc.err, got.Kind, tc.want)
			}
			var de *domain.Error
			if !errors.As(tc.err, &de) && !errors.Is(got, tc.err) {
				t.Errorf("classify(%v) does not wrap the error", tc.err)
			}
			if n := strings.Count(got.Error(), "("+string(tc.want)+")"); n != 1 {
				t.Errorf("classify(%v) = %q, which says its kind %d times", tc.err, got, n)
			}
		})
	}
}

func TestHostKeyErrorNamesFingerprint(t *testing.T) {
	p, err := parseKnownHosts([]string{pinned})
	if err != nil {
		t.Fatal(err)
	}
	other, err := parseKnownHosts([]string{"h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ+dUyFN/ZzFtb6c1Dgg9Wk0CYxcHjo0PwgWJgw5Y3O9"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.check("h", nil, p.accepted[0]); err != nil {
		t.Errorf("the pinned key is refused: %v", err)
	}
	err = p.check("h", nil, other.accepted[0])
	var hk *hostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("an unpinned key gives %v, want a host key error", err)
	}
	if want := "SHA256:"; len(hk.fingerprint) <= len(want) || hk.fingerprint[:len(want)] != want {
		t.Errorf("fingerprint %q is not a SHA256 fingerprint", hk.fingerprint)
	}
	revoked := pins{accepted: p.accepted, revoked: p.accepted}
	if err := revoked.check("h", nil, p.accepted[0]); !errors.As(err, &hk) || !hk.revoked {
		t.Errorf("a revoked key gives %v, want a revoked host key error", err)
	}
}
