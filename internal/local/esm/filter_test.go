package esm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
)

// templatePattern is the stream readers' filter in infra/template.yaml.
const templatePattern = `{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "E#"}]}}}}`

func TestFilterMatch(t *testing.T) {
	record := func(event, sk string) string {
		return fmt.Sprintf(`{"eventName": %q, "dynamodb": {"Keys": {"pk": {"S": "T#1"}}, "NewImage": {"sk": {"S": %q}, "size": {"N": "10"}}}, "tags": ["a", "b"], "n": 5}`, event, sk)
	}
	tests := []struct {
		name, pattern, record string
		want                  bool
	}{
		{"template pattern, event item", templatePattern, record("INSERT", "E#00000001"), true},
		{"template pattern, view item", templatePattern, record("INSERT", "VIEW"), false},
		{"template pattern, modify", templatePattern, record("MODIFY", "E#00000001"), false},
		{"template pattern, no image", templatePattern, `{"eventName": "INSERT", "dynamodb": {}}`, false},
		{"exact string among alternatives", `{"eventName": ["MODIFY", "INSERT"]}`, record("INSERT", "x"), true},
		{"exact number", `{"n": [5]}`, record("INSERT", "x"), true},
		{"number is not its string", `{"n": ["5"]}`, record("INSERT", "x"), false},
		{"array field matches any element", `{"tags": ["b"]}`, record("INSERT", "x"), true},
		{"array field, no element", `{"tags": ["c"]}`, record("INSERT", "x"), false},
		{"suffix", `{"dynamodb": {"NewImage": {"sk": {"S": [{"suffix": "01"}]}}}}`, record("INSERT", "E#01"), true},
		{"equals-ignore-case", `{"eventName": [{"equals-ignore-case": "insert"}]}`, record("INSERT", "x"), true},
		{"exists", `{"dynamodb": {"NewImage": {"sk": [{"exists": true}]}}}`, record("INSERT", "x"), true},
		{"exists, missing", `{"dynamodb": {"OldImage": [{"exists": true}]}}`, record("INSERT", "x"), false},
		{"exists false, missing", `{"dynamodb": {"OldImage": [{"exists": false}]}}`, record("INSERT", "x"), true},
		{"exists false, present", `{"eventName": [{"exists": false}]}`, record("INSERT", "x"), false},
		{"anything-but value", `{"eventName": [{"anything-but": "REMOVE"}]}`, record("INSERT", "x"), true},
		{"anything-but list", `{"eventName": [{"anything-but": ["INSERT", "MODIFY"]}]}`, record("INSERT", "x"), false},
		{"anything-but prefix", `{"dynamodb": {"NewImage": {"sk": {"S": [{"anything-but": {"prefix": "E#"}}]}}}}`, record("INSERT", "VIEW"), true},
		{"anything-but prefix, matching", `{"dynamodb": {"NewImage": {"sk": {"S": [{"anything-but": {"prefix": "E#"}}]}}}}`, record("INSERT", "E#1"), false},
		{"numeric range", `{"n": [{"numeric": [">", 1, "<=", 5]}]}`, record("INSERT", "x"), true},
		{"numeric out of range", `{"n": [{"numeric": ["<", 5]}]}`, record("INSERT", "x"), false},
		{"every key must match", `{"eventName": ["INSERT"], "n": [6]}`, record("INSERT", "x"), false},
		{"empty pattern", `{}`, record("INSERT", "x"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal([]byte(tt.record), &v); err != nil {
				t.Fatal(err)
			}
			if got := f.Match(v); got != tt.want {
				t.Errorf("%s matches %s = %v, want %v", tt.pattern, tt.record, got, tt.want)
			}
		})
	}
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{`{"eventName": [{"wildcard": "IN*"}]}`, `operator "wildcard" is not supported`},
		{`{"eventName": [{"cidr": "10.0.0.0/24"}]}`, `operator "cidr" is not supported`},
		{`{"eventName": "INSERT"}`, "objects or arrays"},
		{`["INSERT"]`, "not a JSON object"},
		{`{"n": [{"numeric": [">"]}]}`, "malformed"},
		{`{"n": [{"prefix": 1}]}`, "malformed"},
		{`{"n": [{"prefix": "a", "suffix": "b"}]}`, "one key"},
		{`{"eventName": `, "unexpected end"},
	}
	for _, tt := range tests {
		if _, err := CompileFilter(tt.pattern); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CompileFilter(%s) error %v, want one saying %q", tt.pattern, err, tt.want)
		}
	}
	_, err := NewStreamMapping(StreamConfig{Name: "n", Streams: &fakeStreams{}, StreamARN: "arn", Handler: okStreamHandler, Filters: []string{`{"a": [{"wildcard": "x"}]}`}})
	if err == nil || !strings.Contains(err.Error(), "wildcard") {
		t.Errorf("NewStreamMapping with an unsupported operator: %v", err)
	}
}

func TestFiltersMatchADynamoDBRecord(t *testing.T) {
	fs, err := CompileFilters([]string{`{"eventName": ["REMOVE"]}`, templatePattern})
	if err != nil {
		t.Fatal(err)
	}
	rec := events.DynamoDBEventRecord{EventName: "INSERT", Change: events.DynamoDBStreamRecord{
		NewImage: map[string]events.DynamoDBAttributeValue{"sk": events.NewStringAttribute("E#00000002")},
	}}
	if ok, err := fs.Match(rec); !ok || err != nil {
		t.Errorf("an inserted event item does not pass the filters (either may match): %v, %v", ok, err)
	}
	rec.Change.NewImage["sk"] = events.NewStringAttribute("VIEW")
	if ok, _ := fs.Match(rec); ok {
		t.Error("an inserted view item passes the filters")
	}
}

func okStreamHandler(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	return events.DynamoDBEventResponse{}, nil
}

// TestStreamMappingFilters: records the filters reject are not delivered,
// and the shard is checkpointed past them all the same.
func TestStreamMappingFilters(t *testing.T) {
	f := &fakeStreams{pageSize: 10, expire: map[string]bool{}, reads: map[string]int{}, item: func(i int) (string, string) {
		if i%2 == 1 {
			return "T#1", "VIEW"
		}
		return "T#1", fmt.Sprintf("E#%08d", i)
	}}
	f.add("s1", "", 10, false)
	var mu sync.Mutex
	var got []int
	checkpoints := &MemoryCheckpoints{}
	stop := runMapping(t, StreamConfig{Streams: f, Checkpoints: checkpoints, Filters: []string{templatePattern},
		Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range e.Records {
				n, _ := strconv.Atoi(r.Change.NewImage["n"].Number())
				got = append(got, n)
			}
			return events.DynamoDBEventResponse{}, nil
		}})
	key := CheckpointKey("test", "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x", "s1")
	last := fmt.Sprintf("%021d", 10)
	waitUntil(t, func() bool { seq, _ := checkpoints.Load(context.Background(), key); return seq == last })
	stop()
	if want := []int{0, 2, 4, 6, 8}; !slices.Equal(got, want) {
		t.Errorf("delivered records %v, want the event items %v only", got, want)
	}
}

func TestStreamMappingStartsAtLatest(t *testing.T) {
	f := &fakeStreams{pageSize: 10, expire: map[string]bool{}, reads: map[string]int{}}
	f.add("s1", "", 3, false)
	var l handledLog
	stop := runMapping(t, StreamConfig{Streams: f, Handler: l.handler(nil), StartingPosition: Latest})
	waitUntil(t, func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.reads["s1"] > 0 })
	f.add("s1", "", 1, false)
	l.waitFor(t, 1)
	time.Sleep(20 * time.Millisecond)
	stop()
	if got := l.snapshot(); len(got) != 1 || got[0].index != 3 {
		t.Errorf("handled %v, want only the record written after the start (s1/3)", got)
	}
}

// TestStreamMappingParallelizationFactor: one shard's records are handled
// by up to ParallelizationFactor concurrent batches, split by partition key,
// each item's records in order; a failing record is bisected, retried and
// given up within its own batch while the others complete; the shard is
// checkpointed past the read once all are done.
func TestStreamMappingParallelizationFactor(t *testing.T) {
	const records, items = 60, 6
	f := &fakeStreams{pageSize: 100, expire: map[string]bool{}, reads: map[string]int{}, item: func(i int) (string, string) {
		return fmt.Sprintf("T#%d", i%items), fmt.Sprintf("E#%08d", i)
	}}
	f.add("s1", "", records, false)
	var (
		mu       sync.Mutex
		order    = map[string][]int{}
		running  atomic.Int32
		most     atomic.Int32
		batches  atomic.Int32
		poisoned = 31 // item T#1
	)
	sender := &fakeSender{}
	checkpoints := &MemoryCheckpoints{}
	stop := runMapping(t, StreamConfig{
		Streams: f, Checkpoints: checkpoints, BatchSize: 100, ParallelizationFactor: 4, PartitionKey: "item",
		MaxRetries: 1, OnFailure: Destination{SQS: sender, QueueURL: "q"},
		Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			batches.Add(1)
			time.Sleep(5 * time.Millisecond)
			for _, r := range e.Records {
				i, _ := strconv.Atoi(r.Change.NewImage["n"].Number())
				if i == poisoned {
					return events.DynamoDBEventResponse{}, fmt.Errorf("record %d is poison", i)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range e.Records {
				i, _ := strconv.Atoi(r.Change.NewImage["n"].Number())
				item := r.Change.Keys["item"].String()
				order[item] = append(order[item], i)
			}
			return events.DynamoDBEventResponse{}, nil
		},
	})
	key := CheckpointKey("test", "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x", "s1")
	last := fmt.Sprintf("%021d", records)
	waitUntil(t, func() bool { seq, _ := checkpoints.Load(context.Background(), key); return seq == last })
	stop()

	if most.Load() < 2 {
		t.Errorf("at most %d batches ran at once, want several (factor 4)", most.Load())
	}
	total := 0
	for item, got := range order {
		total += len(got)
		if !slices.IsSorted(got) {
			t.Errorf("item %s handled out of order: %v", item, got)
		}
		// Some records of another item may share T#1's batch: the delivered
		// ones must all be distinct.
		if len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("item %s: a record was delivered twice: %v", item, got)
		}
	}
	if total != records-1 {
		t.Errorf("delivered %d records, want %d (all but the poisoned one)", total, records-1)
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.bodies) != 1 {
		t.Fatalf("sent %d on-failure messages, want 1 (the poisoned record): %v", len(sender.bodies), sender.bodies)
	}
	var fail StreamFailure
	if err := json.Unmarshal([]byte(sender.bodies[0]), &fail); err != nil {
		t.Fatal(err)
	}
	if fail.Record == nil || fail.Record.Change.NewImage["n"].Number() != strconv.Itoa(poisoned) || fail.Attempts != 2 {
		t.Errorf("on-failure message %+v, want record %d after 2 attempts", fail, poisoned)
	}
}

// TestStreamMappingWithoutReportBatchItemFailures: without the response
// type, a handler's BatchItemFailures are ignored, as Lambda ignores them.
func TestStreamMappingWithoutReportBatchItemFailures(t *testing.T) {
	f := &fakeStreams{pageSize: 10, expire: map[string]bool{}, reads: map[string]int{}}
	f.add("s1", "", 4, false)
	var calls atomic.Int32
	sender := &fakeSender{}
	checkpoints := &MemoryCheckpoints{}
	stop := runMapping(t, StreamConfig{Streams: f, Checkpoints: checkpoints, ReportBatchItemFailures: aws.Bool(false), OnFailure: Destination{SQS: sender, QueueURL: "q"},
		Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			calls.Add(1)
			return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: e.Records[0].Change.SequenceNumber}}}, nil
		}})
	key := CheckpointKey("test", "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x", "s1")
	waitUntil(t, func() bool {
		seq, _ := checkpoints.Load(context.Background(), key)
		return seq == fmt.Sprintf("%021d", 4)
	})
	stop()
	if calls.Load() != 1 || len(sender.bodies) != 0 {
		t.Errorf("%d invocations and %d records given up, want 1 and none: the reported failure is ignored", calls.Load(), len(sender.bodies))
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
