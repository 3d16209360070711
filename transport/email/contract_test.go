package email

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/emersion/go-message/mail"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// sources holds each contract transfer's payload, by transfer id.
type sources struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (s *sources) OpenChunk(_ context.Context, t domain.State, c domain.Chunk) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.data[t.ID]
	if !ok {
		return nil, domain.Errorf(domain.KindNotFound, "source of %s is gone", t.ID)
	}
	return io.NopCloser(bytes.NewReader(b[c.Offset : c.Offset+c.Length])), nil
}

// TestContract holds the transport to the contract against a real SMTP
// relay. A re-sent last chunk sends the message again, with the same
// Message-ID and bytes: what the relay received for the transfer last is
// what is checked.
func TestContract(t *testing.T) {
	r := startRelay(t)
	src := &sources{data: map[string][]byte{}}
	tr := newTransport(t, r, nil, func(e *Endpoint) { e.MaxSize = domain.MiB })
	tr.source = src
	const chunkSize = 4 << 10
	transporttest.Run(t, transporttest.Harness{
		Transport: tr,
		ChunkSize: chunkSize,
		// Chunks before the last send nothing; a message may carry an
		// empty attachment.
		Features: transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
		NewTransfer: func(t *testing.T, id string, payload io.ReadSeeker, size int64) domain.State {
			b, err := io.ReadAll(payload)
			if err != nil {
				t.Fatal(err)
			}
			src.mu.Lock()
			src.data[id] = b
			src.mu.Unlock()
			return transporttest.NewState(t, id, domain.Requested{
				Source:      domain.Source{Kind: "s3", Bucket: "up", Key: "outbound/" + id},
				Destination: domain.Destination{Type: "email", Endpoint: "relay"},
				Filename:    id + ".bin", Size: size, ChunkSize: chunkSize,
			})
		},
		Received: func(t *testing.T, st domain.State, _ transport.Delivery) io.ReadCloser {
			return io.NopCloser(bytes.NewReader(r.attachment(t, MessageID(st))))
		},
		DeleteSource: func(t *testing.T, st domain.State) {
			src.mu.Lock()
			delete(src.data, st.ID)
			src.mu.Unlock()
		},
	})
}

// attachment returns the attachment of the last message received with
// Message-ID id.
func (r *relay) attachment(t *testing.T, id string) []byte {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.got) - 1; i >= 0; i-- {
		mr, err := mail.CreateReader(bytes.NewReader(r.got[i].data))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := mr.Header.MessageID(); "<"+got+">" != id {
			continue
		}
		for {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("message %s has no attachment: %v", id, err)
			}
			if _, ok := p.Header.(*mail.AttachmentHeader); ok {
				b, err := io.ReadAll(p.Body)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
	}
	t.Fatalf("the relay received no message %s", id)
	return nil
}
