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

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/domain"
)

// hostKeyError says the server presented a host key its endpoint does not
// pin (or pins as revoked).
type hostKeyError struct {
	fingerprint string // ssh.FingerprintSHA256 of the presented key
	keyType     string
	revoked     bool
}

func (e *hostKeyError) Error() string {
	if e.revoked {
		return fmt.Sprintf("host key %s (%s) is revoked in knownHosts", e.fingerprint, e.keyType)
	}
	return fmt.Sprintf("host key mismatch: the server presented %s (%s), which knownHosts does not pin", e.fingerprint, e.keyType)
}

// classify turns err from talking to an SFTP server into a *domain.Error
// whose message starts with op. It is the one table of the package's error
// classes:
//
//   - a *domain.Error (from the source or the secrets) keeps its kind;
//   - a host key the endpoint does not pin: KindInvalid (the settings or
//     the server are wrong; retrying will not help);
//   - the server refusing every credential: KindUnauthorized;
//   - no such file: KindNotFound; permission denied: KindUnauthorized;
//     an operation the server does not support: KindInvalid;
//   - the network (refused, reset, timed out, closed, EOF), a lost SFTP
//     connection, a cancelled or expired context, or the server's generic
//     SSH_FX_FAILURE (a full disk, a busy file): KindUnavailable;
//   - anything else: KindInternal.
func classify(op string, err error) *domain.Error {
	var de *domain.Error
	if errors.As(err, &de) {
		msg := op
		if de.Message != "" {
			msg += ": " + de.Message
		}
		return &domain.Error{Kind: de.Kind, Code: de.Code, Message: msg, Err: de.Err}
	}
	return &domain.Error{Kind: kindOf(err), Message: op, Err: err}
}

func kindOf(err error) domain.Kind {
	var hk *hostKeyError
	var se *sftp.StatusError
	var pe *ssh.PassphraseMissingError
	var ne net.Error
	switch {
	case errors.As(err, &hk):
		return domain.KindInvalid
	case errors.As(err, &pe):
		return domain.KindInvalid
	case strings.Contains(err.Error(), "ssh: unable to authenticate"):
		return domain.KindUnauthorized
	case errors.As(err, &se):
		return statusKind(se.FxCode())
	case errors.Is(err, os.ErrNotExist):
		return domain.KindNotFound
	case errors.Is(err, os.ErrPermission):
		return domain.KindUnauthorized
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, os.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, sftp.ErrSSHFxConnectionLost), errors.Is(err, sftp.ErrSSHFxNoConnection),
		errors.As(err, &ne):
		return domain.KindUnavailable
	}
	return domain.KindInternal
}

// statusKind classifies an SFTP status code.
func statusKind(code error) domain.Kind {
	switch code {
	case sftp.ErrSSHFxNoSuchFile:
		return domain.KindNotFound
	case sftp.ErrSSHFxPermissionDenied:
		return domain.KindUnauthorized
	case sftp.ErrSSHFxOpUnsupported:
		return domain.KindInvalid
	case sftp.ErrSSHFxFailure, sftp.ErrSSHFxConnectionLost, sftp.ErrSSHFxNoConnection:
		return domain.KindUnavailable
	}
	return domain.KindInternal
}
