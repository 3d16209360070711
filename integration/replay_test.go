//go:build integration

package integration

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// replayed returns the Replayed events of transfer id.
func replayed(t *testing.T, id string) []domain.Replayed {
	t.Helper()
	var out []domain.Replayed
	for _, ev := range stack.events(t, id) {
		if p, ok := ev.Payload.(domain.Replayed); ok {
			out = append(out, p)
		}
	}
	return out
}

var replayedLine = regexp.MustCompile(`(?m)^replayed ([0-9A-HJKMNP-TV-Z]{26}) `)

// TestBulkReplay: 50 transfers fail for good (their destination bucket
// does not exist). A dry run replays none; --max 20 replays exactly 20;
// the same command again replays the next 20, never one of the first,
// although those have failed again since.
func TestBulkReplay(t *testing.T) {
	start := time.Now().UTC().Add(-time.Second)
	dir := uniq("outbound/refused/bulk")
	ids := make([]string, 50)
	for i := range ids {
		ids[i], _ = stack.upload(t, fmt.Sprintf("%s/%02d.bin", dir, i), 1000, nil)
	}
	for _, id := range ids {
		st := stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
		if f := st.LastFailure; f == nil || f.Kind != domain.KindNotFound || f.Retryable {
			t.Fatalf("%s failed with %+v, want a final not_found", id, f)
		}
	}
	waitAllFailed(t, ids, start)

	reason := uniq("bucket created")
	since := start.Format(time.RFC3339)
	bulk := func(extra ...string) string {
		t.Helper()
		args := append([]string{"replay", "--status", "FAILED", "--route", "refused", "--since", since, "--max", "20", "--rate", "50/s", "--reason", reason}, extra...)
		out, code := stack.ferry(t, args...)
		if code != 0 {
			t.Fatalf("ferry %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}

	out := bulk("--dry-run")
	if n := strings.Count(out, "would replay 01"); n != 20 {
		t.Errorf("--dry-run listed %d transfers, want 20:\n%s", n, out)
	}
	for _, id := range ids {
		if r := replayed(t, id); len(r) != 0 {
			t.Fatalf("--dry-run replayed %s: %+v", id, r)
		}
	}

	first := replayedIDs(t, bulk())
	if len(first) != 20 {
		t.Fatalf("first run replayed %d, want 20", len(first))
	}
	// The bucket is still missing: each replayed transfer fails again.
	for _, id := range first {
		stack.waitFor(t, id, time.Minute, "failed again", func(st domain.State) bool {
			return st.Status == domain.StatusFailed && st.Attempt == 1 && !st.Started
		})
	}
	waitAllFailed(t, ids, start)
	second := replayedIDs(t, bulk())
	if len(second) != 20 {
		t.Fatalf("second run replayed %d, want 20", len(second))
	}
	for _, id := range second {
		if slices.Contains(first, id) {
			t.Errorf("%s replayed by both runs", id)
		}
	}
	total := 0
	for _, id := range ids {
		r := replayed(t, id)
		total += len(r)
		if len(r) > 1 {
			t.Errorf("%s replayed %d times", id, len(r))
		}
		for _, p := range r {
			if p.Reason != reason || !strings.HasPrefix(p.Actor, "local:") {
				t.Errorf("%s replayed by %q for %q, want the local user and %q", id, p.Actor, p.Reason, reason)
			}
		}
	}
	if total != 40 {
		t.Errorf("%d replays in all, want 40", total)
	}
}

// waitAllFailed waits until the history lists every id as FAILED, as bulk
// replay selects from it.
func waitAllFailed(t *testing.T, ids []string, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		listed := map[string]bool{}
		q := store.Query{Status: domain.StatusFailed, Route: "refused", Since: since, Limit: store.MaxLimit}
		for {
			page, err := stack.store.History(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.Items {
				listed[s.ID] = true
			}
			if page.Cursor == "" {
				break
			}
			q.Cursor = page.Cursor
		}
		missing := 0
		for _, id := range ids {
			if !listed[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history lists %d of %d transfers as FAILED", len(ids)-missing, len(ids))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func replayedIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, m := range replayedLine.FindAllStringSubmatch(out, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// TestReplayAfterTheFixDelivers: a transfer fails for good (its bucket is
// missing); once the bucket exists, an operator's replay delivers it. A
// replay of the delivered transfer is refused and records nothing; an
// unknown id is an error; cancel ends a failed transfer.
func TestReplayAfterTheFixDelivers(t *testing.T) {
	ctx := context.Background()
	const bucket = "ferry-integration-fixable"
	emptyAndDelete(t, bucket)
	key := uniq("outbound/fixable/report") + ".csv"
	id, sum := stack.upload(t, key, 12<<20, map[string]string{"sender": "org-a", "recipient": "org-b"})
	stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })

	if _, err := stack.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emptyAndDelete(t, bucket) })
	out, code := stack.ferry(t, "replay", id, "--reason", "bucket created")
	if code != 0 || !strings.Contains(out, "replayed "+id) {
		t.Fatalf("ferry replay: exit %d\n%s", code, out)
	}
	stack.waitFor(t, id, time.Minute, "delivered", func(st domain.State) bool { return st.Status == domain.StatusDelivered })
	if got := stack.objectSHA256(t, bucket, "fixed/"+path.Base(key)); got != sum {
		t.Errorf("delivered sha256 %s, want %s", got, sum)
	}
	types := eventTypes(stack.events(t, id))
	if i := slices.Index(types, domain.TypeReplayed); i < 0 || !slices.Contains(types[:i], domain.TypeFailed) || types[len(types)-1] != domain.TypeDelivered {
		t.Errorf("events = %v, want Failed, then Replayed, then delivery", types)
	}
	if r := replayed(t, id); len(r) != 1 || r[0].Reason != "bucket created" || !strings.HasPrefix(r[0].Actor, "local:") {
		t.Errorf("Replayed = %+v, want the local user and the reason", r)
	}

	before := len(stack.events(t, id))
	out, code = stack.ferry(t, "replay", id, "--reason", "again")
	if code != 1 || !strings.Contains(out, "refused, nothing recorded: only a failed transfer can be replayed; this one is DELIVERED") {
		t.Errorf("replay of a delivered transfer: exit %d\n%s", code, out)
	}
	if n := len(stack.events(t, id)); n != before {
		t.Errorf("the refused replay appended %d events", n-before)
	}
	if out, code := stack.ferry(t, "replay", "01NOSUCHTRANSFER0000000000", "--reason", "x"); code != 1 || !strings.Contains(out, "no transfer 01NOSUCHTRANSFER0000000000") {
		t.Errorf("replay of an unknown id: exit %d\n%s", code, out)
	}

	// A failed transfer can be cancelled instead: it is then CANCELLED.
	other, _ := stack.upload(t, uniq("outbound/refused/cancel")+".bin", 1000, nil)
	stack.waitFor(t, other, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
	if out, code := stack.ferry(t, "cancel", other, "--reason", "sent by mistake"); code != 0 || !strings.Contains(out, "cancelled "+other) {
		t.Fatalf("ferry cancel: exit %d\n%s", code, out)
	}
	stack.waitFor(t, other, 10*time.Second, "cancelled", func(st domain.State) bool { return st.Status == domain.StatusCancelled })
}

// emptyAndDelete removes bucket and everything in it, if it exists.
func emptyAndDelete(t *testing.T, bucket string) {
	t.Helper()
	ctx := context.Background()
	out, err := stack.s3.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
	if err != nil {
		return // no such bucket
	}
	for _, v := range out.Versions {
		_, _ = stack.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: v.Key, VersionId: v.VersionId})
	}
	if _, err := stack.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("delete bucket %s: %v", bucket, err)
	}
}
