package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/domain"
)

// ErrConflict is in the chain of every error (errors.Is) returned when an
// append loses a race: an event with one of the versions it meant to write is
// already stored. Its kind is domain.KindConflict: reload and decide again.
var ErrConflict = &domain.Error{Kind: domain.KindConflict, Message: "version conflict"}

// ErrNotFound is in the chain of every error (errors.Is) returned when the
// transfer (or its view) does not exist. Its kind is domain.KindNotFound.
var ErrNotFound = &domain.Error{Kind: domain.KindNotFound, Message: "transfer not found"}

// writeMu keeps this process's transactions from overlapping its other
// writes: single-item writes share it, TransactWriteItems holds it alone.
// DynamoDB does not need this; moto server, the local emulator, does. It runs
// requests concurrently and implements TransactWriteItems by copying the whole
// table first and putting the copy back when the transaction is cancelled,
// which silently undoes every write made to the table in between (two
// racing multi-event appends could then both "win"). The cost on DynamoDB is
// that a multi-event append, which is rare, briefly delays this process's
// other writes.
var writeMu sync.RWMutex

// MaxAppend is the most events one Append may write: the number of items a
// DynamoDB transaction may hold.
const MaxAppend = 100

// Store is the DynamoDB event store and read model of ferry's transfers. It is
// safe for concurrent use.
type Store struct {
	db    *dynamodb.Client
	table string
	// Now is the clock used for History's default time window. It defaults to
	// time.Now; tests may replace it before the Store is used.
	Now func() time.Time
}

// New returns a Store on the named table, using db for every request. It does
// not touch the table; call CreateTable to make sure it exists.
func New(db *dynamodb.Client, table string) *Store {
	return &Store{db: db, table: table, Now: time.Now}
}

// Table returns the name of the table the Store uses.
func (s *Store) Table() string { return s.table }

// Append stores events as the transfer's next versions after prev and returns
// the state they lead to (prev folded with them by domain.Evolve). Each event
// item carries the snapshot of the state after it.
//
// The events must be between 1 and MaxAppend, carry the same non-empty
// TransferID (prev's when prev is not new), a payload, and the Seq numbers
// prev.Version+1, prev.Version+2, … without gaps; the first event of a new
// transfer must be Requested. Otherwise Append writes nothing and returns a
// domain.KindInvalid error.
//
// One event is one conditional PutItem; several are one TransactWriteItems,
// so they are stored all or none. If any of the versions is already stored,
// nothing is written and the error satisfies errors.Is(err, ErrConflict).
// An SDK retry of a write that had in fact succeeded is not a conflict: the
// PutItem recognises its own item, TransactWriteItems its request token.
// Throttling and network failures are domain.KindUnavailable.
func (s *Store) Append(ctx context.Context, prev domain.State, events ...domain.Event) (domain.State, error) {
	if err := checkAppend(prev, events); err != nil {
		return prev, err
	}
	id := events[0].TransferID
	wid := ulid.MustNew(ulid.Now(), rand.Reader).String()
	st := prev
	items := make([]map[string]types.AttributeValue, len(events))
	for i, e := range events {
		st = domain.Evolve(st, e)
		item, err := eventItem(e, st, wid)
		if err != nil {
			return prev, err
		}
		items[i] = item
	}
	first, last := events[0].Seq, events[len(events)-1].Seq
	if len(items) == 1 {
		writeMu.RLock()
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           &s.table,
			Item:                                items[0],
			ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		writeMu.RUnlock()
		if err != nil {
			var ccf *types.ConditionalCheckFailedException
			if errors.As(err, &ccf) {
				if ours(ccf.Item, wid) {
					// An SDK retry of a write that had succeeded.
					return st, nil
				}
				return prev, fmt.Errorf("append %s v%d: %w", id, first, ErrConflict)
			}
			return prev, wrap(fmt.Sprintf("append %s v%d", id, first), err)
		}
		return st, nil
	}
	tx := make([]types.TransactWriteItem, len(items))
	for i, item := range items {
		tx[i] = types.TransactWriteItem{Put: &types.Put{
			TableName:           &s.table,
			Item:                item,
			ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}}
	}
	// The SDK sets a ClientRequestToken, so its own retries are idempotent.
	writeMu.Lock()
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: tx})
	writeMu.Unlock()
	if err != nil {
		var tce *types.TransactionCanceledException
		if errors.As(err, &tce) {
			for _, r := range tce.CancellationReasons {
				if aws.ToString(r.Code) == "ConditionalCheckFailed" {
					return prev, fmt.Errorf("append %s v%d-%d: %w", id, first, last, ErrConflict)
				}
			}
		}
		return prev, wrap(fmt.Sprintf("append %s v%d-%d", id, first, last), err)
	}
	return st, nil
}

func checkAppend(prev domain.State, events []domain.Event) error {
	if len(events) == 0 {
		return domain.Errorf(domain.KindInvalid, "append: no events")
	}
	if len(events) > MaxAppend {
		return domain.Errorf(domain.KindInvalid, "append: %d events, at most %d at once", len(events), MaxAppend)
	}
	id := events[0].TransferID
	if id == "" {
		return domain.Errorf(domain.KindInvalid, "append: event has no transfer id")
	}
	if prev.Version > 0 && prev.ID != id {
		return domain.Errorf(domain.KindInvalid, "append: event for %s after state of %s", id, prev.ID)
	}
	if prev.Version < 0 {
		return domain.Errorf(domain.KindInvalid, "append %s: negative version %d", id, prev.Version)
	}
	for i, e := range events {
		if e.TransferID != id {
			return domain.Errorf(domain.KindInvalid, "append %s: event %d is for %s", id, i+1, e.TransferID)
		}
		if want := prev.Version + 1 + i; e.Seq != want {
			return domain.Errorf(domain.KindInvalid, "append %s: event %d has version %d, want %d", id, i+1, e.Seq, want)
		}
		if e.Payload == nil {
			return domain.Errorf(domain.KindInvalid, "append %s v%d: event has no payload", id, e.Seq)
		}
	}
	if prev.Version == 0 && events[0].Type() != domain.TypeRequested {
		return domain.Errorf(domain.KindInvalid, "append %s: first event is %s, want %s", id, events[0].Type(), domain.TypeRequested)
	}
	return nil
}

// ours reports whether an existing item was written by the Append call
// identified by wid.
func ours(item map[string]types.AttributeValue, wid string) bool {
	v, ok := item[attrWriteID].(*types.AttributeValueMemberS)
	return ok && v.Value == wid
}

// Load returns the transfer's current state: the snapshot stored with its
// newest event. It costs one strongly consistent Query reading one item,
// however many events the transfer has. It returns an error satisfying
// errors.Is(err, ErrNotFound) if the transfer has no events,
// domain.KindUnavailable on throttling or network failure.
func (s *Store) Load(ctx context.Context, id string) (domain.State, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :e)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(transferKey(id)),
			":e":  str(eventPrefix),
		},
		ProjectionExpression: aws.String("#state"),
		ExpressionAttributeNames: map[string]string{
			"#state": attrState,
		},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(1),
		ConsistentRead:   aws.Bool(true),
	})
	if err != nil {
		return domain.State{}, wrap("load "+id, err)
	}
	if len(out.Items) == 0 {
		return domain.State{}, fmt.Errorf("load %s: %w", id, ErrNotFound)
	}
	st, err := stateOf(out.Items[0])
	if err != nil {
		return domain.State{}, fmt.Errorf("load %s: %w", id, err)
	}
	return st, nil
}

// Events returns the transfer's events with versions after afterSeq, oldest
// first, at most limit of them (all of them when limit <= 0). Pass the last
// Seq returned as afterSeq to read the next page; an empty result means there
// are no more. A transfer that does not exist has no events: the result is
// empty and the error nil. Reads are strongly consistent. Errors are
// domain.KindUnavailable on throttling or network failure, domain.KindInvalid
// for an undecodable item.
func (s *Store) Events(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, error) {
	events, _, err := s.events(ctx, id, afterSeq, limit, false)
	return events, err
}

// EventStates is Events with the state after each event, which its item
// holds beside it: what the published form of each event (schema.NewDetail)
// needs, read in the same queries.
func (s *Store) EventStates(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, []domain.State, error) {
	return s.events(ctx, id, afterSeq, limit, true)
}

func (s *Store) events(ctx context.Context, id string, afterSeq, limit int, withStates bool) ([]domain.Event, []domain.State, error) {
	if afterSeq < 0 {
		afterSeq = 0
	}
	names := map[string]string{"#tid": attrID, "#seq": attrSeq, "#type": attrType, "#at": attrAt, "#data": attrData}
	projection := "#tid, #seq, #type, #at, #data"
	if withStates {
		names["#state"] = attrState
		projection += ", #state"
	}
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(transferKey(id)),
			":lo": str(eventKey(afterSeq + 1)),
			":hi": str(eventPrefix + "9999999999"),
		},
		ProjectionExpression:     aws.String(projection),
		ExpressionAttributeNames: names,
		ScanIndexForward:         aws.Bool(true),
		ConsistentRead:           aws.Bool(true),
	}
	var events []domain.Event
	var states []domain.State
	for {
		if limit > 0 {
			in.Limit = aws.Int32(int32(min(limit-len(events), 1000)))
		}
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return events, states, wrap("events "+id, err)
		}
		for _, item := range out.Items {
			e, err := eventOf(item)
			if err != nil {
				return events, states, fmt.Errorf("events %s: %w", id, err)
			}
			events = append(events, e)
			if withStates {
				st, err := stateOf(item)
				if err != nil {
					return events, states, fmt.Errorf("events %s: %w", id, err)
				}
				states = append(states, st)
			}
		}
		if len(out.LastEvaluatedKey) == 0 || (limit > 0 && len(events) >= limit) {
			return events, states, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// CreateTable creates the Store's table as def defines it (keys, global
// secondary indexes, stream; def's TableName is replaced by the Store's),
// unless a table of that name exists, and waits (up to five minutes) until
// it is ACTIVE. The definition is infra/template.yaml's, read by
// internal/local/resources. It does not check or change the schema of an
// existing table. Errors are domain.KindUnavailable on throttling or
// network failure, domain.KindInternal otherwise.
func (s *Store) CreateTable(ctx context.Context, def dynamodb.CreateTableInput) error {
	def.TableName = &s.table
	_, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.table})
	var nf *types.ResourceNotFoundException
	switch {
	case err == nil:
	case errors.As(err, &nf):
		_, err = s.db.CreateTable(ctx, &def)
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return wrap("create table "+s.table, err)
		}
	default:
		return wrap("describe table "+s.table, err)
	}
	w := dynamodb.NewTableExistsWaiter(s.db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = 5 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &s.table}, 5*time.Minute); err != nil {
		return wrap("wait for table "+s.table, err)
	}
	return nil
}

// StreamARN returns the ARN of the table's latest stream. It returns a
// domain.KindNotFound error if the table does not exist or has no stream.
func (s *Store) StreamARN(ctx context.Context) (string, error) {
	out, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.table})
	if err != nil {
		return "", wrap("describe table "+s.table, err)
	}
	arn := aws.ToString(out.Table.LatestStreamArn)
	if arn == "" {
		return "", domain.Errorf(domain.KindNotFound, "table %s has no stream", s.table)
	}
	return arn, nil
}
