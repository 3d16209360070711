package store

import (
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/ferryhq/ferry/domain"
)

// IsEventImage reports whether a stream image is of an event item (sort key
// "E#…"), as opposed to a view item or anything else. Handlers skip the
// records for which it is false.
func IsEventImage(img map[string]events.DynamoDBAttributeValue) bool {
	sk, ok := img[attrSK]
	return ok && sk.DataType() == events.DataTypeString && strings.HasPrefix(sk.String(), eventPrefix)
}

// DecodeImage decodes the NEW_IMAGE of an event item's stream record into
// the event and the snapshot of the transfer's state after it. It returns a
// domain.KindInvalid error for the image of anything but an event item (see
// IsEventImage) and for an event item it cannot decode (an unknown event
// type or payload version).
func DecodeImage(img map[string]events.DynamoDBAttributeValue) (domain.Event, domain.State, error) {
	if !IsEventImage(img) {
		return domain.Event{}, domain.State{}, domain.Errorf(domain.KindInvalid, "stream image is not of an event item")
	}
	r := make(record, len(img))
	for k, v := range img {
		switch v.DataType() {
		case events.DataTypeString:
			r[k] = v.String()
		case events.DataTypeNumber:
			r[k] = v.Number()
		}
	}
	e, err := decodeEvent(r)
	if err != nil {
		return domain.Event{}, domain.State{}, fmt.Errorf("stream image: %w", err)
	}
	st, err := decodeState(r)
	if err != nil {
		return domain.Event{}, domain.State{}, fmt.Errorf("stream image %s v%d: %w", e.TransferID, e.Seq, err)
	}
	return e, st, nil
}

// StreamImage converts an image read with the DynamoDB Streams API
// (GetRecords) into the attribute values of Lambda's DynamoDB event, so that
// a local stream reader can hand records to the same handlers Lambda does.
// Every attribute type is converted; unknown union members are dropped.
func StreamImage(m map[string]streamtypes.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if m == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		if av, ok := streamValue(v); ok {
			out[k] = av
		}
	}
	return out
}

func streamValue(v streamtypes.AttributeValue) (events.DynamoDBAttributeValue, bool) {
	switch v := v.(type) {
	case *streamtypes.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberNULL:
		return events.NewNullAttribute(), true
	case *streamtypes.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value), true
	case *streamtypes.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, 0, len(v.Value))
		for _, e := range v.Value {
			if av, ok := streamValue(e); ok {
				l = append(l, av)
			}
		}
		return events.NewListAttribute(l), true
	case *streamtypes.AttributeValueMemberM:
		return events.NewMapAttribute(StreamImage(v.Value)), true
	}
	return events.DynamoDBAttributeValue{}, false
}
