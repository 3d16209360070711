// Package null is a transport that accepts everything and stores nothing,
// for tests and dry runs.
package null

import (
	"context"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Transport accepts every chunk and discards it. It never fails and never
// reads the source.
type Transport struct{}

var _ transport.Transport = (*Transport)(nil)

// New returns a null transport.
func New() *Transport { return &Transport{} }

// Begin returns "" and no error.
func (*Transport) Begin(context.Context, domain.State) (string, error) { return "", nil }

// SendChunk discards the chunk and reports it sent (with its planned
// length, or 0 when the source decides lengths).
func (*Transport) SendChunk(_ context.Context, _ domain.State, c domain.Chunk) (transport.Sent, error) {
	return transport.Sent{Bytes: max(c.Length, 0)}, nil
}

// Complete returns Location "null://<transfer id>" and no error, however
// often it is called.
func (*Transport) Complete(_ context.Context, t domain.State) (transport.Delivery, error) {
	return transport.Delivery{Location: "null://" + t.ID}, nil
}
