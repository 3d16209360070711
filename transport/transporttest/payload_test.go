package transporttest_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/ferryhq/ferry/transport/transporttest"
)

func TestPayload(t *testing.T) {
	const size = 200_003
	read := func(seed uint64) []byte {
		t.Helper()
		b, err := io.ReadAll(transporttest.Payload(seed, size))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := read(1)
	t.Run("has the requested size", func(t *testing.T) {
		if got := len(a); got != size {
			t.Errorf("len = %d, want %d", got, size)
		}
	})
	t.Run("is the same for the same seed", func(t *testing.T) {
		if !bytes.Equal(a, read(1)) {
			t.Error("two reads with seed 1 differ")
		}
	})
	t.Run("differs between seeds", func(t *testing.T) {
		if bytes.Equal(a, read(2)) {
			t.Error("seeds 1 and 2 give the same bytes")
		}
	})
	t.Run("seeking reads the same bytes", func(t *testing.T) {
		p := transporttest.Payload(1, size)
		for _, off := range []int64{size - 10, 70_000, 65_535, 0, 131_072} {
			if _, err := p.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 5)
			if _, err := io.ReadFull(p, got); err != nil {
				t.Fatal(err)
			}
			if want := a[off : off+5]; !bytes.Equal(got, want) {
				t.Errorf("at %d got %x, want %x", off, got, want)
			}
		}
	})
	t.Run("sha256 matches the bytes", func(t *testing.T) {
		if got, want := transporttest.PayloadSHA256(0, 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; got != want {
			t.Errorf("PayloadSHA256 of empty = %s, want %s", got, want)
		}
	})
}
