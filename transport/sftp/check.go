package sftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

var _ transport.Checker = (*Transport)(nil)

// Check connects to d's endpoint on a connection of its own (checking the
// host key against the pins and authenticating once), then looks at the
// endpoint's directory: it must be a directory, or, when the endpoint
// says mkdir, its nearest existing ancestor must be. It creates and
// writes nothing, and closes the connection. SFTP endpoints hold no
// certificates, so it returns no credentials.
func (tr *Transport) Check(ctx context.Context, d domain.Destination) ([]transport.Credential, error) {
	e, ok := tr.endpoints[d.Endpoint]
	if d.Type != "sftp" || !ok {
		return nil, domain.Errorf(domain.KindInvalid, "sftp: endpoint %q is not configured", d.Endpoint)
	}
	c, err := tr.dial(ctx, e)
	if err != nil {
		return nil, err
	}
	defer c.close()
	dir := e.Directory
	for {
		fi, err := c.sftp.Stat(dir)
		switch {
		case errors.Is(err, os.ErrNotExist) && e.Mkdir && dir != "/" && dir != ".":
			dir = path.Dir(dir) // ferry would create it
			continue
		case errors.Is(err, os.ErrNotExist):
			return nil, domain.Errorf(domain.KindNotFound, "sftp: directory %s does not exist on %s (set mkdir to create it)", e.Directory, e.address())
		case err != nil:
			return nil, classify(fmt.Sprintf("sftp: stat directory %s", dir), err)
		case !fi.IsDir():
			return nil, domain.Errorf(domain.KindInvalid, "sftp: %s on %s is not a directory", dir, e.address())
		}
		return nil, nil
	}
}
