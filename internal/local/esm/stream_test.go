package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// fakeStreams is an in-memory DynamoDB stream with shard lineage, closing
// shards and paged DescribeStream: the parts of the Streams API that moto
// does not emulate (it has one shard per table that never closes).
type fakeStreams struct {
	mu       sync.Mutex
	shards   []*fakeShard
	seq      int
	pageSize int
	expire   map[string]bool // shard → fail the next GetRecords with ExpiredIteratorException
	reads    map[string]int  // GetRecords calls per shard
	// item, if set, gives record i of a shard an "item" key (a partition
	// key other than the shard's) and a new image with that item and an sk
	// of its own.
	item func(i int) (item, sk string)
}

type fakeShard struct {
	id, parent string
	seqs       []string
	closed     bool
}

var _ StreamsAPI = (*fakeStreams)(nil)

// add adds a shard with n records, or n more records to an existing shard.
func (f *fakeStreams) add(id, parent string, n int, closed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(id)
	if s == nil {
		s = &fakeShard{id: id, parent: parent}
		f.shards = append(f.shards, s)
	}
	for range n {
		f.seq++
		s.seqs = append(s.seqs, fmt.Sprintf("%021d", f.seq))
	}
	s.closed = closed
}

func (f *fakeStreams) shard(id string) *fakeShard {
	for _, s := range f.shards {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *fakeStreams) DescribeStream(_ context.Context, in *dynamodbstreams.DescribeStreamInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := 0
	if in.ExclusiveStartShardId != nil {
		for i < len(f.shards) && f.shards[i].id != *in.ExclusiveStartShardId {
			i++
		}
		i++
	}
	d := &streamtypes.StreamDescription{StreamArn: in.StreamArn}
	for ; i < len(f.shards) && len(d.Shards) < f.pageSize; i++ {
		s := f.shards[i]
		sh := streamtypes.Shard{ShardId: aws.String(s.id)}
		if s.parent != "" {
			sh.ParentShardId = aws.String(s.parent)
		}
		d.Shards = append(d.Shards, sh)
	}
	if i < len(f.shards) {
		d.LastEvaluatedShardId = d.Shards[len(d.Shards)-1].ShardId
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: d}, nil
}

func (f *fakeStreams) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(aws.ToString(in.ShardId))
	if s == nil {
		return nil, &streamtypes.ResourceNotFoundException{Message: aws.String("no shard")}
	}
	pos := 0
	switch in.ShardIteratorType {
	case streamtypes.ShardIteratorTypeTrimHorizon:
	case streamtypes.ShardIteratorTypeAfterSequenceNumber:
		pos = -1
		for i, seq := range s.seqs {
			if seq == aws.ToString(in.SequenceNumber) {
				pos = i + 1
			}
		}
		if pos < 0 {
			return nil, fmt.Errorf("fake: unknown sequence number %s", aws.ToString(in.SequenceNumber))
		}
	case streamtypes.ShardIteratorTypeLatest:
		pos = len(s.seqs)
	default:
		return nil, fmt.Errorf("fake: iterator type %s", in.ShardIteratorType)
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: aws.String(s.id + "|" + strconv.Itoa(pos))}, nil
}

func (f *fakeStreams) GetRecords(_ context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, p, _ := strings.Cut(aws.ToString(in.ShardIterator), "|")
	pos, _ := strconv.Atoi(p)
	f.reads[id]++
	if f.expire[id] {
		delete(f.expire, id)
		return nil, &streamtypes.ExpiredIteratorException{Message: aws.String("expired")}
	}
	s := f.shard(id)
	end := min(pos+int(aws.ToInt32(in.Limit)), len(s.seqs))
	out := &dynamodbstreams.GetRecordsOutput{}
	for i := pos; i < end; i++ {
		r := streamtypes.Record{
			EventID:   aws.String(s.seqs[i]),
			EventName: streamtypes.OperationTypeInsert,
			Dynamodb: &streamtypes.StreamRecord{
				SequenceNumber: aws.String(s.seqs[i]),
				Keys: map[string]streamtypes.AttributeValue{
					"pk": &streamtypes.AttributeValueMemberS{Value: s.id},
					"sk": &streamtypes.AttributeValueMemberN{Value: strconv.Itoa(i)},
				},
			},
		}
		if f.item != nil {
			item, sk := f.item(i)
			r.Dynamodb.Keys["item"] = &streamtypes.AttributeValueMemberS{Value: item}
			r.Dynamodb.NewImage = map[string]streamtypes.AttributeValue{
				"item": &streamtypes.AttributeValueMemberS{Value: item},
				"sk":   &streamtypes.AttributeValueMemberS{Value: sk},
				"n":    &streamtypes.AttributeValueMemberN{Value: strconv.Itoa(i)},
			}
		}
		out.Records = append(out.Records, r)
	}
	if !s.closed || end < len(s.seqs) {
		out.NextShardIterator = aws.String(id + "|" + strconv.Itoa(end))
	}
	return out, nil
}

// fakeSender is an on-failure queue that fails its first failures sends.
type fakeSender struct {
	mu       sync.Mutex
	failures int
	bodies   []string
}

func (s *fakeSender) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		return nil, errors.New("queue unavailable")
	}
	s.bodies = append(s.bodies, aws.ToString(in.MessageBody))
	return &sqs.SendMessageOutput{}, nil
}

// handled is one record as the handler saw it: shard and index in it.
type handled struct {
	shard string
	index int
}

type handledLog struct {
	mu   sync.Mutex
	seen []handled
}

func (l *handledLog) handler(fail func(handled) bool) StreamHandler {
	return func(_ context.Context, e events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
		for _, r := range e.Records {
			i, _ := strconv.Atoi(r.Change.Keys["sk"].Number())
			h := handled{r.Change.Keys["pk"].String(), i}
			if fail != nil && fail(h) {
				return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: r.Change.SequenceNumber}}}, nil
			}
			l.mu.Lock()
			l.seen = append(l.seen, h)
			l.mu.Unlock()
		}
		return events.DynamoDBEventResponse{}, nil
	}
}

func (l *handledLog) snapshot() []handled {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]handled(nil), l.seen...)
}

func (l *handledLog) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(l.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("handled %d records, want %d: %v", len(l.snapshot()), n, l.snapshot())
		}
		time.Sleep(time.Millisecond)
	}
}

func runMapping(t *testing.T, cfg StreamConfig) (stop func()) {
	t.Helper()
	cfg.Name = "test"
	cfg.StreamARN = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x"
	cfg.PollInterval = time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	m, err := NewStreamMapping(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}
}

func TestStreamMappingFollowsShardLineage(t *testing.T) {
	f := &fakeStreams{pageSize: 2, expire: map[string]bool{"s0": true}, reads: map[string]int{}}
	f.add("s0", "", 2, false) // an unrelated open shard, read concurrently
	f.add("s1", "", 5, true)  // closed parent...
	f.add("s2", "s1", 3, true)
	f.add("s3", "s1", 2, false) // ...split into two children
	f.add("s4", "s2", 2, false)
	var l handledLog
	checkpoints := &MemoryCheckpoints{}
	stop := runMapping(t, StreamConfig{Streams: f, Handler: l.handler(nil), BatchSize: 2, Checkpoints: checkpoints})

	l.waitFor(t, 14)
	// Rollover while running: s3 gets a last record and closes, s5 follows it.
	f.add("s3", "", 1, true)
	f.add("s5", "s3", 2, false)
	l.waitFor(t, 17)
	stop()
	if len(f.expire) != 0 {
		t.Error("the expired iterator was never met")
	}

	seen := l.snapshot()
	first, last := map[string]int{}, map[string]int{}
	next := map[string]int{}
	for i, h := range seen {
		if h.index != next[h.shard] {
			t.Fatalf("shard %s: got record %d, want %d (all: %v)", h.shard, h.index, next[h.shard], seen)
		}
		next[h.shard]++
		if _, ok := first[h.shard]; !ok {
			first[h.shard] = i
		}
		last[h.shard] = i
	}
	want := map[string]int{"s0": 2, "s1": 5, "s2": 3, "s3": 3, "s4": 2, "s5": 2}
	for shard, n := range want {
		if next[shard] != n {
			t.Errorf("shard %s: handled %d records, want %d", shard, next[shard], n)
		}
	}
	if len(seen) != 17 {
		t.Errorf("handled %d records, want 17 (each once)", len(seen))
	}
	for child, parent := range map[string]string{"s2": "s1", "s3": "s1", "s4": "s2", "s5": "s3"} {
		if first[child] < last[parent] {
			t.Errorf("shard %s started before its parent %s finished: %v", child, parent, seen)
		}
	}
	for shard, want := range map[string]string{"s1": shardEnd, "s2": shardEnd, "s3": shardEnd, "s0": fmt.Sprintf("%021d", 2)} {
		got, _ := checkpoints.Load(context.Background(), CheckpointKey("test", "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x", shard))
		if got != want {
			t.Errorf("checkpoint of %s = %q, want %q", shard, got, want)
		}
	}

	t.Run("a restart reads only what is new", func(t *testing.T) {
		f.mu.Lock()
		f.reads = map[string]int{}
		f.mu.Unlock()
		f.add("s4", "", 1, false)
		var l handledLog
		stop := runMapping(t, StreamConfig{Streams: f, Handler: l.handler(nil), Checkpoints: checkpoints})
		l.waitFor(t, 1)
		time.Sleep(50 * time.Millisecond)
		stop()
		if got := l.snapshot(); len(got) != 1 || got[0] != (handled{"s4", 2}) {
			t.Errorf("handled %v, want only s4/2", got)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range []string{"s1", "s2", "s3"} {
			if f.reads[s] != 0 {
				t.Errorf("finished shard %s read %d times", s, f.reads[s])
			}
		}
	})
}

func TestStreamMappingOnFailureSendIsRetried(t *testing.T) {
	f := &fakeStreams{pageSize: 10, expire: map[string]bool{}, reads: map[string]int{}}
	f.add("s1", "", 6, false)
	sender := &fakeSender{failures: 2}
	var l handledLog
	stop := runMapping(t, StreamConfig{
		Streams: f, BatchSize: 6, MaxRetries: NoRetries,
		OnFailure: Destination{SQS: sender, QueueURL: "q"},
		Handler:   l.handler(func(h handled) bool { return h.index == 2 || h.index == 4 }),
	})
	l.waitFor(t, 4)
	stop()
	if got := l.snapshot(); len(got) != 4 {
		t.Errorf("handled %v, want the 4 good records once each", got)
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.bodies) != 2 {
		t.Fatalf("sent %d on-failure messages, want 2", len(sender.bodies))
	}
	for i, body := range sender.bodies {
		var fail StreamFailure
		if err := json.Unmarshal([]byte(body), &fail); err != nil {
			t.Fatal(err)
		}
		want := []string{"2", "4"}[i]
		if fail.Record == nil || fail.Record.Change.Keys["sk"].Number() != want || fail.Attempts != 1 || fail.ShardID != "s1" {
			t.Errorf("on-failure message %d = %+v, want record %s after 1 attempt", i, fail, want)
		}
	}
}
