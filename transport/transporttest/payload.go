package transporttest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
)

const payloadBlock = 64 << 10

// Payload returns a seekable reader of size pseudo-random bytes determined
// by seed alone. It holds one 64 KiB block in memory whatever the size, so
// tests can upload large sources without large buffers, and hash the same
// bytes again later.
func Payload(seed uint64, size int64) io.ReadSeeker {
	return &payload{seed: seed, size: size, block: -1}
}

// PayloadSHA256 returns the hex SHA-256 of Payload(seed, size).
func PayloadSHA256(seed uint64, size int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, Payload(seed, size)); err != nil {
		panic(err) // Payload never fails to read
	}
	return hex.EncodeToString(h.Sum(nil))
}

type payload struct {
	seed      uint64
	size, off int64
	block     int64 // index of the block in buf, or -1
	buf       [payloadBlock]byte
}

func (p *payload) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	k := p.off / payloadBlock
	if k != p.block {
		var key [32]byte
		binary.LittleEndian.PutUint64(key[0:], p.seed)
		binary.LittleEndian.PutUint64(key[8:], uint64(k))
		if _, err := rand.NewChaCha8(key).Read(p.buf[:]); err != nil {
			return 0, err
		}
		p.block = k
	}
	start := p.off - k*payloadBlock
	end := min(int64(payloadBlock), p.size-k*payloadBlock)
	n := copy(b, p.buf[start:end])
	p.off += int64(n)
	return n, nil
}

func (p *payload) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += p.off
	case io.SeekEnd:
		offset += p.size
	default:
		return 0, errors.New("payload: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("payload: negative position")
	}
	p.off = offset
	return offset, nil
}
