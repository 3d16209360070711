package callrec_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/ferryhq/ferry/internal/local/callrec"
)

// The endpoint answers every request with an empty 200 (or a secret for
// GetSecretValue): these tests check the middleware, not AWS behaviour, so
// the calls' own results do not matter.
func endpoint(t *testing.T) aws.Config {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), "GetSecretValue") {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			_, _ = w.Write([]byte(`{"Name":"ferry/test/pw","SecretString":"hunter2-secret-value"}`))
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return aws.Config{
		Region:       "eu-west-2",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   srv.Client(),
	}
}

// readCalls returns the recording's raw text and its calls.
func readCalls(t *testing.T, dir string) (string, []callrec.Call) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "calls-*.jsonl"))
	if want := fmt.Sprintf("calls-%d.jsonl", os.Getpid()); len(files) != 1 || filepath.Base(files[0]) != want {
		t.Fatalf("recording files: got %v, want one %s", files, want)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var calls []callrec.Call
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var c callrec.Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		calls = append(calls, c)
	}
	return string(raw), calls
}

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rec, err := callrec.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := endpoint(t)
	advance := rec.Config(base, "advance", callrec.Handler)
	esm := rec.Config(base, "advance", callrec.EventSource)

	s3c := s3.NewFromConfig(advance, func(o *s3.Options) { o.UsePathStyle = true })
	for range 2 { // the same call twice is recorded once
		_, _ = s3c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("delivered"), Key: aws.String("out/a.dat"), UploadId: aws.String("u1")})
	}
	_, _ = s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("uploads"), Key: aws.String("outbound/b"), VersionId: aws.String("v123")})
	_, _ = dynamodb.NewFromConfig(advance).TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: aws.String("events"), Item: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "item-payload"}}}},
		{Update: &ddbtypes.Update{TableName: aws.String("events"), Key: map[string]ddbtypes.AttributeValue{}, UpdateExpression: aws.String("SET a = :a")}},
	}})
	_, _ = dynamodb.NewFromConfig(advance).BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{
		"events": {{DeleteRequest: &ddbtypes.DeleteRequest{Key: map[string]ddbtypes.AttributeValue{}}}},
	}})
	_, _ = secretsmanager.NewFromConfig(advance).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ferry/test/pw")})
	_, _ = sqs.NewFromConfig(esm).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("http://q/failures"), MessageBody: aws.String("body-payload")})
	if len(base.APIOptions) != 0 {
		t.Errorf("Config changed the base config's APIOptions: %d entries", len(base.APIOptions))
	}
	// A client of the base config records nothing.
	_, _ = s3.NewFromConfig(base, func(o *s3.Options) { o.UsePathStyle = true }).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("unrecorded")})
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}

	raw, got := readCalls(t, dir)
	want := []callrec.Call{
		{Function: "advance", Source: "handler", Service: "S3", Operation: "ListParts", Region: "eu-west-2",
			Resources: map[string][]string{"Bucket": {"delivered"}, "Key": {"out/a.dat"}}},
		{Function: "advance", Source: "handler", Service: "S3", Operation: "GetObject", Region: "eu-west-2",
			Resources: map[string][]string{"Bucket": {"uploads"}, "Key": {"outbound/b"}, "VersionId": {"set"}}},
		{Function: "advance", Source: "handler", Service: "DynamoDB", Operation: "TransactWriteItems", Region: "eu-west-2",
			Resources: map[string][]string{"TransactItems.Put.TableName": {"events"}, "TransactItems.Update.TableName": {"events"}}},
		{Function: "advance", Source: "handler", Service: "DynamoDB", Operation: "BatchWriteItem", Region: "eu-west-2",
			Resources: map[string][]string{"RequestItems.DeleteRequest.TableName": {"events"}}},
		{Function: "advance", Source: "handler", Service: "Secrets Manager", Operation: "GetSecretValue", Region: "eu-west-2",
			Resources: map[string][]string{"SecretId": {"ferry/test/pw"}}},
		{Function: "advance", Source: "event source", Service: "SQS", Operation: "SendMessage", Region: "eu-west-2",
			Resources: map[string][]string{"QueueUrl": {"http://q/failures"}}},
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("recorded calls:\ngot  %s\nwant %s", gj, wj)
	}

	for _, secret := range []string{"hunter2", "item-payload", "body-payload", "v123", `"u1"`} {
		if strings.Contains(raw, secret) {
			t.Errorf("the recording holds %q, a value or payload, not a resource name", secret)
		}
	}
}

func TestNilRecorder(t *testing.T) {
	rec, err := callrec.Open("")
	if err != nil || rec != nil {
		t.Fatalf("Open(\"\") = %v, %v; want nil, nil (recording off)", rec, err)
	}
	cfg := aws.Config{Region: "us-east-1"}
	if got := rec.Config(cfg, "advance", callrec.Handler); len(got.APIOptions) != 0 {
		t.Errorf("a nil Recorder added %d APIOptions", len(got.APIOptions))
	}
	if err := rec.Close(); err != nil {
		t.Errorf("Close of a nil Recorder: %v", err)
	}
}
