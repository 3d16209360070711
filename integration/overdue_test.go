//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/overdue"
	"github.com/ferryhq/ferry/internal/app"
)

// TestOverdue runs the scheduled overdue function's handler, as the Lambda
// would, against the emulator's table (the read model ferry local keeps)
// and bus, with its clock set around a deadline: of three expectations of
// a route, the one a real delivery meets yields no event, and the two it
// does not (a workflow nobody sent; two files where one came) yield one
// Transfer Overdue each, however often the check runs; ferry history
// --overdue lists those two.
func TestOverdue(t *testing.T) {
	ctx := context.Background()
	sender := uniq("lab")
	key := "outbound/discard/" + sender + "/results.csv"
	id, _ := stack.upload(t, key, 2048, map[string]string{"sender": sender, "recipient": "trust", "workflow": "PATH-RESULTS"})
	st := stack.waitFor(t, id, 60*time.Second, "delivered", delivered)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		v, err := stack.store.View(ctx, id)
		if err == nil && v.Status == domain.StatusDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the view of %s is not delivered: %+v %v", id, v, err)
		}
	}

	// A deadline a minute or two after the delivery, on the minute.
	by := st.Updated.Truncate(time.Minute).Add(2 * time.Minute)
	expect := func(name, workflow string, count int) map[string]any {
		return map[string]any{"name": sender + "-" + name, "sender": sender, "workflow": workflow, "count": count, "by": by.Format("15:04"), "within": "1h"}
	}
	routes := stackRoutes(t)
	for _, r := range routes["routes"].([]any) {
		if r := r.(map[string]any); r["name"] == "discard" {
			r["expect"] = []any{expect("results", "PATH-RESULTS", 0), expect("other", "OTHER", 0), expect("two", "", 2)}
		}
	}
	cfg := app.Config{Routes: writeRoutes(t, routes), Handler: "overdue", Table: stack.res.Table, EventBus: stack.res.EventBus,
		EventSource: stack.res.EventSource, S3PathStyle: true}
	a, err := app.New(ctx, stack.awsCfg, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	queue := subscribe(t, map[string]any{"source": []string{"ferry"}, "detail-type": []string{overdue.DetailOverdue},
		"detail": map[string]any{"expectation": []string{sender + "-results", sender + "-other", sender + "-two"}}})

	var now time.Time
	a.Overdue.Now = func() time.Time { return now }
	for _, at := range []time.Duration{-10 * time.Minute, 30 * time.Second, 2 * time.Minute, 3 * time.Minute, 10 * time.Minute} {
		now = by.Add(at)
		if err := a.Overdue.Handle(ctx); err != nil {
			t.Fatalf("check at %s: %v", now, err)
		}
	}
	got := overdueEvents(t, queue)
	want := []string{sender + "-other 0/1 " + by.Format(time.RFC3339), sender + "-two 1/2 " + by.Format(time.RFC3339)}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("Transfer Overdue events %q, want %q", got, want)
	}

	out, code := stack.ferry(t, "history", "--overdue", "--since", by.Add(-time.Minute).Format(time.RFC3339), "--until", by.Add(time.Minute).Format(time.RFC3339), "--json")
	if code != 0 {
		t.Fatalf("ferry history --overdue: exit %d\n%s", code, out)
	}
	var listed struct {
		Items []struct {
			Expectation string    `json:"expectation"`
			Route       string    `json:"route"`
			WindowEnd   time.Time `json:"windowEnd"`
			Published   bool      `json:"published"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("ferry history --overdue --json: %v\n%s", err, out)
	}
	var mine []string
	for _, w := range listed.Items {
		if strings.HasPrefix(w.Expectation, sender) {
			if w.Route != "discard" || !w.WindowEnd.Equal(by) || !w.Published {
				t.Errorf("listed %+v, want a published window of discard ending %s", w, by)
			}
			mine = append(mine, w.Expectation)
		}
	}
	sort.Strings(mine)
	if strings.Join(mine, " ") != sender+"-other "+sender+"-two" {
		t.Errorf("ferry history --overdue lists %v, want the other and two expectations\n%s", mine, out)
	}
}

// overdueEvents drains queue of Transfer Overdue events until it has been
// quiet for five seconds: "expectation got/want windowEnd", sorted.
func overdueEvents(t *testing.T, url string) []string {
	t.Helper()
	var got []string
	quiet := time.Now().Add(5 * time.Second)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && time.Now().Before(quiet); {
		out, err := stack.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var ev struct {
				Resources []string              `json:"resources"`
				Detail    overdue.OverdueDetail `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatalf("not an EventBridge event: %s", aws.ToString(m.Body))
			}
			if len(ev.Resources) != 1 || ev.Resources[0] != "route/discard" {
				t.Errorf("resources = %v, want route/discard", ev.Resources)
			}
			d := ev.Detail
			got = append(got, d.Expectation+" "+strconv.Itoa(d.Got)+"/"+strconv.Itoa(d.Want)+" "+d.WindowEnd.UTC().Format(time.RFC3339))
			_, _ = stack.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
			quiet = time.Now().Add(5 * time.Second)
		}
	}
	sort.Strings(got)
	return got
}
