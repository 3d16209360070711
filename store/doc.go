// Package store is ferry's event store and read model on one DynamoDB table.
//
// The table holds two kinds of item, both under the transfer's partition
// key, so one transfer never spans partitions and history by id is one
// Query:
//
// Event items (written by Append, never changed or deleted):
//
//	pk    S  "T#<transferID>"
//	sk    S  "E#<seq, zero-padded to 10 digits>"
//	tid   S  transfer id
//	seq   N  version, contiguous from 1
//	type  S  domain.EventType
//	at    S  event time, UTC, fixed-width RFC 3339 with nanoseconds
//	data  S  domain.MarshalPayload JSON (versioned)
//	state S  JSON of the domain.State after this event (the snapshot)
//	wid   S  a random id per Append call; lets an SDK retry of a write that
//	         had in fact succeeded be recognised as ours, not as a conflict
//
// Each event carries the snapshot of the state it produced, so Load reads
// the newest event item only: one strongly consistent Query with Limit 1,
// whatever the length of the history.
//
// View items (the read model, one per transfer, written by Project from the
// table's stream; eventually consistent, never the source of truth):
//
//	pk "T#<id>", sk "VIEW", tid, seq, status, route, sender, recipient,
//	workflow, filename, size, chunks, chunksSent, created, updated,
//	lastError (message of the last failure, when the transfer is failing),
//	and the keys of the global secondary indexes, the first four projecting
//	ALL, byRef KEYS_ONLY (FindByRef reads only the id in its sort key):
//
//	byStatus    s_pk   "S#<status>#<yyyy-mm-dd of updated>#<shard>"  s_sk   "<updated>#<id>"
//	bySender    snd_pk "SND#<sender>#<yyyy-mm of created>#<shard>"   snd_sk "<created>#<id>"
//	byRecipient rcp_pk "RCP#<recipient>#<yyyy-mm of created>#<shard>" rcp_sk "<created>#<id>"
//	byRoute     rt_pk  "RT#<route>#<yyyy-mm of created>#<shard>"     rt_sk  "<created>#<id>"
//	byRef       ref_pk "REF#<remote reference>"              ref_sk "<id>"
//
// The table itself (keys, indexes, stream) is defined once, in
// infra/template.yaml; CreateTable takes that definition.
//
// Status keys are bucketed by day and the others by month so that no index
// partition grows unbounded, and each bucket is spread over 16 shards
// (<shard> is 00-15, the FNV-1a hash of the id) so that none grows hot: a
// history query reads a bucket's shards side by side and merges them in
// order (docs/scale.md). The sender, recipient and route keys are
// written only when the value is not empty. Empty string attributes are
// omitted. Times in sort keys use the fixed-width layout of TimeLayout so
// that string order is time order.
//
// Handshake items (one per MESH mailbox, written by ClaimHandshake so that
// processes share MESH's once-a-day handshake rule; not about a transfer):
//
//	pk "mesh-handshake#<mailbox>", sk "HANDSHAKE", at (time of the claim)
//
// Their sort key is not an event's, so IsEventImage is false for their
// stream records and the stream readers skip them; they carry no index keys.
//
// The table's stream carries NEW_IMAGE records; IsEventImage and DecodeImage
// turn the records of event items back into events and snapshots, and
// StreamImage (AttributeValue for one value) converts the DynamoDB Streams
// API's attribute values into the Lambda event types they accept. EventImage
// returns the image of the item Append writes for an event, for tests that
// build stream records with the store's own encoding.
//
// store/storetest is the store's contract suite: Run holds this Store and
// every fake (internal/testkit/memstore) to what handlers rely on, RunDynamoDB adds
// what only the DynamoDB store keeps.
//
// Errors are domain errors (*domain.Error in the chain, the AWS error
// wrapped inside it, its code as the Code), classified by internal/awserr,
// the one table of AWS error codes for every package: ErrConflict
// (domain.KindConflict) for a lost append race (a failed
// attribute_not_exists condition); ErrNotFound (domain.KindNotFound) for a
// missing transfer, KindNotFound also for a missing table; domain.KindInvalid
// for bad arguments and data; domain.KindUnavailable for throttling,
// timeouts, network and server errors and transactions that collided with
// another (TransactionConflictException; worth retrying);
// domain.KindUnauthorized for refused credentials; domain.KindInternal
// otherwise.
package store
