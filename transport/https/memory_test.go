package https

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/transporttest"
)

// TestBoundedMemory streams a 1 GiB file, generated as it is read and
// never stored, in each mode to a receiver that hashes it as it reads
// (the ranges arrive in order): the heap in use (sampled every 5 ms,
// client and server together) stays far below the file's size, and below
// one chunk. It is a memory bound, not a timing one.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB per mode")
	}
	for _, mode := range []string{ModeWhole, ModeRanged} {
		t.Run(mode, func(t *testing.T) { boundedMemory(t, mode) })
	}
}

func boundedMemory(t *testing.T, mode string) {
	const (
		size      = 1 << 30
		chunkSize = 64 * domain.MiB
		bound     = 64 * domain.MiB
	)
	rc := newReceiver(t, nil)
	var (
		mu       sync.Mutex
		h        = sha256.New()
		count    int64
		requests int
	)
	rc.check = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		requests++
		n, err := io.Copy(h, r.Body)
		count += n
		if err != nil {
			return refuse(w, 400, err.Error())
		}
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	f := newFixture(t, rc, `{"url": "URL/upload", "mode": "`+mode+`", "caBundle": "secret:ca"}`, nil)
	id := newID("big")
	f.src.generate(id, 7, size)
	st := newState(t, id, size, chunkSize)

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := base.HeapInuse
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	start := time.Now()
	_, err := deliver(context.Background(), f.tr, st)
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: streamed %d MiB in %s; heap in use %.1f MiB before, peak %.1f MiB (growth %.1f MiB)",
		mode, size>>20, time.Since(start).Round(time.Millisecond), mib(base.HeapInuse), mib(peak), mib(peak-min(peak, base.HeapInuse)))
	if peak > bound {
		t.Errorf("peak heap in use %.1f MiB, want under %d MiB", mib(peak), bound>>20)
	}
	mu.Lock()
	defer mu.Unlock()
	if sum := hex.EncodeToString(h.Sum(nil)); count != size || sum != transporttest.PayloadSHA256(7, size) {
		t.Errorf("received %d bytes with sha256 %s, want %d bytes as generated", count, sum, int64(size))
	}
	if want := map[string]int{ModeWhole: 1, ModeRanged: size / chunkSize}[mode]; requests != want {
		t.Errorf("%d requests, want %d", requests, want)
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }
