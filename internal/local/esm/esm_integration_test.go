//go:build integration

package esm_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ferryhq/ferry/internal/local/esm"
)

// The emulators (moto server) are the test doubles: FERRY_AWS_ENDPOINT
// names them.

type clients struct {
	ddb     *dynamodb.Client
	streams *dynamodbstreams.Client
	sqs     *sqs.Client
}

func newClients(t *testing.T) clients {
	t.Helper()
	endpoint := os.Getenv("FERRY_AWS_ENDPOINT")
	if endpoint == "" {
		t.Fatal("FERRY_AWS_ENDPOINT is not set: start the local stack (moto server) and point it there")
	}
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
	return clients{
		ddb:     dynamodb.NewFromConfig(cfg),
		streams: dynamodbstreams.NewFromConfig(cfg),
		sqs:     sqs.NewFromConfig(cfg),
	}
}

func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + hex.EncodeToString(b[:])
}

// createTable creates a table keyed like ferry's event table (pk S, sk N)
// with a NEW_IMAGE stream, and returns its name and stream ARN.
func createTable(t *testing.T, c clients) (string, string) {
	t.Helper()
	ctx := context.Background()
	name := uniqueName("esm")
	out, err := c.ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: ddbtypes.ScalarAttributeTypeN},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange},
		},
		BillingMode:         ddbtypes.BillingModePayPerRequest,
		StreamSpecification: &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewTypeNewImage},
	})
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		_, _ = c.ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	arn := aws.ToString(out.TableDescription.LatestStreamArn)
	if arn == "" {
		t.Fatal("table has no stream ARN")
	}
	return name, arn
}

// put writes versions 1..n of every key, interleaving the keys.
func put(t *testing.T, c clients, table string, keys []string, from, to int) {
	t.Helper()
	for v := from; v <= to; v++ {
		for _, k := range keys {
			_, err := c.ddb.PutItem(context.Background(), &dynamodb.PutItemInput{
				TableName: aws.String(table),
				Item: map[string]ddbtypes.AttributeValue{
					"pk":   &ddbtypes.AttributeValueMemberS{Value: k},
					"sk":   &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(v)},
					"data": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("%s@%d", k, v)},
				},
			})
			if err != nil {
				t.Fatalf("put %s/%d: %v", k, v, err)
			}
		}
	}
}

func createQueue(t *testing.T, c clients, attrs map[string]string) (url, arn string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(uniqueName("esm")), Attributes: attrs})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	url = aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		_, _ = c.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	})
	a, err := c.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("queue ARN: %v", err)
	}
	return url, a.Attributes["QueueArn"]
}

// drain receives and deletes whatever is on a queue within wait.
func drain(t *testing.T, c clients, url string, wait time.Duration) []sqstypes.Message {
	t.Helper()
	var got []sqstypes.Message
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		out, err := c.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range out.Messages {
			got = append(got, m)
			_, _ = c.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return got
}

// start runs r in the background; the returned func stops it and checks
// that Run returned nil promptly.
func start(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// seen is one record as a handler saw it.
type seen struct {
	key string
	ver int
	seq string
}

func (s seen) String() string { return fmt.Sprintf("%s/%d", s.key, s.ver) }

func keyOf(r events.DynamoDBEventRecord) seen {
	v, _ := strconv.Atoi(r.Change.Keys["sk"].Number())
	return seen{key: r.Change.Keys["pk"].String(), ver: v, seq: r.Change.SequenceNumber}
}

// recorder collects what a handler saw, safely across shards.
type recorder struct {
	mu      sync.Mutex
	handled []seen
	batches [][]seen
	records []events.DynamoDBEventRecord
}

func (r *recorder) batch(b []events.DynamoDBEventRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []seen
	for _, rec := range b {
		s = append(s, keyOf(rec))
	}
	r.batches = append(r.batches, s)
}

func (r *recorder) handle(rec events.DynamoDBEventRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled = append(r.handled, keyOf(rec))
	r.records = append(r.records, rec)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.handled)
}

// distinct returns the records handled at least once, in the order first handled.
func (r *recorder) distinct() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []seen
	have := make(map[string]bool)
	for _, s := range r.handled {
		if !have[s.String()] {
			have[s.String()] = true
			out = append(out, s)
		}
	}
	return out
}

// checkPerKeyOrder checks that got holds versions from..to of every key, each
// once, in ascending order per key.
func checkPerKeyOrder(t *testing.T, got []seen, keys []string, from, to int, skip map[string]bool) {
	t.Helper()
	next := make(map[string]int)
	for _, k := range keys {
		next[k] = from
	}
	advance := func(k string) {
		for next[k] <= to && skip[seen{key: k, ver: next[k]}.String()] {
			next[k]++
		}
	}
	for _, k := range keys {
		advance(k)
	}
	for _, s := range got {
		if s.ver != next[s.key] {
			t.Fatalf("got %s, want %s/%d next (all: %v)", s, s.key, next[s.key], got)
		}
		next[s.key]++
		advance(s.key)
	}
	for _, k := range keys {
		if next[k] != to+1 {
			t.Errorf("key %s: handled up to version %d, want %d", k, next[k]-1, to)
		}
	}
}

func TestStreamMappingDeliversEveryRecordInOrder(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	table, streamARN := createTable(t, c)
	keys := []string{"T#a", "T#b", "T#c"}
	put(t, c, table, keys, 1, 10)

	var rec recorder
	m, err := esm.NewStreamMapping(esm.StreamConfig{
		Name: "advance", Streams: c.streams, StreamARN: streamARN, BatchSize: 7, Logger: testLogger(t),
		Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			rec.batch(e.Records)
			for _, r := range e.Records {
				rec.handle(r)
			}
			return events.DynamoDBEventResponse{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, m.Run)
	waitFor(t, 10*time.Second, "30 records", func() bool { return rec.count() >= 30 })
	put(t, c, table, keys, 11, 12) // records written while running arrive too
	waitFor(t, 10*time.Second, "36 records", func() bool { return rec.count() >= 36 })
	stop()

	checkPerKeyOrder(t, rec.handled, keys, 1, 12, nil)
	if len(rec.handled) != 36 {
		t.Errorf("handled %d records, want 36", len(rec.handled))
	}
	for _, b := range rec.batches {
		if len(b) > 7 {
			t.Errorf("batch of %d records, want at most 7", len(b))
		}
	}
	r := rec.records[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"eventSource", r.EventSource, "aws:dynamodb"},
		{"eventSourceARN", r.EventSourceArn, streamARN},
		{"awsRegion", r.AWSRegion, "us-east-1"},
		{"eventName", r.EventName, "INSERT"},
		{"StreamViewType", r.Change.StreamViewType, "NEW_IMAGE"},
		{"NewImage.data", r.Change.NewImage["data"].String(), "T#a@1"},
		{"SizeBytes > 0", r.Change.SizeBytes > 0, true},
		{"eventID set", r.EventID != "", true},
		{"ApproximateCreationDateTime recent", time.Since(r.Change.ApproximateCreationDateTime.Time) < time.Minute, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestStreamMappingPoisonRecord(t *testing.T) {
	t.Parallel()
	const maxRetries = 2
	tests := []struct {
		name   string
		reason string
		// fail makes the handler fail on the poison record at index i.
		fail func(e events.DynamoDBEvent, i int) (events.DynamoDBEventResponse, error)
		// exactlyOnce: records other than the poison are handled once.
		exactlyOnce bool
	}{
		{
			name:   "reported as a batch item failure",
			reason: "batch item failure",
			fail: func(e events.DynamoDBEvent, i int) (events.DynamoDBEventResponse, error) {
				return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{
					{ItemIdentifier: e.Records[i].Change.SequenceNumber},
				}}, nil
			},
			exactlyOnce: true,
		},
		{
			name:   "handler panics",
			reason: "panicked",
			fail: func(events.DynamoDBEvent, int) (events.DynamoDBEventResponse, error) {
				panic("cannot handle this record")
			},
		},
		{
			name:   "handler returns an error",
			reason: "refused",
			fail: func(events.DynamoDBEvent, int) (events.DynamoDBEventResponse, error) {
				return events.DynamoDBEventResponse{}, fmt.Errorf("refused")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClients(t)
			table, streamARN := createTable(t, c)
			failURL, _ := createQueue(t, c, nil)
			keys := []string{"T#a", "T#b", "T#c"}
			put(t, c, table, keys, 1, 6)
			poison := seen{key: "T#b", ver: 3}

			var rec recorder
			var mu sync.Mutex
			alone := 0 // invocations with the poison record on its own
			checkpoints := &esm.MemoryCheckpoints{}
			m, err := esm.NewStreamMapping(esm.StreamConfig{
				Name: "advance", Streams: c.streams, StreamARN: streamARN, Logger: testLogger(t),
				BatchSize: 5, MaxRetries: maxRetries, Checkpoints: checkpoints,
				OnFailure: esm.Destination{SQS: c.sqs, QueueURL: failURL},
				Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
					rec.batch(e.Records)
					for i, r := range e.Records {
						if keyOf(r).String() == poison.String() {
							if len(e.Records) == 1 {
								mu.Lock()
								alone++
								mu.Unlock()
							}
							return tt.fail(e, i)
						}
						rec.handle(r)
					}
					return events.DynamoDBEventResponse{}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			stop := start(t, m.Run)
			var failed []sqstypes.Message
			waitFor(t, 15*time.Second, "the poison record on the on-failure queue", func() bool {
				failed = append(failed, drain(t, c, failURL, time.Millisecond)...)
				return len(failed) > 0
			})
			waitFor(t, 10*time.Second, "every other record", func() bool { return len(rec.distinct()) >= 17 })
			stop()
			failed = append(failed, drain(t, c, failURL, time.Second)...)

			if len(failed) != 1 {
				t.Fatalf("%d on-failure messages, want 1", len(failed))
			}
			var f esm.StreamFailure
			if err := json.Unmarshal([]byte(aws.ToString(failed[0].Body)), &f); err != nil {
				t.Fatalf("on-failure body: %v", err)
			}
			if f.Record == nil || keyOf(*f.Record).String() != poison.String() {
				t.Fatalf("on-failure record = %+v, want %s", f.Record, poison)
			}
			if f.Mapping != "advance" || f.StreamARN != streamARN || f.ShardID == "" || f.SequenceNumber != f.Record.Change.SequenceNumber ||
				f.Attempts != maxRetries+1 || f.Condition != "RetryAttemptsExhausted" || !strings.Contains(f.Reason, tt.reason) || f.Batch.Size != 1 {
				t.Errorf("on-failure message = %+v", f)
			}
			if f.Record.Change.NewImage["data"].String() != "T#b@3" || f.Record.EventSourceArn != streamARN {
				t.Errorf("on-failure record is not the full record: %+v", f.Record)
			}
			if alone != maxRetries+1 {
				t.Errorf("poison invoked alone %d times, want %d", alone, maxRetries+1)
			}
			skip := map[string]bool{poison.String(): true}
			checkPerKeyOrder(t, rec.distinct(), keys, 1, 6, skip)
			if tt.exactlyOnce && len(rec.handled) != 17 {
				t.Errorf("handled %d times, want each of 17 records once: %v", len(rec.handled), rec.handled)
			}
			// Everything is done with, so the checkpoint is the shard's last record.
			var last string
			for _, b := range rec.batches {
				for _, s := range b {
					if len(s.seq) > len(last) || len(s.seq) == len(last) && s.seq > last {
						last = s.seq
					}
				}
			}
			got, _ := checkpoints.Load(context.Background(), esm.CheckpointKey("advance", streamARN, f.ShardID))
			if got != last {
				t.Errorf("checkpoint %s, want the last record %s", got, last)
			}
		})
	}
}

func TestStreamMappingResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	table, streamARN := createTable(t, c)
	keys := []string{"T#a", "T#b"}
	put(t, c, table, keys, 1, 4)
	checkpoints := esm.FileCheckpoints{Dir: t.TempDir()}

	run := func(name string, rec *recorder) func() {
		m, err := esm.NewStreamMapping(esm.StreamConfig{
			Name: name, Streams: c.streams, StreamARN: streamARN, BatchSize: 3, Checkpoints: checkpoints, Logger: testLogger(t),
			Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
				for _, r := range e.Records {
					rec.handle(r)
				}
				return events.DynamoDBEventResponse{}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return start(t, m.Run)
	}

	var first recorder
	stop := run("advance", &first)
	waitFor(t, 10*time.Second, "the first 8 records", func() bool { return first.count() >= 8 })
	stop()

	put(t, c, table, keys, 5, 6)
	var second recorder
	stop = run("advance", &second)
	waitFor(t, 10*time.Second, "the 4 new records", func() bool { return second.count() >= 4 })
	time.Sleep(time.Second) // give redeliveries, if any, the time to show
	stop()
	checkPerKeyOrder(t, second.handled, keys, 5, 6, nil)

	// Another mapping on the same stream keeps its own position.
	var other recorder
	stop = run("publish", &other)
	waitFor(t, 10*time.Second, "all 12 records for a new mapping", func() bool { return other.count() >= 12 })
	stop()
	checkPerKeyOrder(t, other.handled, keys, 1, 6, nil)
}

func TestStreamMappingShutdownMidBatch(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	table, streamARN := createTable(t, c)
	failURL, _ := createQueue(t, c, nil)
	keys := []string{"T#a"}
	put(t, c, table, keys, 1, 5)
	checkpoints := &esm.MemoryCheckpoints{}

	var first recorder
	blocked := make(chan struct{})
	m, err := esm.NewStreamMapping(esm.StreamConfig{
		Name: "advance", Streams: c.streams, StreamARN: streamARN, Checkpoints: checkpoints, Logger: testLogger(t),
		OnFailure: esm.Destination{SQS: c.sqs, QueueURL: failURL},
		Handler: func(ctx context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			for _, r := range e.Records {
				if keyOf(r).ver == 3 { // still working on it when the mapping stops
					close(blocked)
					<-ctx.Done()
					return events.DynamoDBEventResponse{}, ctx.Err()
				}
				first.handle(r)
			}
			return events.DynamoDBEventResponse{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, m.Run)
	<-blocked
	stop()

	var second recorder
	m, err = esm.NewStreamMapping(esm.StreamConfig{
		Name: "advance", Streams: c.streams, StreamARN: streamARN, Checkpoints: checkpoints, Logger: testLogger(t),
		Handler: func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
			for _, r := range e.Records {
				second.handle(r)
			}
			return events.DynamoDBEventResponse{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop = start(t, m.Run)
	waitFor(t, 10*time.Second, "the abandoned batch again", func() bool { return second.count() >= 5 })
	stop()
	// Nothing was checkpointed past the batch in flight, and nothing was
	// given up because of the shutdown.
	if len(second.handled) != 5 || second.handled[0].ver != 1 {
		t.Errorf("second run handled %v, want versions 1..5", second.handled)
	}
	if got := drain(t, c, failURL, time.Second); len(got) != 0 {
		t.Errorf("%d on-failure messages after a shutdown, want 0", len(got))
	}
}

func TestSQSMappingRedrivesPoisonMessage(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	dlqURL, dlqARN := createQueue(t, c, nil)
	policy, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": "2"})
	queueURL, queueARN := createQueue(t, c, map[string]string{"RedrivePolicy": string(policy), "VisibilityTimeout": "30"})

	for i := range 6 {
		_, err := c.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl: aws.String(queueURL), MessageBody: aws.String(fmt.Sprintf("m%d", i)),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"kind": {DataType: aws.String("String"), StringValue: aws.String("test")},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	const poison = "m3"
	var (
		mu       sync.Mutex
		handled  = make(map[string]int)
		attempts int
		sample   events.SQSMessage
	)
	m, err := esm.NewSQSMapping(esm.SQSConfig{
		Name: "retry", SQS: c.sqs, QueueURL: queueURL, Logger: testLogger(t),
		Handler: func(_ context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			var resp events.SQSEventResponse
			for _, msg := range e.Records {
				sample = msg
				if msg.Body == poison {
					attempts++
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
					continue
				}
				handled[msg.Body]++
			}
			return resp, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, m.Run)
	var dead []sqstypes.Message
	waitFor(t, 15*time.Second, "the poison message in the dead-letter queue", func() bool {
		dead = append(dead, drain(t, c, dlqURL, time.Millisecond)...)
		return len(dead) > 0
	})
	stop()

	mu.Lock()
	defer mu.Unlock()
	if len(dead) != 1 || aws.ToString(dead[0].Body) != poison {
		t.Fatalf("dead-letter queue holds %v, want only %s", dead, poison)
	}
	if attempts != 2 {
		t.Errorf("poison handled %d times, want 2 (maxReceiveCount)", attempts)
	}
	for i := range 6 {
		body := fmt.Sprintf("m%d", i)
		if want := 1; body != poison && handled[body] != want {
			t.Errorf("%s handled %d times, want %d", body, handled[body], want)
		}
	}
	attrs, err := c.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := attrs.Attributes; a["ApproximateNumberOfMessages"] != "0" || a["ApproximateNumberOfMessagesNotVisible"] != "0" {
		t.Errorf("queue still holds messages: %v", a)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"eventSource", sample.EventSource, "aws:sqs"},
		{"eventSourceARN", sample.EventSourceARN, queueARN},
		{"awsRegion", sample.AWSRegion, "us-east-1"},
		{"receive count attribute", sample.Attributes["ApproximateReceiveCount"] != "", true},
		{"message attribute", aws.ToString(sample.MessageAttributes["kind"].StringValue), "test"},
		{"md5OfBody", sample.Md5OfBody != "", true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := slices.Sorted(maps.Keys(handled)); len(got) != 5 {
		t.Errorf("handled %v, want the 5 good messages", got)
	}
}

func TestSQSMappingHandlesBatchesSideBySide(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	queueURL, _ := createQueue(t, c, map[string]string{"VisibilityTimeout": "30"})
	const concurrency, messages = 3, 9
	for i := range messages {
		if _, err := c.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{
			QueueUrl: aws.String(queueURL), MessageBody: aws.String(fmt.Sprintf("m%d", i)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Each batch waits until concurrency batches are in flight at once:
	// one after another it would wait for ever, so a timer lets them go and the
	// test fails rather than hangs.
	var (
		mu       sync.Mutex
		inFlight int
		most     int
		handled  = map[string]int{}
	)
	all, release := make(chan struct{}), make(chan struct{})
	timer := time.AfterFunc(20*time.Second, func() { close(release) })
	defer timer.Stop()
	var once sync.Once
	m, err := esm.NewSQSMapping(esm.SQSConfig{
		Name: "concurrent", SQS: c.sqs, QueueURL: queueURL, Logger: testLogger(t), BatchSize: 1, Concurrency: concurrency,
		Handler: func(_ context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			if inFlight == concurrency {
				once.Do(func() { close(all) })
			}
			mu.Unlock()
			select {
			case <-all:
			case <-release:
			}
			mu.Lock()
			defer mu.Unlock()
			inFlight--
			for _, msg := range e.Records {
				handled[msg.Body]++
			}
			return events.SQSEventResponse{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, m.Run)
	waitFor(t, 30*time.Second, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == messages
	})
	stop()
	mu.Lock()
	defer mu.Unlock()
	if most != concurrency {
		t.Errorf("%d batches in flight at most, want %d (Concurrency)", most, concurrency)
	}
	for body, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times, want once", body, n)
		}
	}
}
