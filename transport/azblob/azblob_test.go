package azblob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

func TestBlobName(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"in/partner/Q1 report.csv", "Q1_report.csv"},
		{"in/../../etc/passwd", "passwd"},
		{`in\dir\file.txt`, "file.txt"},
		{"in/a\x00b\nc.bin", "abc.bin"},
		{"in/..", "01TRANSFER"},
		{"in/dir/", "dir"},
		{"", "01TRANSFER"},
	} {
		st := domain.State{ID: "01TRANSFER", Request: domain.Requested{Source: domain.Source{Kind: "s3", Key: c.key}}}
		if got := BlobName(st); got != c.want {
			t.Errorf("BlobName(key %q) = %q, want %q", c.key, got, c.want)
		}
		if got := BlobName(st); strings.ContainsAny(got, `/\`) || got == ".." {
			t.Errorf("BlobName(key %q) = %q holds a separator", c.key, got)
		}
	}
}

// pinnedDigest is the first 8 bytes of sha256("01A"), in hex.
const pinnedDigest = "f8fec7a56646e090"

func TestBlockID(t *testing.T) {
	first := BlockID("01A", 1)
	seen := map[string]bool{}
	for _, id := range []string{"01A", "01B", strings.Repeat("x", 200)} {
		for _, i := range []int{1, 2, 99, 10000, MaxBlocks} {
			b := BlockID(id, i)
			if len(b) != len(first) {
				t.Errorf("BlockID(%q, %d) = %q has %d characters, BlockID(01A, 1) %d: a blob's block ids must have one length", id, i, b, len(b), len(first))
			}
			if seen[b] {
				t.Errorf("BlockID(%q, %d) = %q repeats", id, i, b)
			}
			seen[b] = true
			raw, err := base64.StdEncoding.DecodeString(b)
			if err != nil || len(raw) > 64 {
				t.Errorf("BlockID(%q, %d) = %q is not base64 of at most 64 bytes", id, i, b)
			}
		}
	}
	// Pinned: a changed recipe would strand the blocks of transfers under
	// way when ferry is upgraded.
	if got, want := BlockID("01A", 7), base64.StdEncoding.EncodeToString([]byte("ferry-"+pinnedDigest+"-000007")); got != want {
		t.Errorf("BlockID(01A, 7) = %q, want %q", got, want)
	}
}

func TestPlan(t *testing.T) {
	const id = "01PLAN"
	planned := domain.State{ID: id, Request: domain.Requested{Size: 25, ChunkSize: 10, Chunks: 3}}
	empty := domain.State{ID: id, Request: domain.Requested{Size: 0, ChunkSize: 10, Chunks: 1}}
	sourceChunked := domain.State{ID: id, BytesSent: 12, Request: domain.Requested{Chunks: 3}}
	b := func(i int) string { return BlockID(id, i) }
	for _, c := range []struct {
		name              string
		st                domain.State
		committed, staged map[string]int64
		want              []string
		kind              domain.Kind
	}{
		{"every block staged", planned, nil, map[string]int64{b(1): 10, b(2): 10, b(3): 5}, []string{b(1), b(2), b(3)}, ""},
		{"already committed", planned, map[string]int64{b(1): 10, b(2): 10, b(3): 5}, nil, []string{b(1), b(2), b(3)}, ""},
		{"another transfer's blocks are left out", planned, map[string]int64{BlockID("other", 1): 10},
			map[string]int64{b(1): 10, b(2): 10, b(3): 5, BlockID("other", 2): 3}, []string{b(1), b(2), b(3)}, ""},
		{"a missing block", planned, nil, map[string]int64{b(1): 10, b(3): 5}, nil, domain.KindNotFound},
		{"a block of the wrong size", planned, nil, map[string]int64{b(1): 10, b(2): 9, b(3): 5}, nil, domain.KindInvalid},
		{"an empty file has no block", empty, nil, nil, nil, ""},
		{"a source-chunked transfer", sourceChunked, nil, map[string]int64{b(1): 5, b(2): 7}, []string{b(1), b(2)}, ""},
		{"a source-chunked transfer short of bytes", sourceChunked, nil, map[string]int64{b(1): 5}, nil, domain.KindNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := plan(c.st, c.committed, c.staged)
			if domain.KindOf(err) != c.kind && !(err == nil && c.kind == "") {
				t.Fatalf("plan error %v, want kind %q", err, c.kind)
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("plan = %v, want %v", got, c.want)
			}
		})
	}
}

// chunkSource is a transport.Source whose every chunk reads as body, or
// fails with err.
type chunkSource struct {
	body []byte
	err  error
}

func (s chunkSource) OpenChunk(context.Context, domain.State, domain.Chunk) (io.ReadCloser, error) {
	if s.err != nil {
		return nil, s.err
	}
	return io.NopCloser(bytes.NewReader(s.body)), nil
}

func TestReadChunk(t *testing.T) {
	small, large := bytes.Repeat([]byte("s"), 1000), bytes.Repeat([]byte("L"), memoryLimit+5)
	for _, c := range []struct {
		name   string
		body   []byte
		err    error
		length int64 // -1: the source chooses
		inFile bool
		kind   domain.Kind
	}{
		{"a small chunk stays in memory", small, nil, int64(len(small)), false, ""},
		{"a large chunk goes to a file", large, nil, int64(len(large)), true, ""},
		{"a chunk of exactly the memory limit", large[:memoryLimit], nil, memoryLimit, false, ""},
		{"an empty chunk", nil, nil, 0, false, ""},
		{"a source-chunked chunk", large, nil, -1, true, ""},
		{"a source longer than the chunk", small, nil, int64(len(small)) - 1, false, domain.KindConflict},
		{"a large source longer than the chunk", large, nil, memoryLimit + 1, true, domain.KindConflict},
		{"a source shorter than the chunk", small, nil, int64(len(small)) + 1, false, domain.KindConflict},
		{"a missing source", nil, domain.Errorf(domain.KindNotFound, "gone"), 10, false, domain.KindNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := New(nil, nil, chunkSource{body: c.body, err: c.err})
			b, err := tr.read(context.Background(), domain.State{ID: "01READ"}, domain.Chunk{Index: 1, Length: c.length}, "op")
			if c.kind != "" {
				if domain.KindOf(err) != c.kind {
					t.Fatalf("read = %v, want kind %s", err, c.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			defer b.Close()
			if (b.f != nil) != c.inFile {
				t.Errorf("in a file: %v, want %v", b.f != nil, c.inFile)
			}
			got, err := io.ReadAll(b.body())
			if err != nil || !bytes.Equal(got, c.body) || b.n != int64(len(c.body)) {
				t.Errorf("body reads %d bytes (n %d), %v; want the source's %d", len(got), b.n, err, len(c.body))
			}
			if sum := md5.Sum(c.body); !bytes.Equal(b.md5, sum[:]) {
				t.Errorf("md5 %x, want %x", b.md5, sum)
			}
			if b.f != nil {
				name := b.f.Name()
				b.Close()
				if _, err := os.Stat(name); !os.IsNotExist(err) {
					t.Errorf("the spool file %s is left behind: %v", name, err)
				}
			}
		})
	}
}

// secretMap resolves references from a map.
type secretMap map[string]string

func (s secretMap) Resolve(_ context.Context, ref string) ([]byte, error) {
	if v, ok := s[ref]; ok {
		return []byte(v), nil
	}
	return nil, domain.Errorf(domain.KindNotFound, "secret %s does not exist", ref)
}

func TestBegin(t *testing.T) {
	ep := func(cred, ref string) Endpoint {
		e := Endpoint{ServiceURL: "https://ferrytest.blob.core.windows.net/", Account: "ferrytest", Container: "inbound"}
		if cred == "sas" {
			e.SAS = ref
		} else {
			e.SharedKey = ref
		}
		return e.WithDefaults()
	}
	tr := New(map[string]Endpoint{
		"key":       ep("key", "secret:key"),
		"sas":       ep("sas", "secret:sas"),
		"bad-key":   ep("key", "secret:not-base64"),
		"empty-sas": ep("sas", "secret:empty"),
		"no-secret": ep("key", "secret:missing"),
		"down":      ep("key", "secret:down"),
	}, unavailable{secretMap{
		"secret:key":        base64.StdEncoding.EncodeToString([]byte("an account key")),
		"secret:sas":        "?sv=2024-08-04&sp=rw&sig=abc",
		"secret:not-base64": "not base64!",
		"secret:empty":      " ",
	}}, chunkSource{})
	state := func(typ, endpoint string, size, chunkSize int64) domain.State {
		return domain.State{ID: "01BEGIN", Request: domain.Requested{
			Destination: domain.Destination{Type: typ, Endpoint: endpoint},
			Size:        size, ChunkSize: chunkSize, Chunks: int(domain.ChunkCount(size, chunkSize)),
		}}
	}
	for _, c := range []struct {
		name string
		st   domain.State
		kind domain.Kind
	}{
		{"a shared key", state("azblob", "key", 100, 10), ""},
		{"a SAS", state("azblob", "sas", 100, 10), ""},
		{"another destination type", state("s3", "key", 100, 10), domain.KindInvalid},
		{"an endpoint not in the section", state("azblob", "nowhere", 100, 10), domain.KindInvalid},
		{"more chunks than a blob has blocks", state("azblob", "key", MaxBlocks+1, 1), domain.KindInvalid},
		{"chunks larger than a block", state("azblob", "key", 2*MaxBlockSize+2, MaxBlockSize+1), domain.KindInvalid},
		{"a shared key that is not base64", state("azblob", "bad-key", 100, 10), domain.KindInvalid},
		{"an empty SAS", state("azblob", "empty-sas", 100, 10), domain.KindInvalid},
		{"a secret that does not exist", state("azblob", "no-secret", 100, 10), domain.KindNotFound},
		{"a secret store that is down", state("azblob", "down", 100, 10), domain.KindUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref, err := tr.Begin(context.Background(), c.st)
			if (err == nil && c.kind != "") || (err != nil && domain.KindOf(err) != c.kind) || ref != "" {
				t.Fatalf("Begin = %q, %v; want \"\" and kind %q", ref, err, c.kind)
			}
			if err != nil && (strings.Contains(err.Error(), "not base64!") || strings.Contains(err.Error(), "sig=abc")) {
				t.Errorf("error %q echoes a secret", err)
			}
		})
	}
}

// unavailable is a secret store whose reference secret:down is
// unreachable.
type unavailable struct{ transport.Secrets }

func (u unavailable) Resolve(ctx context.Context, ref string) ([]byte, error) {
	if ref == "secret:down" {
		return nil, domain.Errorf(domain.KindUnavailable, "secret %s: the service is down", ref)
	}
	return u.Secrets.Resolve(ctx, ref)
}
