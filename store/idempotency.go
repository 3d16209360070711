package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
)

// IdempotencyTTL is how long an idempotency key keeps naming its transfer.
const IdempotencyTTL = 24 * time.Hour

// attrExpires is the table's time-to-live attribute (epoch seconds): only
// idempotency items carry it; events never expire.
const attrExpires = "expires"

// ClaimIdempotencyKey makes key, within scope (the caller's party), name
// transfer id unless it already names another: it returns the transfer the
// key names, id if the claim is new. A key expires IdempotencyTTL after its
// claim. It is one conditional PutItem (and a read when the key is taken).
func (s *Store) ClaimIdempotencyKey(ctx context.Context, scope, key, id string, now time.Time) (string, error) {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	pk := str("IDEM#" + hex.EncodeToString(sum[:]))
	item := map[string]types.AttributeValue{
		attrPK:      pk,
		attrSK:      str("IDEM"),
		attrID:      str(id),
		attrCreated: str(formatTime(now)),
		attrExpires: num(now.Add(IdempotencyTTL).Unix()),
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table,
		Item:      item,
		// An expired claim the table has not deleted yet is free again.
		ConditionExpression:                 aws.String("attribute_not_exists(pk) OR #exp < :now"),
		ExpressionAttributeNames:            map[string]string{"#exp": attrExpires},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(now.Unix())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return id, nil
	case errors.As(err, &ccf):
		if held := recordOf(ccf.Item)[attrID]; held != "" {
			return held, nil
		}
		out, gerr := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: &s.table, Key: map[string]types.AttributeValue{attrPK: pk, attrSK: str("IDEM")}, ConsistentRead: aws.Bool(true),
		})
		if gerr != nil {
			return "", wrap("read idempotency key", gerr)
		}
		if held := recordOf(out.Item)[attrID]; held != "" {
			return held, nil
		}
		return "", domain.Errorf(domain.KindConflict, "idempotency key: claimed and released meanwhile; try again")
	default:
		return "", wrap("claim idempotency key", err)
	}
}
