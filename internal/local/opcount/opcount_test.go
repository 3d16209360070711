package opcount

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// refuse is an HTTP client that sends nothing: the counter counts calls
// before they are sent, so no server is needed.
type refuse struct{}

func (refuse) Do(*http.Request) (*http.Response, error) { return nil, errors.New("not sent") }

func TestMiddlewareCountsCallsAndEntries(t *testing.T) {
	var c Counter
	cfg := aws.Config{Region: "us-east-1", HTTPClient: refuse{}, Credentials: aws.AnonymousCredentials{},
		RetryMaxAttempts: 1, APIOptions: []func(*middleware.Stack) error{c.Middleware()}}
	ctx := context.Background()
	eb := eventbridge.NewFromConfig(cfg)
	_, _ = eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: make([]ebtypes.PutEventsRequestEntry, 3)})
	_, _ = eb.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: make([]ebtypes.PutEventsRequestEntry, 2)})
	s3c := s3.NewFromConfig(cfg)
	_, _ = s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})

	got := c.Snapshot()
	if got.Calls["EventBridge.PutEvents"] != 2 || got.Calls["S3.HeadObject"] != 1 || len(got.Calls) != 2 {
		t.Errorf("calls = %v, want EventBridge.PutEvents 2 and S3.HeadObject 1", got.Calls)
	}
	if got.EventBridgeEntries != 5 {
		t.Errorf("entries = %d, want 5", got.EventBridgeEntries)
	}
}

func TestHandlerRecordsInvocations(t *testing.T) {
	var c Counter
	h := Handler(&c, "intake", func(in []int) int { return len(in) }, func(_ context.Context, in []int) (int, error) {
		time.Sleep(5 * time.Millisecond)
		return len(in), nil
	})
	base := c.Snapshot()
	for _, n := range []int{1, 10, 10, 3} {
		if got, _ := h(context.Background(), make([]int, n)); got != n {
			t.Fatalf("handler returned %d, want %d", got, n)
		}
	}
	f := c.Snapshot().Sub(base).Functions["intake"]
	if f.Invocations != 4 || f.Records != 24 || f.MaxBatch != 10 {
		t.Errorf("intake = %+v, want 4 invocations, 24 records, max batch 10", f)
	}
	if f.Batches["10"] != 2 || f.Batches["1"] != 1 || f.Batches["3"] != 1 {
		t.Errorf("batches = %v", f.Batches)
	}
	if f.Seconds < 0.02 {
		t.Errorf("seconds = %v, want at least the 4×5ms slept", f.Seconds)
	}
}

func TestSubLeavesOutWhatDidNotChange(t *testing.T) {
	var c Counter
	c.call("S3.GetObject", 0)
	c.Invoked("advance", 2, time.Second)
	base := c.Snapshot()
	c.call("S3.PutObject", 0)
	d := c.Snapshot().Sub(base)
	if len(d.Calls) != 1 || d.Calls["S3.PutObject"] != 1 {
		t.Errorf("calls = %v, want only S3.PutObject 1", d.Calls)
	}
	if len(d.Functions) != 0 {
		t.Errorf("functions = %v, want none", d.Functions)
	}
}
