package domain

// MiB is 2^20 bytes.
const MiB = 1 << 20

// DefaultChunkSize is used when a route names none: 20 MiB, as NHS England's
// MESH client does.
const DefaultChunkSize int64 = 20 * MiB

// MaxChunks is the most chunks a transfer is cut into: S3's limit of
// parts in a multipart upload, which an s3 destination makes a part of
// each chunk (or of several held ones).
const MaxChunks = 10000

// PlanChunkSize returns the chunk size for a payload of size bytes when
// the route asks for want: want, unless that makes more than MaxChunks
// chunks, when it is raised to the least whole number of MiB that makes no
// more. So any size S3 stores (5 TiB makes 525 MiB chunks) is delivered,
// whatever the route's chunk size. It panics if want is not positive.
func PlanChunkSize(size, want int64) int64 {
	if ChunkCount(size, want) <= MaxChunks {
		return want
	}
	need := 1 + (size-1)/MaxChunks // the least size that makes MaxChunks chunks
	return (1 + (need-1)/MiB) * MiB
}

// Chunk is one contiguous byte range of a transfer's payload. Index counts
// from 1, as S3 part numbers and MESH chunk numbers do.
type Chunk struct {
	Index  int   `json:"index"`
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// ChunkCount returns how many chunks a payload of size bytes has when cut
// into chunkSize pieces. An empty payload still has one (empty) chunk, so that
// every transfer delivers something. It panics if chunkSize is not positive.
func ChunkCount(size, chunkSize int64) int {
	if chunkSize <= 0 {
		panic("domain: chunk size must be positive")
	}
	if size <= 0 {
		return 1
	}
	return int(1 + (size-1)/chunkSize) // not (size+chunkSize-1)/chunkSize: that overflows
}

// ChunkAt returns chunk i (1-based) of a payload of size bytes cut into
// chunkSize pieces. The caller must keep i within 1..ChunkCount(size, chunkSize).
func ChunkAt(size, chunkSize int64, i int) Chunk {
	off := int64(i-1) * chunkSize
	n := chunkSize
	if n > size-off { // not off+n > size: that overflows
		n = size - off
	}
	if n < 0 {
		n = 0
	}
	return Chunk{Index: i, Offset: off, Length: n}
}

// MaxHeldBytes bounds a run of held chunks (ChunkSent.Held): their total
// length stays below it. It is S3's smallest multipart part (5 MiB), the
// reason a destination holds chunks at all, so what a destination re-reads
// from the source to store a part is always less than one such part.
const MaxHeldBytes int64 = 5 * MiB
