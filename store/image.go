package store

import (
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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

// StreamImage converts an image (or keys) read with the DynamoDB Streams
// API (GetRecords) into the attribute values of Lambda's DynamoDB event, so
// that a local stream reader can hand records to the same handlers Lambda
// does. Every attribute is converted by AttributeValue. A nil map stays nil.
// It is the one converter from the Streams API's attribute values: the local
// event source mapping (internal/local/esm) uses it too.
func StreamImage(m map[string]streamtypes.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if m == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		out[k] = AttributeValue(v)
	}
	return out
}

// AttributeValue converts one DynamoDB Streams attribute value to the Lambda
// event form, recursively for lists and maps (an empty map stays an empty
// map). A nil value or an unknown union member becomes NULL, so that no
// attribute goes missing.
func AttributeValue(v streamtypes.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *streamtypes.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *streamtypes.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *streamtypes.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *streamtypes.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *streamtypes.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *streamtypes.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			l[i] = AttributeValue(e)
		}
		return events.NewListAttribute(l)
	case *streamtypes.AttributeValueMemberM:
		m := StreamImage(v.Value)
		if m == nil {
			m = map[string]events.DynamoDBAttributeValue{}
		}
		return events.NewMapAttribute(m)
	default: // *AttributeValueMemberNULL, nil, unknown union members
		return events.NewNullAttribute()
	}
}

// EventImage returns the NEW_IMAGE that the table's stream carries for the
// item Append writes for event e, st being the state after e and writeID the
// Append call's write id (the "wid" attribute; "" leaves it out). It is the
// store's own item encoding, for tests that build stream records for the
// handlers: DecodeImage reverses it. The error is domain.KindInvalid when e's
// payload or st cannot be encoded.
func EventImage(e domain.Event, st domain.State, writeID string) (map[string]events.DynamoDBAttributeValue, error) {
	item, err := eventItem(e, st, writeID)
	if err != nil {
		return nil, err
	}
	return itemImage(item)
}

// itemImage returns the stream image of an item the store writes, as
// DynamoDB Streams carries it and StreamImage converts it. The store writes
// strings and numbers only; any other attribute is a domain.KindInternal
// error.
func itemImage(item map[string]types.AttributeValue) (map[string]events.DynamoDBAttributeValue, error) {
	m := make(map[string]streamtypes.AttributeValue, len(item))
	for k, v := range item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			m[k] = &streamtypes.AttributeValueMemberS{Value: v.Value}
		case *types.AttributeValueMemberN:
			m[k] = &streamtypes.AttributeValueMemberN{Value: v.Value}
		default:
			return nil, domain.Errorf(domain.KindInternal, "stream image: attribute %s is a %T", k, v)
		}
	}
	return StreamImage(m), nil
}
