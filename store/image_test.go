package store

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/ferryhq/ferry/domain"
)

// TestAttributeValue was internal/local/esm's test of its own converter, which
// StreamImage's replaced: one converter, both packages' tests.
func TestAttributeValue(t *testing.T) {
	tests := []struct {
		name string
		in   streamtypes.AttributeValue
		want events.DynamoDBAttributeValue
	}{
		{"string", &streamtypes.AttributeValueMemberS{Value: "x"}, events.NewStringAttribute("x")},
		{"number", &streamtypes.AttributeValueMemberN{Value: "12.5"}, events.NewNumberAttribute("12.5")},
		{"binary", &streamtypes.AttributeValueMemberB{Value: []byte{1, 2}}, events.NewBinaryAttribute([]byte{1, 2})},
		{"bool", &streamtypes.AttributeValueMemberBOOL{Value: true}, events.NewBooleanAttribute(true)},
		{"null", &streamtypes.AttributeValueMemberNULL{Value: true}, events.NewNullAttribute()},
		{"nil", nil, events.NewNullAttribute()},
		{"string set", &streamtypes.AttributeValueMemberSS{Value: []string{"a", "b"}}, events.NewStringSetAttribute([]string{"a", "b"})},
		{"number set", &streamtypes.AttributeValueMemberNS{Value: []string{"1", "2"}}, events.NewNumberSetAttribute([]string{"1", "2"})},
		{"binary set", &streamtypes.AttributeValueMemberBS{Value: [][]byte{{1}, {2}}}, events.NewBinarySetAttribute([][]byte{{1}, {2}})},
		{
			"nested list and map",
			&streamtypes.AttributeValueMemberL{Value: []streamtypes.AttributeValue{
				&streamtypes.AttributeValueMemberS{Value: "a"},
				&streamtypes.AttributeValueMemberM{Value: map[string]streamtypes.AttributeValue{
					"n": &streamtypes.AttributeValueMemberN{Value: "1"},
				}},
			}},
			events.NewListAttribute([]events.DynamoDBAttributeValue{
				events.NewStringAttribute("a"),
				events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"n": events.NewNumberAttribute("1")}),
			}),
		},
		{"empty map", &streamtypes.AttributeValueMemberM{}, events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Compare the JSON Lambda would see: DynamoDBAttributeValue
			// has unexported fields.
			got, want := mustJSON(t, AttributeValue(tt.in)), mustJSON(t, tt.want)
			if got != want {
				t.Errorf("AttributeValue = %s, want %s", got, want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStreamImageKeepsEveryAttribute(t *testing.T) {
	in := map[string]streamtypes.AttributeValue{
		"nil":   nil,
		"empty": &streamtypes.AttributeValueMemberM{},
	}
	got := mustJSON(t, StreamImage(in))
	if want := `{"empty":{"M":{}},"nil":{"NULL":true}}`; got != want {
		t.Errorf("StreamImage = %s, want %s", got, want)
	}
	if StreamImage(nil) != nil {
		t.Error("StreamImage(nil) is not nil")
	}
}

func TestEventImage(t *testing.T) {
	st, evs := testState(t)
	img, err := EventImage(evs[1], st, "w1")
	if err != nil {
		t.Fatal(err)
	}
	item, err := eventItem(evs[1], st, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustJSON(t, img), mustJSON(t, image(t, item)); got != want {
		t.Errorf("EventImage = %s\nwant the image of the appended item %s", got, want)
	}
	e, got, err := DecodeImage(img)
	if err != nil || !reflect.DeepEqual(e, evs[1]) || !reflect.DeepEqual(got, st) {
		t.Errorf("DecodeImage(EventImage) = %+v, %+v, %v; want %+v, %+v", e, got, err, evs[1], st)
	}
	if img["wid"].String() != "w1" {
		t.Errorf("wid = %v, want w1", img["wid"])
	}
	if img, err := EventImage(evs[1], st, ""); err != nil || len(img) != len(item)-1 {
		t.Errorf("without a write id: %v, %d attributes, want %d", err, len(img), len(item)-1)
	} else if _, ok := img["wid"]; ok {
		t.Error("without a write id: the image has a wid")
	}
	t.Run("the store writes strings and numbers only", func(t *testing.T) {
		item[attrData] = &types.AttributeValueMemberBOOL{Value: true}
		if _, err := itemImage(item); domain.KindOf(err) != domain.KindInternal {
			t.Errorf("err = %v, want kind internal", err)
		}
	})
}
