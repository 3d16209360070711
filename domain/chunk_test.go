package domain

import (
	"math"
	"testing"
)

func TestChunkCount(t *testing.T) {
	for _, tc := range []struct {
		size, chunkSize int64
		want            int
	}{
		{0, 1, 1}, {-1, 10, 1}, {1, 1, 1}, {1, 10, 1}, {9, 10, 1}, {10, 10, 1}, {11, 10, 2}, {25, 10, 3},
		{100 * MiB, DefaultChunkSize, 5}, {100*MiB + 1, DefaultChunkSize, 6},
		{math.MaxInt64, 1, math.MaxInt64}, {math.MaxInt64, math.MaxInt64, 1}, {math.MaxInt64, 2, 1 << 62},
	} {
		if got := ChunkCount(tc.size, tc.chunkSize); got != tc.want {
			t.Errorf("ChunkCount(%d, %d) = %d, want %d", tc.size, tc.chunkSize, got, tc.want)
		}
	}
}

func TestChunkCountPanicsOnBadChunkSize(t *testing.T) {
	for _, cs := range []int64{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("ChunkCount(10, %d) did not panic", cs)
				}
			}()
			ChunkCount(10, cs)
		}()
	}
}

func TestChunkAt(t *testing.T) {
	for _, tc := range []struct {
		size, chunkSize int64
		i               int
		want            Chunk
	}{
		{25, 10, 1, Chunk{Index: 1, Offset: 0, Length: 10}},
		{25, 10, 2, Chunk{Index: 2, Offset: 10, Length: 10}},
		{25, 10, 3, Chunk{Index: 3, Offset: 20, Length: 5}},
		{30, 10, 3, Chunk{Index: 3, Offset: 20, Length: 10}},
		{0, 10, 1, Chunk{Index: 1, Offset: 0, Length: 0}},
		{25, 10, 4, Chunk{Index: 4, Offset: 30, Length: 0}}, // beyond the plan: empty
		{math.MaxInt64, math.MaxInt64/2 + 1, 2, Chunk{Index: 2, Offset: math.MaxInt64/2 + 1, Length: math.MaxInt64 / 2}},
	} {
		if got := ChunkAt(tc.size, tc.chunkSize, tc.i); got != tc.want {
			t.Errorf("ChunkAt(%d, %d, %d) = %+v, want %+v", tc.size, tc.chunkSize, tc.i, got, tc.want)
		}
	}
}
