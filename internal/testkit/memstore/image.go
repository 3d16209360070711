package memstore

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// NewImage returns the NEW_IMAGE that the table's stream carries for the
// item the store writes for event e, st being the state after e. It is the
// store's own encoding (store.EventImage), so an encoding change reaches the
// handlers' tests; the write id is a fixed one per version.
func NewImage(t testing.TB, e domain.Event, st domain.State) map[string]events.DynamoDBAttributeValue {
	t.Helper()
	img, err := store.EventImage(e, st, "01JNZ0WR1TE1D000000000000"+strconv.Itoa(e.Seq%10))
	if err != nil {
		t.Fatalf("stream image of %s v%d: %v", e.TransferID, e.Seq, err)
	}
	return img
}

// Insert returns the stream record of an INSERT with image img, as Lambda
// delivers it from a table whose stream view type is NEW_IMAGE.
func Insert(seqNo string, img map[string]events.DynamoDBAttributeValue) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{
		AWSRegion:      "eu-west-2",
		EventID:        "ev-" + seqNo,
		EventName:      string(events.DynamoDBOperationTypeInsert),
		EventSource:    "aws:dynamodb",
		EventVersion:   "1.1",
		EventSourceArn: "arn:aws:dynamodb:eu-west-2:123456789012:table/transfers/stream/2025-03-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)},
			Keys:                        map[string]events.DynamoDBAttributeValue{"pk": img["pk"], "sk": img["sk"]},
			NewImage:                    img,
			SequenceNumber:              seqNo,
			SizeBytes:                   512,
			StreamViewType:              "NEW_IMAGE",
		},
	}
}

// EventRecord returns the INSERT record of event e with state st after it.
func EventRecord(t testing.TB, seqNo string, e domain.Event, st domain.State) events.DynamoDBEventRecord {
	t.Helper()
	return Insert(seqNo, NewImage(t, e, st))
}
