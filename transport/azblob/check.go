package azblob

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

var _ transport.Checker = (*Transport)(nil)

// probeBlob is the blob Check asks about; it need not exist.
const probeBlob = ".ferry-doctor-probe"

// Check resolves d's endpoint's credential afresh and asks the container
// for the properties of a blob that need not exist: "no such blob" shows
// the container exists and takes the credential; "no such container", a
// refused credential or an unreachable service fail the check. It writes
// nothing. Shared keys and SAS tokens carry no certificate, so it returns
// no credentials.
func (tr *Transport) Check(ctx context.Context, d domain.Destination) ([]transport.Credential, error) {
	e, ok := tr.endpoints[d.Endpoint]
	if d.Type != "azblob" || !ok {
		return nil, domain.Errorf(domain.KindInvalid, "azblob: endpoint %q is not configured", d.Endpoint)
	}
	c, err := tr.newClient(ctx, d.Endpoint, e)
	if err != nil {
		return nil, err
	}
	bb, err := c.blockBlob(probeBlob)
	if err != nil {
		return nil, domain.Errorf(domain.KindInvalid, "azblob: endpoint %s: %v", d.Endpoint, err)
	}
	op := fmt.Sprintf("azblob: container %s at %s", e.Container, e.ServiceURL)
	_, err = bb.GetProperties(ctx, nil)
	var re *azcore.ResponseError
	switch {
	case err == nil, bloberror.HasCode(err, bloberror.BlobNotFound):
		return nil, nil
	case errors.As(err, &re) && re.StatusCode == 404 && re.ErrorCode == "":
		// A HEAD's 404 has no body; the code is in x-ms-error-code,
		// which some services leave out: only a missing container
		// says so explicitly.
		return nil, nil
	}
	return nil, classify(op, err)
}
