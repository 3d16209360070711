// Package esm emulates AWS Lambda event source mappings for `ferry local`.
//
// A StreamMapping reads every shard of a DynamoDB stream the way a Lambda
// stream event source mapping does (StartingPosition, BatchSize,
// FilterCriteria, ParallelizationFactor, ReportBatchItemFailures,
// BisectBatchOnFunctionError, MaximumRetryAttempts and an SQS on-failure
// destination); an SQSMapping polls a queue the way a Lambda SQS trigger does
// (BatchSize, ReportBatchItemFailures; the queue's own redrive policy moves
// poison messages to its dead-letter queue); a Ticker runs a schedule.
// ferry local takes these settings from infra/template.yaml (see
// local/resources). The handlers
// are the same functions the Lambdas run: nothing in a handler knows whether
// it runs in AWS or here.
//
// The mappings use only the public DynamoDB Streams and SQS APIs and behave
// the same against AWS and against moto server, the local emulator.
//
// # Stream failures
//
// A handler's response is read with Lambda's ReportBatchItemFailures rules:
// an empty list is success; otherwise the record with the lowest listed
// sequence number is the first failure, the records before it are done and
// the rest of the batch is retried. An empty or unknown item identifier, a
// returned error and a panic fail the whole batch. A batch that fails as a
// whole is split in halves (BisectOnError) until the failing record is alone;
// splitting spends no retries. A batch that cannot be split is retried
// MaxRetries times, 100ms apart and doubling, and then given up: each of its
// records goes to OnFailure as a StreamFailure message and the shard moves
// on. With BisectOnError off, that is the whole failing batch, as in Lambda.
//
// # Where it differs from Lambda
//
//   - A batch never spans two GetRecords calls (no batching window). With a
//     parallelization factor above 1, the records of one GetRecords call are
//     split by partition key into that many groups run concurrently, and the
//     next call waits for all of them.
//   - Reading starts at TRIM_HORIZON or LATEST; there is no AT_TIMESTAMP,
//     record age limit or tumbling window. Filter patterns support the
//     operators Filter lists; others are refused when the mapping is made.
//   - The on-failure message carries the record itself, one message per
//     record, so an operator can replay it; Lambda sends only the batch's
//     shard and sequence numbers.
//   - There is no function timeout: a handler must honour its context.
//   - An SQSMapping is one poller handling one batch at a time, and it makes
//     a failed message visible again after RetryDelay instead of leaving it
//     hidden for the rest of its visibility timeout.
//
// # moto server (5.x)
//
// moto's DynamoDB Streams has one shard per table, with the same shard ID in
// every table; the shard never closes, has no parent, and its records are
// never trimmed. DescribeStream ignores paging. Shard iterators never expire
// and are never freed, so every GetRecords call costs the emulator a little
// memory: a long-running local stack may want a PollInterval above the
// default. An iterator moto does not know (after a restart) fails with a
// server error, which a StreamMapping handles like any other failure: it asks
// for a new iterator after its checkpoint. Checkpoint keys include the
// stream ARN, which changes when a table is re-created, so a new table is
// read from its start. Shard lineage, closing shards, paging and expired
// iterators are therefore tested against an in-memory stream in the unit
// tests; the integration tests run against moto.
package esm
