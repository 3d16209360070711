//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAPI loads ferry local's HTTP API with wrk (Debian's, which
// `make bench` installs) for a few seconds per route: GET /transfers/{id}
// and POST /transfers with a 1 KB body, 16 connections, then one, and
// reports requests a second, p50 and p99 latency and the DynamoDB reads
// and writes per request (the whole stack's, counted until it settles: a
// posted file's delivery is in them). The reference, in the same process, is the store's own Load of
// the same transfer through the SDK, one at a time: the ratio of the API's
// single-connection p50 to it is what API Gateway's emulation, the
// authorizer and the handler add to the one Query a GET costs.
func BenchmarkAPI(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is not installed: run `make bench`")
	}
	key := apiKey(b, uniq("bench-api"), "partner")
	stack.mu.Lock()
	base := stack.local.api
	stack.mu.Unlock()
	// One posted transfer to read.
	req, _ := http.NewRequest("POST", base+"/transfers?recipient=bench&filename=seed.csv", strings.NewReader("a,b\n"))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		b.Fatalf("seed POST: %v %v", err, resp)
	}
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/transfers/")
	resp.Body.Close()

	// The reference: the store's Load of that transfer, 500 times.
	var loads []time.Duration
	for range 500 {
		start := time.Now()
		if _, err := stack.store.Load(context.Background(), id); err != nil {
			b.Fatal(err)
		}
		loads = append(loads, time.Since(start))
	}
	slices.Sort(loads)
	ref := loads[len(loads)/2]
	b.Logf("reference: store.Load p50 %s (SDK to moto, one at a time)", ref)

	post := filepath.Join(b.TempDir(), "post.lua")
	body := strings.Repeat("x", 1023) + "\n"
	script := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"text/plain\"\n", body)
	if err := os.WriteFile(post, []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, target string
		args         []string
	}{
		{"GET /transfers/{id}", base + "/transfers/" + id, nil},
		{"POST /transfers 1KB", base + "/transfers?recipient=bench&filename=b.csv", []string{"-s", post}},
	} {
		for _, conns := range []int{16, 1} {
			r0, w0 := quiescent(b)
			args := append([]string{"-t", strconv.Itoa(min(2, conns)), "-c", strconv.Itoa(conns), "-d", "5s", "--latency", "-H", "Authorization: Bearer " + key}, c.args...)
			out, err := exec.Command(wrk, append(args, c.target)...).CombinedOutput()
			if err != nil {
				b.Fatalf("wrk: %v\n%s", err, out)
			}
			r1, w1 := quiescent(b)
			w := parseWrk(b, out)
			if w.non2xx > 0 {
				b.Fatalf("%s: %d responses were not 2xx:\n%s", c.name, w.non2xx, out)
			}
			line := fmt.Sprintf("%s, %d connections: %.0f requests/s, p50 %s, p99 %s; DynamoDB %.2f reads and %.2f writes per request",
				c.name, conns, w.rps, w.p50, w.p99, float64(r1-r0)/float64(w.requests), float64(w1-w0)/float64(w.requests))
			if conns == 1 && strings.HasPrefix(c.name, "GET") {
				line += fmt.Sprintf("; p50 %.2f× the store's own Load", float64(w.p50)/float64(ref))
			}
			b.Log(line)
		}
	}
}

// quiescent waits until the stack's DynamoDB counts stop moving — every
// posted file delivered — and returns them, so that each run's reads and
// writes are its own requests' and their transfers', whole.
func quiescent(b *testing.B) (reads, writes int64) {
	b.Helper()
	reads, writes = stack.dynamoStats(b)
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); {
		time.Sleep(2500 * time.Millisecond) // stats.json is written every second
		r, w := stack.dynamoStats(b)
		if r == reads && w == writes {
			return r, w
		}
		reads, writes = r, w
	}
	b.Fatal("the stack did not settle in 5 minutes")
	return 0, 0
}

type wrkResult struct {
	rps              float64
	p50, p99         time.Duration
	requests, non2xx int64
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

func parseWrk(b *testing.B, out []byte) wrkResult {
	b.Helper()
	var r wrkResult
	m := wrkRPS.FindSubmatch(out)
	n := wrkRequests.FindSubmatch(out)
	if m == nil || n == nil {
		b.Fatalf("cannot read wrk's output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.requests, _ = strconv.ParseInt(string(n[1]), 10, 64)
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	for _, p := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(p[2]), 64)
		d := time.Duration(v * float64(map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(p[3])]))
		if bytes.Equal(p[1], []byte("50")) {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	return r
}
