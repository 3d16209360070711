package esm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// CheckpointStore remembers, per key, the sequence number of the last stream
// record a mapping is done with. Load returns "" (and no error) for a key
// that was never saved.
type CheckpointStore interface {
	Load(ctx context.Context, key string) (seq string, err error)
	Save(ctx context.Context, key, seq string) error
}

// CheckpointKey is the key a StreamMapping stores a shard's checkpoint under:
// the mapping's name, the stream ARN and the shard ID. Two mappings on the
// same stream therefore keep separate positions, as two Lambda event source
// mappings do.
func CheckpointKey(mapping, streamARN, shardID string) string {
	return mapping + "|" + streamARN + "|" + shardID
}

// shardEnd is the checkpoint of a shard that is closed and fully processed.
const shardEnd = "SHARD_END"

// FileCheckpoints is a CheckpointStore keeping one small file per key in Dir,
// created on first Save. Save replaces a file atomically (temporary file,
// fsync, rename), so a crash leaves either the old or the new checkpoint.
// Each key must be saved by one goroutine at a time, which is how a
// StreamMapping uses it (one goroutine per shard).
type FileCheckpoints struct {
	Dir string
}

var _ CheckpointStore = FileCheckpoints{}

// Load returns the checkpoint saved under key, or "" if there is none.
func (f FileCheckpoints) Load(_ context.Context, key string) (string, error) {
	b, err := os.ReadFile(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("load checkpoint: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Save stores seq under key, replacing any earlier checkpoint atomically.
func (f FileCheckpoints) Save(_ context.Context, key, seq string) error {
	if f.Dir == "" {
		return errors.New("save checkpoint: FileCheckpoints.Dir is empty")
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	tmp, err := os.CreateTemp(f.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.WriteString(seq + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path(key))
	}
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	if d, err := os.Open(f.Dir); err == nil { // make the rename durable; best effort
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (f FileCheckpoints) path(key string) string {
	return filepath.Join(f.Dir, checkpointFileName(key))
}

// checkpointFileName maps a key to a safe file name: the key with every
// character outside [A-Za-z0-9._-] replaced by '_', shortened, followed by a
// hash of the whole key so that distinct keys never share a file.
func checkpointFileName(key string) string {
	const maxReadable = 180
	var b strings.Builder
	for _, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == '.' && b.Len() > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= maxReadable {
			break
		}
	}
	sum := sha256.Sum256([]byte(key))
	return b.String() + "-" + hex.EncodeToString(sum[:8]) + ".checkpoint"
}

// MemoryCheckpoints is a CheckpointStore that forgets everything when the
// process exits. The zero value is ready to use. A StreamMapping without a
// CheckpointStore uses one, so it starts from TRIM_HORIZON on every run.
type MemoryCheckpoints struct {
	mu  sync.Mutex
	seq map[string]string
}

var _ CheckpointStore = (*MemoryCheckpoints)(nil)

// Load returns the checkpoint saved under key, or "".
func (m *MemoryCheckpoints) Load(_ context.Context, key string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq[key], nil
}

// Save stores seq under key.
func (m *MemoryCheckpoints) Save(_ context.Context, key, seq string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seq == nil {
		m.seq = make(map[string]string)
	}
	m.seq[key] = seq
	return nil
}
