package memstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// NewImage returns the NEW_IMAGE that the table's stream carries for the
// item the store writes for event e, st being the state after e. It is built
// by hand from the attribute names of store/item.go (eventItem), which the
// store does not export; this package's tests and the handlers' golden
// stream events keep the two in step.
func NewImage(t testing.TB, e domain.Event, st domain.State) map[string]events.DynamoDBAttributeValue {
	t.Helper()
	data, err := domain.MarshalPayload(e.Payload)
	if err != nil {
		t.Fatalf("payload of %s v%d: %v", e.TransferID, e.Seq, err)
	}
	snap, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("state of %s v%d: %v", e.TransferID, e.Seq, err)
	}
	return map[string]events.DynamoDBAttributeValue{
		"pk":    events.NewStringAttribute("T#" + e.TransferID),
		"sk":    events.NewStringAttribute(fmt.Sprintf("E#%010d", e.Seq)),
		"tid":   events.NewStringAttribute(e.TransferID),
		"seq":   events.NewNumberAttribute(strconv.Itoa(e.Seq)),
		"type":  events.NewStringAttribute(string(e.Type())),
		"at":    events.NewStringAttribute(e.At.UTC().Format(store.TimeLayout)),
		"data":  events.NewStringAttribute(string(data)),
		"state": events.NewStringAttribute(string(snap)),
		"wid":   events.NewStringAttribute("01JNZ0WR1TE1D000000000000" + strconv.Itoa(e.Seq%10)),
	}
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
