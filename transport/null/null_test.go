package null_test

import (
	"io"
	"testing"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/null"
	"github.com/ferryhq/ferry/transport/transporttest"
)

func TestContract(t *testing.T) {
	const chunkSize = 4 << 10
	transporttest.Run(t, transporttest.Harness{
		Transport: null.New(),
		ChunkSize: chunkSize,
		Features:  transporttest.Features{IdempotentFirstChunk: true, EmptyFile: true},
		NewTransfer: func(t *testing.T, id string, _ io.ReadSeeker, size int64) domain.State {
			return transporttest.NewState(t, id, domain.Requested{
				Source:      domain.Source{Kind: "s3", Bucket: "nowhere", Key: "in/" + id},
				Destination: domain.Destination{Type: "null"},
				Size:        size,
				ChunkSize:   chunkSize,
			})
		},
	})
}

func TestCompleteLocation(t *testing.T) {
	d, err := null.New().Complete(t.Context(), domain.State{ID: "01ABC"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Location, "null://01ABC"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}
