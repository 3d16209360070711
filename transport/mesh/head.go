package mesh

import (
	"context"
	"net/http"

	"github.com/ferryhq/ferry/domain"
)

// Head is what MESH says about an inbox message without sending its data.
type Head struct {
	Headers MessageHeaders
	// Total is the number of chunks (1 for an unchunked message or a
	// report).
	Total int
}

// Head fetches the headers of message id (HEAD /{mailbox}/inbox/{id}):
// its mex-* fields and chunk count, so that a transfer can be planned
// before any data moves. Errors: KindNotFound (unknown, or 410 gone),
// KindUnauthorized, KindUnavailable.
func (c *Client) Head(ctx context.Context, id string) (Head, error) {
	op := "mesh head " + id
	if err := checkID(id); err != nil {
		return Head{}, domain.Errorf(domain.KindInvalid, "%s: %s", op, err)
	}
	resp, err := c.do(ctx, request{op: op, method: http.MethodHead, path: []string{c.mailbox, "inbox", id}, ok: []int{http.StatusOK}})
	if err != nil {
		return Head{}, err
	}
	defer drain(resp)
	_, total := chunkRange(resp.Header, 1)
	return Head{Headers: parseHeaders(resp.Header), Total: total}, nil
}
