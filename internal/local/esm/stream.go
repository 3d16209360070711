package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Defaults of StreamConfig and SQSConfig.
const (
	DefaultStreamBatchSize = 100
	DefaultMaxRetries      = 3
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultSQSBatchSize    = 10
	DefaultWaitTime        = time.Second
	DefaultRetryDelay      = time.Second
)

// NoRetries, as StreamConfig.MaxRetries, gives a failing record up (sends it
// to the on-failure destination) after its first failed attempt.
const NoRetries = -1

// describeInterval is how often a StreamMapping looks for new shards when no
// shard has closed in the meantime.
const describeInterval = 10 * time.Second

// maxFailureMessage is the largest on-failure message body sent with the
// record in it; a larger record is left out (the message still names it by
// shard and sequence number). 256 KiB is the SQS limit everywhere.
const maxFailureMessage = 256 * 1024

// StreamsAPI is the part of the DynamoDB Streams client a StreamMapping
// uses; *dynamodbstreams.Client implements it.
type StreamsAPI interface {
	DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

var _ StreamsAPI = (*dynamodbstreams.Client)(nil)

// MessageSender is the part of the SQS client an on-failure destination
// uses; *sqs.Client implements it.
type MessageSender interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var _ MessageSender = (*sqs.Client)(nil)

// Destination is an SQS queue that receives what a mapping gives up on.
type Destination struct {
	SQS      MessageSender // usually an *sqs.Client
	QueueURL string
}

func (d Destination) configured() bool { return d.SQS != nil || d.QueueURL != "" }

// StreamConfig configures a StreamMapping. Fields map to the Lambda event
// source mapping settings of the same meaning; WithDefaults fills the zero
// ones.
type StreamConfig struct {
	// Name identifies the mapping in logs, on-failure messages and checkpoint
	// keys (required). Two mappings on one stream need different names.
	Name      string
	Streams   StreamsAPI    // required; usually a *dynamodbstreams.Client
	StreamARN string        // required
	Handler   StreamHandler // required

	// BatchSize is the most records per invocation, 1..1000 (default 100).
	BatchSize int
	// MaxRetries is how often a batch that cannot be split further is
	// retried before its records go to OnFailure (MaximumRetryAttempts).
	// 0 means DefaultMaxRetries (3); NoRetries gives up after one attempt.
	MaxRetries int
	// BisectOnError splits a failing batch in halves and retries each
	// (BisectBatchOnFunctionError). nil means true; use aws.Bool(false) to
	// turn it off.
	BisectOnError *bool
	// OnFailure receives one StreamFailure message per record given up. If
	// it is not set, such records are logged at error level and skipped, as
	// Lambda drops them without a destination.
	OnFailure Destination
	// PollInterval is the wait after a read that returned no records
	// (default 250ms, Lambda's four reads a second per shard).
	PollInterval time.Duration
	// Checkpoints keeps each shard's position across runs (default: in
	// memory only, so every run starts at StartingPosition).
	Checkpoints CheckpointStore
	Logger      *slog.Logger // default slog.Default()

	// StartingPosition is where a shard without a checkpoint is read from:
	// TrimHorizon (the default) or Latest.
	StartingPosition string
	// ParallelizationFactor is how many batches of one shard run at once,
	// 1..10 (default 1). The records of one read are split among them by a
	// hash of the partition key (PartitionKey), so the records of one item
	// stay in order; the shard is checkpointed past the read only when all
	// of them are done. Bisecting, retries and the on-failure destination
	// apply to each batch on its own.
	ParallelizationFactor int
	// PartitionKey is the table's partition key attribute, which
	// ParallelizationFactor splits by (default: every key of the record).
	PartitionKey string
	// ReportBatchItemFailures reads the handler's BatchItemFailures (nil
	// means true); when false only an error or a panic fails a batch, and
	// always the whole batch, as in Lambda without the function response
	// type.
	ReportBatchItemFailures *bool
	// Filters are FilterCriteria patterns (see Filter). A record matching
	// none is not delivered, and is checkpointed past like a delivered one.
	// None means every record is delivered.
	Filters []string
}

// Starting positions of StreamConfig.
const (
	TrimHorizon = "TRIM_HORIZON"
	Latest      = "LATEST"
)

// WithDefaults returns c with its zero fields set to their defaults.
func (c StreamConfig) WithDefaults() StreamConfig {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultStreamBatchSize
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.BisectOnError == nil {
		c.BisectOnError = aws.Bool(true)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Checkpoints == nil {
		c.Checkpoints = &MemoryCheckpoints{}
	}
	if c.StartingPosition == "" {
		c.StartingPosition = TrimHorizon
	}
	if c.ParallelizationFactor == 0 {
		c.ParallelizationFactor = 1
	}
	if c.ReportBatchItemFailures == nil {
		c.ReportBatchItemFailures = aws.Bool(true)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem with c at once.
func (c StreamConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.Streams == nil {
		errs = append(errs, errors.New("streams client is required"))
	}
	if c.StreamARN == "" {
		errs = append(errs, errors.New("stream ARN is required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("handler is required"))
	}
	if c.BatchSize < 1 || c.BatchSize > 1000 {
		errs = append(errs, fmt.Errorf("batch size %d is not in 1..1000", c.BatchSize))
	}
	if c.MaxRetries < NoRetries {
		errs = append(errs, fmt.Errorf("max retries %d is negative", c.MaxRetries))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %s is negative", c.PollInterval))
	}
	if c.OnFailure.configured() && (c.OnFailure.SQS == nil || c.OnFailure.QueueURL == "") {
		errs = append(errs, errors.New("on-failure destination needs both an SQS client and a queue URL"))
	}
	if c.StartingPosition != TrimHorizon && c.StartingPosition != Latest {
		errs = append(errs, fmt.Errorf("starting position %q is not %s or %s", c.StartingPosition, TrimHorizon, Latest))
	}
	if c.ParallelizationFactor < 1 || c.ParallelizationFactor > 10 {
		errs = append(errs, fmt.Errorf("parallelization factor %d is not in 1..10", c.ParallelizationFactor))
	}
	if _, err := CompileFilters(c.Filters); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type streamsOptions interface {
	Options() dynamodbstreams.Options
}

// StreamMapping reads every shard of one DynamoDB stream and invokes a
// handler with batches of its records, like one Lambda event source mapping
// with ReportBatchItemFailures on.
//
// Delivery is at least once. Records of one shard are handled strictly in
// order, one batch at a time (with a ParallelizationFactor above 1: in order
// per partition key, that many batches at a time); shards are handled
// concurrently, except that a child shard starts only when its parent is
// finished. Records the Filters reject are skipped. A record is
// checkpointed when the handler succeeded with it or when it was given up
// (sent to OnFailure after MaxRetries retries), so one poison record never
// blocks its shard.
type StreamMapping struct {
	cfg        StreamConfig
	filters    Filters
	maxRetries int
	region     string
	log        *slog.Logger
}

// NewStreamMapping returns a mapping for cfg, with defaults filled in, or
// the problems Validate found.
func NewStreamMapping(cfg StreamConfig) (*StreamMapping, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stream mapping %q: %w", cfg.Name, err)
	}
	filters, _ := CompileFilters(cfg.Filters) // Validate compiled them
	m := &StreamMapping{
		cfg:        cfg,
		filters:    filters,
		maxRetries: max(cfg.MaxRetries, 0),
		log:        cfg.Logger.With("mapping", cfg.Name),
	}
	// The records' awsRegion is the client's region, as in Lambda; a client
	// that does not tell leaves the region each record carries.
	if c, ok := cfg.Streams.(streamsOptions); ok {
		m.region = c.Options().Region
	}
	return m, nil
}

// Run reads the stream until ctx is cancelled, then waits for the shard
// readers to stop and returns nil. A batch in flight at cancellation is
// checkpointed only as far as the handler completed it. Run returns an error
// only if the stream does not exist; other failures of AWS calls are logged
// and retried with backoff.
//
// Run discovers shards with DescribeStream, again whenever a shard ends and
// every ten seconds, so it follows shard rollover and splits. Each shard
// starts after its checkpoint (AFTER_SEQUENCE_NUMBER), or at the
// StartingPosition without one.
func (m *StreamMapping) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ended := make(chan string)
	running := make(map[string]bool)
	finished := make(map[string]bool)
	for failures := 0; ; {
		wait := describeInterval
		shards, err := m.describe(ctx)
		var notFound *streamtypes.ResourceNotFoundException
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &notFound):
			return fmt.Errorf("stream mapping %q: %w", m.cfg.Name, err)
		case err != nil:
			m.log.Warn("describe stream failed", "err", err)
			wait = backoff(failures)
			failures++
		default:
			failures = 0
			for _, id := range readyShards(shards, running, finished) {
				running[id] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					if m.readShard(ctx, id) {
						select {
						case ended <- id:
						case <-ctx.Done():
						}
					}
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case id := <-ended:
			delete(running, id)
			finished[id] = true
		case <-time.After(wait):
		}
	}
}

// readyShards returns, in the order listed, the shards that are neither
// running nor finished and whose parent is finished or no longer listed
// (trimmed from the stream, or never known).
func readyShards(shards []streamtypes.Shard, running, finished map[string]bool) []string {
	listed := make(map[string]bool, len(shards))
	for _, s := range shards {
		listed[aws.ToString(s.ShardId)] = true
	}
	var ready []string
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if id == "" || running[id] || finished[id] {
			continue
		}
		if p := aws.ToString(s.ParentShardId); p != "" && listed[p] && !finished[p] {
			continue
		}
		ready = append(ready, id)
	}
	return ready
}

// describe lists every shard of the stream, following DescribeStream's pages.
func (m *StreamMapping) describe(ctx context.Context) ([]streamtypes.Shard, error) {
	var shards []streamtypes.Shard
	var start *string
	for {
		out, err := m.cfg.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{
			StreamArn:             aws.String(m.cfg.StreamARN),
			ExclusiveStartShardId: start,
		})
		if err != nil {
			return nil, fmt.Errorf("describe stream: %w", err)
		}
		if out.StreamDescription == nil {
			return shards, nil
		}
		shards = append(shards, out.StreamDescription.Shards...)
		next := out.StreamDescription.LastEvaluatedShardId
		if next == nil || (start != nil && *next == *start) {
			return shards, nil
		}
		start = next
	}
}

// shard is the state of one shard's reader.
type shard struct {
	id   string
	key  string // checkpoint key
	last string // sequence number of the last record done with; "" for none
	log  *slog.Logger
	b    batcher
}

// readShard reads one shard from its checkpoint until the shard ends
// (returning true) or ctx is cancelled (returning false).
func (m *StreamMapping) readShard(ctx context.Context, id string) bool {
	sh := &shard{
		id:  id,
		key: CheckpointKey(m.cfg.Name, m.cfg.StreamARN, id),
		log: m.log.With("shard", id),
		b:   batcher{batchSize: m.cfg.BatchSize, maxRetries: m.maxRetries, bisect: *m.cfg.BisectOnError},
	}
	for n := 0; ; n++ {
		seq, err := m.cfg.Checkpoints.Load(ctx, sh.key)
		if err == nil {
			sh.last = seq
			break
		}
		sh.log.Warn("load checkpoint failed", "err", err)
		if !sleep(ctx, backoff(n)) {
			return false
		}
	}
	if sh.last == shardEnd {
		return true
	}
	sh.log.Debug("reading shard", "after", sh.last)

	var (
		expired      *streamtypes.ExpiredIteratorException
		trimmed      *streamtypes.TrimmedDataAccessException
		notFound     *streamtypes.ResourceNotFoundException
		iterator     string
		haveIterator bool
	)
	for failures := 0; ; {
		if ctx.Err() != nil {
			return false
		}
		if !haveIterator {
			it, err := m.iterator(ctx, sh)
			switch {
			case ctx.Err() != nil:
				return false
			case errors.As(err, &notFound):
				sh.log.Info("shard no longer exists", "err", err)
				return true
			case errors.As(err, &trimmed):
				sh.log.Error("checkpoint is older than the stream's retention; records were lost, reading from TRIM_HORIZON", "after", sh.last)
				sh.last = ""
				continue
			case err != nil:
				sh.log.Warn("get shard iterator failed", "err", err)
				if !sleep(ctx, backoff(failures)) {
					return false
				}
				failures++
				continue
			case it == nil:
				m.endShard(ctx, sh)
				return true
			}
			iterator, haveIterator = *it, true
		}
		out, err := m.cfg.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{
			ShardIterator: aws.String(iterator),
			Limit:         aws.Int32(int32(m.cfg.BatchSize)),
		})
		switch {
		case ctx.Err() != nil:
			return false
		case errors.As(err, &expired):
			// Iterators last 15 minutes; a slow handler can outlive one.
			sh.log.Debug("shard iterator expired", "after", sh.last)
			haveIterator = false
			if failures++; failures > 1 && !sleep(ctx, backoff(failures-2)) {
				return false
			}
			continue
		case errors.As(err, &notFound):
			sh.log.Info("shard no longer exists", "err", err)
			return true
		case errors.As(err, &trimmed):
			sh.log.Error("position is older than the stream's retention; records were lost, reading from TRIM_HORIZON", "after", sh.last)
			sh.last, haveIterator = "", false
			continue
		case err != nil:
			// Also what an emulator that lost its state (moto restarted)
			// answers: start again from the checkpoint.
			sh.log.Warn("get records failed", "err", err)
			haveIterator = false
			if !sleep(ctx, backoff(failures)) {
				return false
			}
			failures++
			continue
		}
		failures = 0
		if len(out.Records) > 0 && !m.process(ctx, sh, out.Records) {
			return false
		}
		if out.NextShardIterator == nil {
			m.endShard(ctx, sh)
			return true
		}
		iterator = *out.NextShardIterator
		if len(out.Records) == 0 && !sleep(ctx, m.cfg.PollInterval) {
			return false
		}
	}
}

// iterator returns an iterator positioned after the shard's checkpoint, or
// at the starting position without one; nil means the shard has nothing
// more.
func (m *StreamMapping) iterator(ctx context.Context, sh *shard) (*string, error) {
	in := &dynamodbstreams.GetShardIteratorInput{
		StreamArn:         aws.String(m.cfg.StreamARN),
		ShardId:           aws.String(sh.id),
		ShardIteratorType: streamtypes.ShardIteratorType(m.cfg.StartingPosition),
	}
	if sh.last != "" {
		in.ShardIteratorType = streamtypes.ShardIteratorTypeAfterSequenceNumber
		in.SequenceNumber = aws.String(sh.last)
	}
	out, err := m.cfg.Streams.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get shard iterator: %w", err)
	}
	return out.ShardIterator, nil
}

// endShard records that a closed shard has been read to its end, so a later
// run does not read it again.
func (m *StreamMapping) endShard(ctx context.Context, sh *shard) {
	sh.log.Info("shard ended")
	m.checkpoint(ctx, sh, shardEnd)
}

// process hands the records of one GetRecords call that pass the filters to
// the handler in batches, as the batcher decides, and checkpoints as records
// are done or given up, and past the records filtered out. With a
// parallelization factor above 1 the records are split by partition key
// and their batches run concurrently, and the shard is checkpointed only
// once all are done. It returns false if ctx was cancelled before all were
// done.
func (m *StreamMapping) process(ctx context.Context, sh *shard, records []streamtypes.Record) bool {
	var recs []events.DynamoDBEventRecord
	for _, r := range records {
		rec := StreamRecord(r, m.cfg.StreamARN, m.region)
		ok, err := m.filters.Match(rec)
		if err != nil { // cannot happen with this type; deliver rather than lose it
			sh.log.Error("filter record failed; delivering it", "seq", rec.Change.SequenceNumber, "err", err)
			ok = true
		}
		if ok {
			recs = append(recs, rec)
		}
	}
	var last string
	if d := records[len(records)-1].Dynamodb; d != nil {
		last = aws.ToString(d.SequenceNumber)
	}
	if m.cfg.ParallelizationFactor == 1 || len(recs) < 2 {
		if !m.runBatches(ctx, sh, &sh.b, recs, true) {
			return false
		}
	} else {
		groups := m.partition(recs)
		var wg sync.WaitGroup
		ok := make([]bool, len(groups))
		for i, g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := batcher{batchSize: m.cfg.BatchSize, maxRetries: m.maxRetries, bisect: *m.cfg.BisectOnError}
				ok[i] = m.runBatches(ctx, sh, &b, g, false)
			}()
		}
		wg.Wait()
		if slices.Contains(ok, false) {
			return false // delivered again after a restart, as after a crash
		}
	}
	if last != "" && last != sh.last {
		m.checkpoint(ctx, sh, last)
	}
	return true
}

// partition splits recs into at most ParallelizationFactor groups by a hash
// of each record's partition key, keeping the order within each group.
func (m *StreamMapping) partition(recs []events.DynamoDBEventRecord) [][]events.DynamoDBEventRecord {
	n := m.cfg.ParallelizationFactor
	groups := make([][]events.DynamoDBEventRecord, n)
	for _, r := range recs {
		h := fnv.New32a()
		if k, ok := r.Change.Keys[m.cfg.PartitionKey]; ok && m.cfg.PartitionKey != "" {
			b, _ := json.Marshal(k)
			h.Write(b)
		} else {
			keys := make([]string, 0, len(r.Change.Keys))
			for k := range r.Change.Keys {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				b, _ := json.Marshal(r.Change.Keys[k])
				h.Write([]byte(k))
				h.Write(b)
			}
		}
		i := h.Sum32() % uint32(n)
		groups[i] = append(groups[i], r)
	}
	return slices.DeleteFunc(groups, func(g []events.DynamoDBEventRecord) bool { return len(g) == 0 })
}

// runBatches hands recs to the handler in batches as b decides, giving up
// what b gives up; with save it checkpoints as records are done. It returns
// false if ctx was cancelled before all were done.
func (m *StreamMapping) runBatches(ctx context.Context, sh *shard, b *batcher, recs []events.DynamoDBEventRecord, save bool) bool {
	for len(recs) > 0 {
		if ctx.Err() != nil {
			return false
		}
		n := b.next(len(recs))
		batch := recs[:n]
		resp, err := invoke(ctx, m.cfg.Handler, events.DynamoDBEvent{Records: batch})
		failedAt := -1
		switch {
		case err != nil:
			failedAt = 0
		case *m.cfg.ReportBatchItemFailures:
			failedAt = firstFailure(sequenceNumbers(batch), resp)
		}
		if ctx.Err() != nil {
			// Shutting down: keep what the handler completed, and judge no
			// failure, which may be the cancellation itself.
			if done := doneBefore(n, failedAt); done > 0 && save {
				m.checkpoint(context.WithoutCancel(ctx), sh, batch[done-1].Change.SequenceNumber)
			}
			return false
		}
		done, discard := b.result(n, failedAt)
		if failedAt >= 0 {
			reason := failureReason(err, batch, failedAt)
			sh.log.Warn("batch failed",
				"size", n, "start", batch[0].Change.SequenceNumber, "end", batch[n-1].Change.SequenceNumber,
				"reason", reason, "done", done, "given_up", discard, "retries", b.attempts())
			if discard > 0 {
				if !m.giveUp(ctx, sh, batch[done:done+discard], reason) {
					return false
				}
			}
		}
		if done+discard > 0 && save {
			m.checkpoint(ctx, sh, batch[done+discard-1].Change.SequenceNumber)
		}
		recs = recs[done+discard:]
		if r := b.attempts(); r > 0 && !sleep(ctx, backoff(r-1)) {
			return false
		}
	}
	return true
}

// doneBefore is how many records of a batch of n are done when the first
// failure is at failedAt (-1: none).
func doneBefore(n, failedAt int) int {
	if failedAt < 0 {
		return n
	}
	return failedAt
}

func sequenceNumbers(batch []events.DynamoDBEventRecord) []string {
	seqs := make([]string, len(batch))
	for i, r := range batch {
		seqs[i] = r.Change.SequenceNumber
	}
	return seqs
}

func failureReason(err error, batch []events.DynamoDBEventRecord, failedAt int) string {
	if err != nil {
		return err.Error()
	}
	return "batch item failure reported for sequence number " + batch[failedAt].Change.SequenceNumber
}

// checkpoint saves seq as the shard's position. A failed save is logged and
// not retried: the next save covers it, and until then a restart only
// delivers some records again.
func (m *StreamMapping) checkpoint(ctx context.Context, sh *shard, seq string) {
	sh.last = seq
	if err := m.cfg.Checkpoints.Save(ctx, sh.key, seq); err != nil {
		sh.log.Error("save checkpoint failed", "seq", seq, "err", err)
	}
}

// StreamFailure is the body of the on-failure message a StreamMapping sends
// for each record it gives up on. Record holds the record exactly as the
// handler received it, so an operator can hand it to the handler again;
// it is left out (RecordOmitted) only if the message would exceed the SQS
// size limit, in which case the record can still be read from the stream
// by its sequence number while the stream retains it.
type StreamFailure struct {
	Mapping        string    `json:"mapping"`
	StreamARN      string    `json:"streamARN"`
	ShardID        string    `json:"shardId"`
	SequenceNumber string    `json:"sequenceNumber"`
	Condition      string    `json:"condition"` // "RetryAttemptsExhausted"
	Reason         string    `json:"reason"`    // the handler's error, or the batch item failure
	Attempts       int       `json:"attempts"`  // invocations of the final, unsplittable batch
	Batch          BatchInfo `json:"batch"`     // the batch that was given up
	Timestamp      time.Time `json:"timestamp"`

	Record        *events.DynamoDBEventRecord `json:"record,omitempty"`
	RecordOmitted bool                        `json:"recordOmitted,omitempty"`
}

// BatchInfo names a range of records of one shard.
type BatchInfo struct {
	StartSequenceNumber string `json:"startSequenceNumber"`
	EndSequenceNumber   string `json:"endSequenceNumber"`
	Size                int    `json:"size"`
}

// giveUp sends one StreamFailure per record to the on-failure destination,
// retrying until it succeeds; it returns false if ctx is cancelled first.
// Without a destination the records are logged and dropped.
func (m *StreamMapping) giveUp(ctx context.Context, sh *shard, batch []events.DynamoDBEventRecord, reason string) bool {
	info := BatchInfo{
		StartSequenceNumber: batch[0].Change.SequenceNumber,
		EndSequenceNumber:   batch[len(batch)-1].Change.SequenceNumber,
		Size:                len(batch),
	}
	for i := range batch {
		f := StreamFailure{
			Mapping:        m.cfg.Name,
			StreamARN:      m.cfg.StreamARN,
			ShardID:        sh.id,
			SequenceNumber: batch[i].Change.SequenceNumber,
			Condition:      "RetryAttemptsExhausted",
			Reason:         reason,
			Attempts:       m.maxRetries + 1,
			Batch:          info,
			Timestamp:      time.Now().UTC(),
			Record:         &batch[i],
		}
		body, err := json.Marshal(f)
		if err == nil && len(body) > maxFailureMessage {
			f.Record, f.RecordOmitted = nil, true
			body, err = json.Marshal(f)
		}
		if err != nil { // cannot happen with these types; do not block the shard on it
			sh.log.Error("encode on-failure message failed", "seq", f.SequenceNumber, "err", err)
			continue
		}
		if m.cfg.OnFailure.SQS == nil {
			sh.log.Error("record given up; no on-failure destination", "seq", f.SequenceNumber, "failure", string(body))
			continue
		}
		for n := 0; ; n++ {
			_, err := m.cfg.OnFailure.SQS.SendMessage(ctx, &sqs.SendMessageInput{
				QueueUrl:    aws.String(m.cfg.OnFailure.QueueURL),
				MessageBody: aws.String(string(body)),
			})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return false
			}
			sh.log.Warn("send to on-failure destination failed", "seq", f.SequenceNumber, "err", err)
			if !sleep(ctx, backoff(n)) {
				return false
			}
		}
		sh.log.Error("record given up and sent to the on-failure destination", "seq", f.SequenceNumber, "reason", reason)
	}
	return true
}
