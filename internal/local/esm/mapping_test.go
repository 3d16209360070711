package esm

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func TestReadyShards(t *testing.T) {
	shard := func(id, parent string) streamtypes.Shard {
		s := streamtypes.Shard{ShardId: aws.String(id)}
		if parent != "" {
			s.ParentShardId = aws.String(parent)
		}
		return s
	}
	shards := []streamtypes.Shard{
		shard("a", ""),
		shard("b", "a"),    // child of a
		shard("c", "b"),    // grandchild
		shard("d", "gone"), // parent trimmed from the stream
		shard("e", ""),
	}
	tests := []struct {
		name              string
		running, finished []string
		want              []string
	}{
		{"roots and orphans first", nil, nil, []string{"a", "d", "e"}},
		{"running shards are not started again", []string{"a", "d"}, nil, []string{"e"}},
		{"child after parent", nil, []string{"a", "d", "e"}, []string{"b"}},
		{"grandchild waits for its running parent", []string{"b", "d", "e"}, []string{"a"}, nil},
		{"everything finished", nil, []string{"a", "b", "c", "d", "e"}, nil},
	}
	set := func(ids []string) map[string]bool {
		m := make(map[string]bool)
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readyShards(shards, set(tt.running), set(tt.finished))
			if !slices.Equal(got, tt.want) {
				t.Errorf("readyShards = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInvoke(t *testing.T) {
	t.Run("panic becomes a PanicError", func(t *testing.T) {
		h := func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			panic("boom")
		}
		_, err := invoke(context.Background(), h, events.DynamoDBEvent{})
		var pe *PanicError
		if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 {
			t.Fatalf("err = %v, want PanicError(boom) with a stack", err)
		}
	})
	t.Run("handler sees a Lambda context", func(t *testing.T) {
		var id string
		h := func(ctx context.Context, _ events.SQSEvent) (events.SQSEventResponse, error) {
			lc, ok := lambdacontext.FromContext(ctx)
			if ok {
				id = lc.AwsRequestID
			}
			return events.SQSEventResponse{}, nil
		}
		if _, err := invoke(context.Background(), h, events.SQSEvent{}); err != nil {
			t.Fatal(err)
		}
		if len(id) != 36 {
			t.Errorf("request ID %q, want a UUID", id)
		}
	})
}

func TestStreamConfig(t *testing.T) {
	okHandler := func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		return events.DynamoDBEventResponse{}, nil
	}
	t.Run("defaults", func(t *testing.T) {
		c := StreamConfig{}.WithDefaults()
		if c.BatchSize != 100 || c.MaxRetries != 3 || !*c.BisectOnError || c.PollInterval != 250*time.Millisecond || c.Checkpoints == nil || c.Logger == nil {
			t.Errorf("defaults = %+v", c)
		}
		if c := (StreamConfig{BisectOnError: aws.Bool(false)}).WithDefaults(); *c.BisectOnError {
			t.Error("BisectOnError false was overridden")
		}
	})
	t.Run("valid", func(t *testing.T) {
		c := StreamConfig{Name: "n", Streams: &dynamodbstreams.Client{}, StreamARN: "arn", Handler: okHandler}.WithDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reports every problem", func(t *testing.T) {
		err := StreamConfig{BatchSize: 5000, MaxRetries: -2, OnFailure: Destination{QueueURL: "q"}}.Validate()
		for _, want := range []string{"name", "streams client", "stream ARN", "handler", "batch size", "max retries", "on-failure"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
}

func TestSQSConfig(t *testing.T) {
	c := SQSConfig{}.WithDefaults()
	if c.BatchSize != 10 || c.WaitTime != time.Second || c.RetryDelay != time.Second || c.Concurrency != 1 {
		t.Errorf("defaults = %+v", c)
	}
	err := SQSConfig{BatchSize: 11, WaitTime: 21 * time.Second, VisibilityTimeout: -1, Concurrency: -1}.Validate()
	for _, want := range []string{"name", "SQS client", "queue URL", "handler", "batch size", "wait time", "visibility", "concurrency"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	c = SQSConfig{Name: "n", SQS: &sqs.Client{}, QueueURL: "u", Handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
		return events.SQSEventResponse{}, nil
	}}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if got := seconds(1500 * time.Millisecond); got != 2 {
		t.Errorf("seconds(1.5s) = %d, want 2", got)
	}
}

func TestTicker(t *testing.T) {
	t.Run("runs on every tick and survives errors and panics", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var runs atomic.Int32
		tk := Ticker{Name: "t", Logger: slog.New(slog.DiscardHandler), Interval: 5 * time.Millisecond, Immediate: true, Func: func(context.Context) error {
			switch n := runs.Add(1); {
			case n == 2:
				return errors.New("transient")
			case n == 3:
				panic("boom")
			case n >= 5:
				cancel()
			}
			return nil
		}}
		done := make(chan error)
		go func() { done <- tk.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ticker did not stop")
		}
		if runs.Load() < 5 {
			t.Errorf("runs = %d, want >= 5", runs.Load())
		}
	})
	t.Run("misconfigured", func(t *testing.T) {
		if err := (Ticker{Name: "t"}).Run(context.Background()); err == nil {
			t.Error("Run without interval and func succeeded")
		}
	})
}
