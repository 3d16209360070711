//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/cost"
	"github.com/ferryhq/ferry/internal/local/opcount"
	"github.com/ferryhq/ferry/store"
)

// loadClients is how many uploads (and, for the reference, copies) the load
// benchmark runs at once.
const loadClients = 32

// BenchmarkLoad uploads many small transfers as fast as loadClients
// goroutines can and waits for them all to be Delivered through ferry
// local: 1,000 one-chunk transfers (64 KiB, to an S3 destination: one
// UploadPartCopy each) and 100 ten-chunk transfers (640 KiB in 64 KiB
// chunks, to the null destination, which reads nothing: S3 destinations
// need 5 MiB chunks, and 100 × 50 MiB is more than moto holds well). For
// each it reports transfers a second, p50/p99/max of Requested → Delivered
// (the events' times), the AWS calls per transfer by operation as ferry
// local counted them (DynamoDB reads and item writes, EventBridge entries,
// …), the stream batches and their sizes, ferry local's peak RSS and CPU
// seconds (a fresh process each), and, as the reference in the same run,
// the same objects copied with CopyObject from loadClients goroutines.
// Load/cost then prints the list-price cost of 1,000 transfers of 1 MiB
// and of 1 GiB (internal/cost) from those counts.
//
// FERRY_BENCH_LOAD_N and FERRY_BENCH_LOAD_TEN_N change the counts (for
// development); FERRY_BENCH_PROFILE=DIR has ferry local write a CPU
// profile per case there (go tool pprof -top bin/ferry DIR/load-*.pprof).
func BenchmarkLoad(b *testing.B) {
	n1, n10 := envInt(b, "FERRY_BENCH_LOAD_N", 1000), envInt(b, "FERRY_BENCH_LOAD_TEN_N", 100)
	var one, ten *loadResult
	b.Run(fmt.Sprintf("%dx1chunk", n1), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			one = loadRun(b, "outbound/load/", "load-1", n1, 64*kib, 1)
		}
	})
	b.Run(fmt.Sprintf("%dx10chunks", n10), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ten = loadRun(b, "outbound/load-ten/", "load-10", n10, 640*kib, 10)
		}
	})
	b.Run("cost", func(b *testing.B) {
		if one == nil || ten == nil {
			b.Skip("needs both load cases in the same run")
		}
		for i := 0; i < b.N; i++ {
			printCost(b, one, ten)
		}
	})
}

const kib = 1024

// loadResult is what one load case measured.
type loadResult struct {
	n      int
	chunks int
	ops    loadStats // ferry local's counts over the case
}

// loadStats is ferry local's stats.json.
type loadStats struct {
	DynamodbReads  int64 `json:"dynamodbReads"`
	DynamodbWrites int64 `json:"dynamodbWrites"`
	opcount.Stats
}

func (e *env) loadStats(tb testing.TB) loadStats {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(e.stateDir, "stats.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var s loadStats
	if err := json.Unmarshal(data, &s); err != nil {
		tb.Fatal(err)
	}
	return s
}

func loadRun(b *testing.B, prefix, name string, n int, size int64, chunks int) *loadResult {
	b.StopTimer()
	if dir := os.Getenv("FERRY_BENCH_PROFILE"); dir != "" {
		path, err := filepath.Abs(filepath.Join(dir, name+".pprof"))
		if err != nil {
			b.Fatal(err)
		}
		stack.localArgs = []string{"--cpuprofile", path}
		defer func() { stack.localArgs = nil; restartLocal(b) }()
	}
	restartLocal(b) // a fresh process: its peak RSS and CPU time are this case's
	ctx := context.Background()
	sender := uniq(name)
	payload := make([]byte, size)
	(&prng{r: rand.NewPCG(uint64(size), 1)}).Read(payload)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%s/%05d.bin", prefix, sender, i)
	}
	before := stack.loadStats(b)
	cpu0 := stack.localCPUSeconds(b)

	start := time.Now()
	b.StartTimer()
	ids := make([]string, n)
	parallel(b, n, func(i int) error {
		body := slices.Clone(payload)
		copy(body, strconv.Itoa(i)) // a distinct object each
		bucket := aws.String(stack.res.UploadBucket)
		put, err := stack.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: bucket, Key: &keys[i], Body: bytes.NewReader(body),
			Metadata: map[string]string{"sender": sender, "recipient": "load"},
		})
		if err != nil {
			return err
		}
		// The transfer's id, as `ferry send` learns it.
		head, err := stack.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: bucket, Key: &keys[i], VersionId: put.VersionId})
		if err != nil {
			return err
		}
		ids[i] = domain.ObjectTransferID(*bucket, keys[i], aws.ToString(head.VersionId), aws.ToString(head.ETag), aws.ToTime(head.LastModified))
		return nil
	})
	uploaded := time.Since(start)
	states := waitDelivered(b, ids, chunks)
	b.StopTimer()
	var last time.Time
	lat := make([]time.Duration, 0, n)
	for _, st := range states {
		lat = append(lat, st.Updated.Sub(st.Created))
		if st.Updated.After(last) {
			last = st.Updated
		}
	}
	elapsed := last.Sub(start)
	slices.Sort(lat)
	after, settled := settledStats(b)
	cpu := stack.localCPUSeconds(b) - cpu0
	rss := stack.localPeakRSS(b)
	ops := loadStats{DynamodbReads: after.DynamodbReads - before.DynamodbReads, DynamodbWrites: after.DynamodbWrites - before.DynamodbWrites,
		Stats: after.Stats.Sub(before.Stats)}

	// The reference: the same objects copied server-side by the SDK, at
	// the same concurrency.
	directStart := time.Now()
	parallel(b, n, func(i int) error {
		_, err := stack.s3.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: aws.String(stack.res.DeliveryBucket), Key: aws.String("load-direct/" + keys[i]),
			CopySource: aws.String(stack.res.UploadBucket + "/" + keys[i]),
		})
		return err
	})
	direct := time.Since(directStart)

	rate, directRate := float64(n)/elapsed.Seconds(), float64(n)/direct.Seconds()
	per := func(v int64) float64 { return float64(v) / float64(n) }
	b.ReportMetric(rate, "transfers/s")
	b.ReportMetric(directRate, "sdk-copies/s")
	b.ReportMetric(directRate/rate, "ratio")
	b.ReportMetric(quantile(lat, 0.50).Seconds(), "p50-s")
	b.ReportMetric(quantile(lat, 0.99).Seconds(), "p99-s")
	b.ReportMetric(lat[len(lat)-1].Seconds(), "max-s")
	b.ReportMetric(per(ops.DynamodbReads), "ddb-reads/transfer")
	b.ReportMetric(per(ops.DynamodbWrites), "ddb-writes/transfer")
	b.ReportMetric(per(ops.EventBridgeEntries), "eb-entries/transfer")
	b.ReportMetric(float64(rss)/mib, "peak-RSS-MiB")
	b.ReportMetric(cpu, "cpu-s")

	var out strings.Builder
	fmt.Fprintf(&out, "\n%d transfers of %d KiB in %d chunk(s), uploaded from %d goroutines in %s\n", n, size/kib, chunks, loadClients, uploaded.Round(time.Millisecond))
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ferry: first upload → last Delivered\t%s\t%.2f transfers/s\n", elapsed.Round(time.Millisecond), rate)
	fmt.Fprintf(tw, "publish caught up (counts settled)\t%s after\tthe last transfer was seen Delivered\n", settled.Round(time.Second))
	fmt.Fprintf(tw, "SDK CopyObject of the same objects\t%s\t%.2f copies/s (ratio %.1f)\n", direct.Round(time.Millisecond), directRate, directRate/rate)
	fmt.Fprintf(tw, "Requested → Delivered\tp50 %s\tp99 %s, max %s\n", quantile(lat, 0.5).Round(time.Millisecond), quantile(lat, 0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Fprintf(tw, "ferry local\tpeak RSS %d MiB\t%.1f CPU seconds (%.1f ms a transfer)\n", rss/mib, cpu, 1000*cpu/float64(n))
	fmt.Fprintf(tw, "DynamoDB a transfer\t%.2f reads\t%.2f item writes\n", per(ops.DynamodbReads), per(ops.DynamodbWrites))
	fmt.Fprintf(tw, "EventBridge a transfer\t%.2f entries\tin %.2f PutEvents calls\n", per(ops.EventBridgeEntries), per(ops.Calls["EventBridge.PutEvents"]))
	for _, f := range sortedKeys(ops.Functions) {
		fn := ops.Functions[f]
		fmt.Fprintf(tw, "%s invocations\t%d (%.2f a transfer)\tbatch mean %.1f, max %d, by size %s; %.1f s run time\n",
			f, fn.Invocations, per(fn.Invocations), float64(fn.Records)/float64(fn.Invocations), fn.MaxBatch, histogram(fn.Batches), fn.Seconds)
	}
	var calls int64
	for _, v := range ops.Calls {
		calls += v
	}
	fmt.Fprintf(tw, "AWS calls a transfer, by operation\t%.2f in all\t\n", per(calls))
	for _, op := range ops.Ops() {
		fmt.Fprintf(tw, "  %s\t%.2f\t\n", op, per(ops.Calls[op]))
	}
	_ = tw.Flush()
	b.Log(out.String())
	fmt.Print(out.String())
	return &loadResult{n: n, chunks: chunks, ops: ops}
}

// settledStats waits until ferry local has caught up (publish projects
// and announces the events after Delivered is stored): until its item
// writes and EventBridge entries have stayed the same for 20 seconds (a
// publish batch against a busy moto can take that long between writes),
// for at most ten minutes. It returns the counts and how long that took.
func settledStats(b *testing.B) (loadStats, time.Duration) {
	b.Helper()
	start, still := time.Now(), time.Now()
	last := stack.loadStats(b)
	for time.Since(start) < 10*time.Minute {
		time.Sleep(2500 * time.Millisecond)
		s := stack.loadStats(b)
		if s.DynamodbWrites != last.DynamodbWrites || s.EventBridgeEntries != last.EventBridgeEntries {
			last, still = s, time.Now()
			continue
		}
		if time.Since(still) >= 20*time.Second {
			return s, still.Sub(start)
		}
	}
	return last, time.Since(start)
}

// waitDelivered waits until every transfer of ids is Delivered in chunks
// chunks, and returns their states. It reads the event store by key, each
// round the pending transfers oldest first until five are not done, then
// sleeps two seconds: history queries (GSIs, which moto answers by reading
// every item) or a poll of every transfer would load moto more than ferry
// does. It fails at the first failed transfer, or when none is done for
// five minutes.
func waitDelivered(b *testing.B, ids []string, chunks int) []domain.State {
	b.Helper()
	ctx := context.Background()
	pending := slices.Clone(ids)
	var done []domain.State
	progressAt := time.Now()
	for len(pending) > 0 {
		var still []string
		for i, id := range pending {
			if len(still) >= 5 {
				still = append(still, pending[i:]...)
				break
			}
			st, err := stack.store.Load(ctx, id)
			switch {
			case err != nil && !errors.Is(err, store.ErrNotFound):
				b.Fatalf("load %s: %v", id, err)
			case err == nil && st.Status == domain.StatusDelivered:
				if st.Request.Chunks != chunks {
					b.Fatalf("transfer %s delivered in %d chunks, want %d", id, st.Request.Chunks, chunks)
				}
				done = append(done, st)
				progressAt = time.Now()
			case err == nil && (st.Status == domain.StatusFailed || st.Status == domain.StatusCancelled):
				b.Fatalf("transfer %s is %s: %+v\n%s", id, st.Status, st.LastFailure, stack.timeline(id))
			default:
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		if time.Since(progressAt) > 5*time.Minute {
			b.Fatalf("%d of %d transfers delivered, none more for 5 minutes; the oldest pending is %s\n%s", len(done), len(ids), pending[0], stack.timeline(pending[0]))
		}
		time.Sleep(2 * time.Second)
	}
	return done
}

// parallel runs do(0) … do(n-1) from loadClients goroutines, failing the
// benchmark at the first error.
func parallel(b *testing.B, n int, do func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, loadClients)
	for range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// localCPUSeconds returns the user and system CPU time ferry local has used.
func (e *env) localCPUSeconds(tb testing.TB) float64 {
	tb.Helper()
	e.mu.Lock()
	pid := e.local.cmd.Process.Pid
	e.mu.Unlock()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name (which may hold spaces) in
	// parentheses; utime and stime are the 14th and 15th, in clock ticks
	// (USER_HZ, 100 on Linux).
	_, rest, _ := strings.Cut(string(data), ") ")
	f := strings.Fields(rest)
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func histogram(h map[string]int64) string {
	sizes := make([]int, 0, len(h))
	for k := range h {
		n, _ := strconv.Atoi(k)
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	var parts []string
	for _, s := range sizes {
		parts = append(parts, fmt.Sprintf("%d×%d", h[strconv.Itoa(s)], s))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// copyPartSeconds is how long an advance invocation waits on one chunk's
// UploadPartCopy in AWS (20 MiB; scale.md's 50–200 ms, the upper end),
// which the null destination's chunks do not measure.
const copyPartSeconds = 0.2

// printCost prints the list-price cost of 1,000 transfers of 1 MiB and of
// 1 GiB from the operations counted in the load cases. A 1 MiB transfer is
// one chunk at the default chunk size, so it costs what a one-chunk
// transfer was counted to cost. A 1 GiB transfer has 52 chunks of the
// default 20 MiB: the one-chunk transfer plus 51 more chunks, each costing
// what a chunk more cost in the ten-chunk case ((ten − one)/9 of every
// count but S3's), plus one UploadPartCopy and copyPartSeconds of advance
// at its memory for the S3 destination.
func printCost(b *testing.B, one, ten *loadResult) {
	perTransfer := func(r *loadResult) cost.Ops {
		n := float64(r.n)
		calls := map[string]float64{}
		for op, v := range r.ops.Calls {
			calls[op] = float64(v) / n
		}
		o, _ := cost.Calls(calls)
		seconds := map[string]float64{}
		for f, fn := range r.ops.Functions {
			o.Invocations += float64(fn.Invocations) / n
			seconds[f] = fn.Seconds / n
		}
		o.GBSeconds = cost.GBSeconds(seconds)
		o.DynamoDBReads = float64(r.ops.DynamodbReads) / n
		o.DynamoDBWrites = float64(r.ops.DynamodbWrites) / n
		o.EventBridgeEntries = float64(r.ops.EventBridgeEntries) / n
		o.SQS++ // S3's notification of the upload, sent to the intake queue by S3 (moto), not by ferry
		return o
	}
	o1, o10 := perTransfer(one), perTransfer(ten)
	var chunk cost.Ops
	extra := float64(ten.chunks - one.chunks)
	clamp := func(v float64) float64 { return max(0, v/extra) }
	chunk.Invocations = clamp(o10.Invocations - o1.Invocations)
	chunk.GBSeconds = clamp(o10.GBSeconds-o1.GBSeconds) + copyPartSeconds*float64(cost.MemoryMB["advance"])/1024
	chunk.DynamoDBWrites = clamp(o10.DynamoDBWrites - o1.DynamoDBWrites)
	chunk.DynamoDBReads = clamp(o10.DynamoDBReads - o1.DynamoDBReads)
	chunk.StreamReads = clamp(o10.StreamReads - o1.StreamReads)
	chunk.SQS = clamp(o10.SQS - o1.SQS)
	chunk.EventBridgeEntries = clamp(o10.EventBridgeEntries - o1.EventBridgeEntries)
	chunk.KMS = clamp(o10.KMS - o1.KMS)
	chunk.S3Tier1 = 1 // the chunk's UploadPartCopy
	const gib = 1 << 30
	chunks := (gib + domain.DefaultChunkSize - 1) / domain.DefaultChunkSize
	big := o1.Add(chunk, float64(chunks-1))
	bills := []cost.Bill{cost.Of(1000, o1), cost.Of(1000, big)}
	var out strings.Builder
	fmt.Fprintf(&out, "\nPer transfer: one chunk %+v\nPer chunk more: %+v\n\n", o1, chunk)
	cost.Print(&out, []string{"1 MiB", fmt.Sprintf("1 GiB (%d chunks)", chunks)}, bills, []int64{mib, gib})
	b.Log(out.String())
	fmt.Print(out.String())
	b.ReportMetric(bills[0].Total(), "$/1000x1MiB")
	b.ReportMetric(bills[1].Total(), "$/1000x1GiB")
}
