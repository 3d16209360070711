package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
)

// Summary is a transfer as the read model shows it: what history queries
// return. It lags the event store by the stream's delay.
type Summary struct {
	ID         string
	Seq        int // the version the summary reflects
	Status     domain.Status
	Route      string
	Sender     string
	Recipient  string
	Workflow   string
	Filename   string
	Size       int64
	Chunks     int
	ChunksSent int
	Created    time.Time
	Updated    time.Time
	// LastError is the message of the last failure while the transfer is
	// failing or retrying, "" otherwise.
	LastError string
}

// Project stores st as the transfer's view (its read-model item) unless the
// stored view already reflects version st.Version or a newer one. It returns
// true when it wrote, false (and no error) when a view at least as new is
// stored, so that replayed or reordered stream records never move a view
// back. It is one conditional PutItem. st must have an ID and a version
// (domain.KindInvalid otherwise); throttling and network failures are
// domain.KindUnavailable.
func (s *Store) Project(ctx context.Context, st domain.State) (bool, error) {
	if st.ID == "" || st.Version < 1 {
		return false, domain.Errorf(domain.KindInvalid, "project: state has no id or version")
	}
	writeMu.RLock()
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      viewItem(st),
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #seq < :seq"),
		ExpressionAttributeNames:  map[string]string{"#seq": attrSeq},
		ExpressionAttributeValues: map[string]types.AttributeValue{":seq": num(int64(st.Version))},
	})
	writeMu.RUnlock()
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, wrap(fmt.Sprintf("project %s v%d", st.ID, st.Version), err)
	}
	return true, nil
}

// View returns the transfer's read-model summary, read with eventual
// consistency: it may lag the events, or be missing for a transfer created a
// moment ago (then the error satisfies errors.Is(err, ErrNotFound)). For the
// authoritative state use Load. Throttling and network failures are
// domain.KindUnavailable.
func (s *Store) View(ctx context.Context, id string) (Summary, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table,
		Key: map[string]types.AttributeValue{
			attrPK: str(transferKey(id)),
			attrSK: str(viewSK),
		},
	})
	if err != nil {
		return Summary{}, wrap("view "+id, err)
	}
	if len(out.Item) == 0 {
		return Summary{}, fmt.Errorf("view %s: %w", id, ErrNotFound)
	}
	return summaryOf(out.Item)
}

// FindByRef returns the id of the transfer whose remote reference (State.Ref,
// e.g. a MESH message id) is ref, from the read model: a transfer is found
// once its view with that reference has been projected. It returns
// ErrNotFound when none has it. One Query on the byRef index.
func (s *Store) FindByRef(ctx context.Context, ref string) (string, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(byRef.name),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": byRef.pk},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(byRef.prefix + ref)},
		Limit:                     aws.Int32(1),
	})
	if err != nil {
		return "", wrap("find by ref "+ref, err)
	}
	if len(out.Items) == 0 {
		return "", fmt.Errorf("ref %s: %w", ref, ErrNotFound)
	}
	return recordOf(out.Items[0])[byRef.sk], nil // ref_sk holds the id
}
