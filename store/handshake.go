package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Keys of the item recording a MESH mailbox's last handshake. Its sort key
// does not start with "E#", so stream readers never take it for an event
// (IsEventImage is false), and it has no index keys, so no history query
// returns it.
const (
	handshakePrefix = "mesh-handshake#"
	handshakeSK     = "HANDSHAKE"
)

func handshakeKey(mailbox string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(handshakePrefix + mailbox), attrSK: str(handshakeSK)}
}

// ClaimHandshake claims the day's handshake of a MESH mailbox, shared by
// every process on the table, with one conditional PutItem: it writes the
// item "mesh-handshake#<mailbox>" / "HANDSHAKE" with at = now when the item
// is absent or its at is older than now - every. claimed is true when the
// write succeeded (the caller must handshake); otherwise last is the time
// of the claim that stands. It implements mesh.HandshakeRecord. Errors are
// domain.KindUnavailable on throttling or network failure.
func (s *Store) ClaimHandshake(ctx context.Context, mailbox string, now time.Time, every time.Duration) (last time.Time, claimed bool, err error) {
	item := handshakeKey(mailbox)
	item[attrAt] = str(formatTime(now))
	writeMu.RLock()
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           &s.table,
		Item:                                item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk) OR #at < :cutoff"),
		ExpressionAttributeNames:            map[string]string{"#at": attrAt},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":cutoff": str(formatTime(now.Add(-every)))},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	writeMu.RUnlock()
	if err == nil {
		return now, true, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return time.Time{}, false, wrap("claim handshake of "+mailbox, err)
	}
	at, terr := recordOf(ccf.Item).time(attrAt)
	if terr != nil || at.IsZero() {
		// Claimed, but when is unreadable (or moto returned no item):
		// count it as claimed now, which errs on the side of fewer
		// handshakes.
		at = now
	}
	return at, false, nil
}

// ReleaseHandshake deletes the mailbox's handshake claim if it is still the
// one made at claimedAt, so that the next ClaimHandshake succeeds: for a
// claim whose handshake failed. A later claim is left alone and is no
// error. It implements mesh.HandshakeRecord.
func (s *Store) ReleaseHandshake(ctx context.Context, mailbox string, claimedAt time.Time) error {
	writeMu.RLock()
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &s.table,
		Key:                       handshakeKey(mailbox),
		ConditionExpression:       aws.String("#at = :at"),
		ExpressionAttributeNames:  map[string]string{"#at": attrAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": str(formatTime(claimedAt))},
	})
	writeMu.RUnlock()
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return wrap(fmt.Sprintf("release handshake of %s", mailbox), err)
	}
	return nil
}
