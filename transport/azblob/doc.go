// Package azblob delivers transfers to Azure Blob Storage as block blobs,
// through Azure's SDK (github.com/Azure/azure-sdk-for-go/sdk/storage/azblob).
//
// # Settings
//
// The routing file's "azblob" section names endpoints; a route's
// destination {"type": "azblob", "endpoint": NAME} picks one.
// ParseEndpoints decodes the section (unknown fields refused), gives each
// endpoint its defaults and reports every problem at once:
//
//	"azblob": {
//	  "partner-x": {
//	    "serviceURL": "https://partnerx.blob.core.windows.net/",
//	    "account":    "partnerx",
//	    "container":  "inbound",
//	    "prefix":     "from-ferry/",
//	    "sharedKey":  "secret:ferry/azblob/partnerx",
//	    "timeout":    "5m"
//	  }
//	}
//
// Exactly one of sharedKey (the account key) and sas (a SAS token with
// read and write permission on the container's blobs) is given, as a
// secret:NAME or ssm:NAME reference that the Secrets given to New
// resolves on first use. serviceURL is https; plain http is accepted only
// for a loopback host, where the Azurite emulator listens
// ("http://127.0.0.1:10000/devstoreaccount1"). The container must exist.
//
// # Blocks
//
// The blob is the endpoint's prefix followed by BlobName (the source key's
// base name, made safe). Each chunk is one block, staged by SendChunk
// (Put Block) with its MD5 for the service to check, under
// BlockID(transfer id, chunk index): the same length for every chunk, the
// same id every time a chunk is sent (so re-sending replaces the block
// with the same bytes), and distinct between transfers, so two transfers
// to one blob name never mix blocks. Complete commits the blocks in chunk
// order (Put Block List) with the metadata ferrytransferid; the blob
// appears only then, whole. An empty file has no block: Complete commits
// an empty list. A chunk may be up to 4000 MiB and a transfer may have up
// to 50,000 chunks; there is no smallest chunk.
//
// # Resume
//
// Nothing is kept between calls: block ids derive from the transfer, so
// any process may continue a transfer. Staged blocks stay on the service
// (uncommitted, for up to a week) across a failure or a restart of either
// side; after one, the advance handler sends the next chunk and the
// blocks already staged are kept. Complete checks the staged blocks
// against the plan before committing, and when called again after it
// succeeded finds the blob committed from exactly these blocks and
// returns the same Delivery without committing again.
//
// # Errors
//
// Every error is a *domain.Error, classified in one place: a refused
// credential (HTTP 401, 403 AuthenticationFailed, AuthorizationFailure)
// is KindUnauthorized, a missing container (404 ContainerNotFound) or
// block KindNotFound, other 4xx KindInvalid or KindConflict: all final.
// HTTP 408, 429, 5xx, network failures and timeouts are KindUnavailable,
// which ferry retries; the SDK itself retries only twice, briefly.
package azblob
