package esm

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStreamRecord(t *testing.T) {
	created := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	in := streamtypes.Record{
		AwsRegion:    aws.String("eu-west-2"),
		EventID:      aws.String("e1"),
		EventName:    streamtypes.OperationTypeInsert,
		EventSource:  aws.String("aws:dynamodb"),
		EventVersion: aws.String("1.1"),
		Dynamodb: &streamtypes.StreamRecord{
			ApproximateCreationDateTime: &created,
			Keys: map[string]streamtypes.AttributeValue{
				"pk": &streamtypes.AttributeValueMemberS{Value: "T#1"},
				"sk": &streamtypes.AttributeValueMemberN{Value: "3"},
			},
			NewImage: map[string]streamtypes.AttributeValue{
				"pk":   &streamtypes.AttributeValueMemberS{Value: "T#1"},
				"sk":   &streamtypes.AttributeValueMemberN{Value: "3"},
				"type": &streamtypes.AttributeValueMemberS{Value: "ChunkSent"},
			},
			SequenceNumber: aws.String("4200000000000000000001"),
			SizeBytes:      aws.Int64(77),
			StreamViewType: streamtypes.StreamViewTypeNewImage,
		},
	}
	const arn = "arn:aws:dynamodb:eu-west-2:123456789012:table/t/stream/2025-03-04T05:06:07.000"
	got := StreamRecord(in, arn, "eu-west-2")

	// Round-trip through JSON, as the Lambda runtime would deliver it.
	var decoded events.DynamoDBEventRecord
	if err := json.Unmarshal([]byte(mustJSON(t, got)), &decoded); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"eventID", decoded.EventID, "e1"},
		{"eventName", decoded.EventName, "INSERT"},
		{"eventSource", decoded.EventSource, "aws:dynamodb"},
		{"eventVersion", decoded.EventVersion, "1.1"},
		{"eventSourceARN", decoded.EventSourceArn, arn},
		{"awsRegion", decoded.AWSRegion, "eu-west-2"},
		{"SequenceNumber", decoded.Change.SequenceNumber, "4200000000000000000001"},
		{"SizeBytes", decoded.Change.SizeBytes, int64(77)},
		{"StreamViewType", decoded.Change.StreamViewType, "NEW_IMAGE"},
		{"ApproximateCreationDateTime", decoded.Change.ApproximateCreationDateTime.Unix(), created.Unix()},
		{"Keys.pk", decoded.Change.Keys["pk"].String(), "T#1"},
		{"Keys.sk", decoded.Change.Keys["sk"].Number(), "3"},
		{"NewImage.type", decoded.Change.NewImage["type"].String(), "ChunkSent"},
		{"OldImage", len(decoded.Change.OldImage), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	t.Run("region falls back to the record's", func(t *testing.T) {
		if got := StreamRecord(in, arn, "").AWSRegion; got != "eu-west-2" {
			t.Errorf("AWSRegion = %q, want eu-west-2", got)
		}
	})
	t.Run("record without change data", func(t *testing.T) {
		got := StreamRecord(streamtypes.Record{EventID: aws.String("e2")}, arn, "us-east-1")
		if got.EventID != "e2" || got.Change.Keys != nil {
			t.Errorf("got %+v", got)
		}
	})
}

func TestSQSMessage(t *testing.T) {
	in := sqstypes.Message{
		MessageId:              aws.String("m1"),
		ReceiptHandle:          aws.String("rh"),
		Body:                   aws.String(`{"x":1}`),
		MD5OfBody:              aws.String("md5"),
		MD5OfMessageAttributes: aws.String("md5a"),
		Attributes:             map[string]string{"ApproximateReceiveCount": "2"},
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("retry")},
		},
	}
	got := sqsMessage(in, "arn:aws:sqs:us-east-1:000000000000:q", "us-east-1")
	want := events.SQSMessage{
		MessageId:              "m1",
		ReceiptHandle:          "rh",
		Body:                   `{"x":1}`,
		Md5OfBody:              "md5",
		Md5OfMessageAttributes: "md5a",
		Attributes:             map[string]string{"ApproximateReceiveCount": "2"},
		MessageAttributes: map[string]events.SQSMessageAttribute{
			"kind": {DataType: "String", StringValue: aws.String("retry")},
		},
		EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:q",
		EventSource:    "aws:sqs",
		AWSRegion:      "us-east-1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sqsMessage =\n%+v\nwant\n%+v", got, want)
	}
}
