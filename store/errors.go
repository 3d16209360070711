package store

import (
	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
)

// wrap turns an error from the DynamoDB API into a *domain.Error with op as
// its message and err in its chain, classified by awserr (ferry's one table
// of AWS error codes): its kind is awserr.Kind(err) and its code
// awserr.Code(err). The message is op alone because Error() appends err's
// own text, which already names the code and the service's message.
//
// A lost conditional append never comes here: Append turns it into
// ErrConflict itself.
func wrap(op string, err error) error {
	return &domain.Error{Kind: awserr.Kind(err), Code: awserr.Code(err), Message: op, Err: err}
}
