package esm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestFileCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "checkpoints") // created on first save
	cp := FileCheckpoints{Dir: dir}
	key := CheckpointKey("advance", "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2025-01-01T00:00:00.000", "shardId-00000001-abc")

	t.Run("missing key loads empty", func(t *testing.T) {
		got, err := cp.Load(ctx, key)
		if err != nil || got != "" {
			t.Fatalf("Load = %q, %v; want \"\", nil", got, err)
		}
	})
	t.Run("save then load", func(t *testing.T) {
		for _, seq := range []string{"100", "200", shardEnd} {
			if err := cp.Save(ctx, key, seq); err != nil {
				t.Fatal(err)
			}
			got, err := cp.Load(ctx, key)
			if err != nil || got != seq {
				t.Fatalf("Load = %q, %v; want %q", got, err, seq)
			}
		}
	})
	t.Run("a new store on the same dir sees the checkpoint", func(t *testing.T) {
		got, err := FileCheckpoints{Dir: dir}.Load(ctx, key)
		if err != nil || got != shardEnd {
			t.Fatalf("Load = %q, %v; want %q", got, err, shardEnd)
		}
	})
	t.Run("no temporary files are left", func(t *testing.T) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("dir holds %d entries, want 1", len(entries))
		}
		if name := entries[0].Name(); strings.ContainsAny(name, ":/|") || !strings.HasPrefix(name, "advance_arn_aws_dynamodb") {
			t.Errorf("file name %q is not sanitised", name)
		}
	})
	t.Run("keys that sanitise alike stay apart", func(t *testing.T) {
		a, b := "m|a:b|s", "m|a/b|s"
		if checkpointFileName(a) == checkpointFileName(b) {
			t.Fatalf("%q and %q share a file", a, b)
		}
		if err := cp.Save(ctx, a, "1"); err != nil {
			t.Fatal(err)
		}
		if err := cp.Save(ctx, b, "2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := cp.Load(ctx, a); got != "1" {
			t.Errorf("Load(%q) = %q, want 1", a, got)
		}
	})
	t.Run("hostile keys stay inside the dir", func(t *testing.T) {
		for _, k := range []string{"../../etc/passwd", ".", "..", "", strings.Repeat("x", 1000)} {
			name := checkpointFileName(k)
			if strings.Contains(name, "/") || strings.HasPrefix(name, ".") || len(name) > 255 {
				t.Errorf("checkpointFileName(%.20q) = %q", k, name)
			}
		}
	})
	t.Run("empty dir is an error", func(t *testing.T) {
		if err := (FileCheckpoints{}).Save(ctx, key, "1"); err == nil {
			t.Error("Save with empty Dir succeeded")
		}
	})
	t.Run("concurrent keys", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				k := CheckpointKey("m", "arn", string(rune('a'+i)))
				for j := range 20 {
					if err := cp.Save(ctx, k, strings.Repeat("9", j+1)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if got, _ := cp.Load(ctx, CheckpointKey("m", "arn", "c")); got != strings.Repeat("9", 20) {
			t.Errorf("Load = %q", got)
		}
	})
}

func TestMemoryCheckpoints(t *testing.T) {
	ctx := context.Background()
	var cp MemoryCheckpoints
	if got, err := cp.Load(ctx, "k"); got != "" || err != nil {
		t.Fatalf("Load = %q, %v", got, err)
	}
	if err := cp.Save(ctx, "k", "5"); err != nil {
		t.Fatal(err)
	}
	if got, _ := cp.Load(ctx, "k"); got != "5" {
		t.Fatalf("Load = %q, want 5", got)
	}
}
