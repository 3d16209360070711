//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/local/esm"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

const mib = 1 << 20

func meta(sender string) map[string]string {
	return map[string]string{"sender": sender, "recipient": "partner-a", "subject": "weekly+report"}
}

// eventTypes lists the types of a transfer's events in order.
func eventTypes(evs []domain.Event) []domain.EventType {
	var out []domain.EventType
	for _, e := range evs {
		out = append(out, e.Type())
	}
	return out
}

func wantTypes(chunks int, last ...domain.EventType) []domain.EventType {
	out := []domain.EventType{domain.TypeRequested, domain.TypeStarted}
	for range chunks {
		out = append(out, domain.TypeChunkSent)
	}
	return append(out, last...)
}

func TestS3ToS3ThreeChunks(t *testing.T) {
	sender := uniq("org")
	key := "outbound/" + sender + "/report.csv"
	// A subscriber's own rule, as the README shows one: this sender's
	// deliveries, to a queue of the test's.
	sub := subscribe(t, map[string]any{"source": []string{"ferry"}, "detail-type": []string{"Transfer Delivered"},
		"detail": map[string]any{"sender": []string{sender}}})
	id, sum := stack.upload(t, key, 12*mib+12345, meta(sender))

	st := stack.waitFor(t, id, 60*time.Second, "delivered", delivered)

	t.Run("destination bytes equal the source's", func(t *testing.T) {
		if got, want := st.Location, "s3://ferry-local-delivered/partner-a/report.csv"; got != want {
			t.Fatalf("location = %q, want %q", got, want)
		}
		if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/report.csv"); got != sum {
			t.Fatalf("sha256 of delivered object = %s, want %s", got, sum)
		}
	})
	t.Run("events are Requested, Started, ChunkSent×3, Delivered in order", func(t *testing.T) {
		evs := stack.events(t, id)
		if got, want := eventTypes(evs), wantTypes(3, domain.TypeDelivered); !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		for i, e := range evs {
			if e.Seq != i+1 {
				t.Fatalf("event %d has seq %d", i, e.Seq)
			}
			if c, ok := e.Payload.(domain.ChunkSent); ok && c.Index != i-1 {
				t.Fatalf("event %d is chunk %d, want %d", i, c.Index, i-1)
			}
		}
		req := evs[0].Payload.(domain.Requested)
		if req.Sender != sender || req.Recipient != "partner-a" || req.Route != "to-partner-a" || req.Chunks != 3 {
			t.Fatalf("requested = %+v", req)
		}
		if req.Metadata["subject"] != "weekly report" {
			t.Fatalf("subject metadata = %q, want it URL-decoded", req.Metadata["subject"])
		}
	})
	t.Run("an EventBridge rule's SQS target receives Transfer Delivered matching the schema", func(t *testing.T) {
		detail := awaitEvent(t, sub, id, "Transfer Delivered", 30*time.Second)
		validateDetail(t, detail)
		var d schema.Detail
		if err := json.Unmarshal(detail, &d); err != nil {
			t.Fatal(err)
		}
		if d.EventID != id+"/6" || d.Status != "DELIVERED" || d.Chunks != 3 || d.ChunksSent != 3 || d.Location != st.Location {
			t.Fatalf("detail = %+v", d)
		}
	})
	t.Run("ferry show prints the timeline", func(t *testing.T) {
		out, code := stack.ferry(t, "show", id)
		if code != 0 || !strings.Contains(out, "status DELIVERED") || strings.Count(out, "ChunkSent") != 3 || !strings.Contains(out, "location=s3://ferry-local-delivered/partner-a/report.csv") {
			t.Fatalf("ferry show (exit %d):\n%s", code, out)
		}
	})
	t.Run("history finds it by sender and by status", func(t *testing.T) {
		waitHistory(t, store.Query{Sender: sender, Since: time.Now().Add(-time.Hour)}, id, domain.StatusDelivered)
		out, code := stack.ferry(t, "history", "--status", "delivered", "--since", "1h", "--json")
		if code != 0 || !strings.Contains(out, id) {
			t.Fatalf("ferry history --status delivered (exit %d) lacks %s:\n%s", code, id, out)
		}
	})
}

// waitHistory waits until the read model lists id with status want.
func waitHistory(t *testing.T, q store.Query, id string, want domain.Status) store.Summary {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := stack.store.History(context.Background(), q)
		if err != nil {
			t.Fatalf("history %+v: %v", q, err)
		}
		for _, s := range page.Items {
			if s.ID == id && s.Status == want {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("history %+v never listed %s as %s; got %+v", q, id, want, page.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// subscribe makes an EventBridge rule on ferry's bus with pattern, whose
// target is a new SQS queue of the test's, and returns the queue's URL.
// Both go when the test ends.
func subscribe(t *testing.T, pattern map[string]any) string {
	t.Helper()
	ctx := context.Background()
	name := uniq("sub")
	q, err := stack.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := stack.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(pattern)
	eb := eventbridge.NewFromConfig(stack.awsCfg)
	bus := stack.res.EventBus
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: &name, EventBusName: &bus, EventPattern: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: &name, EventBusName: &bus, Targets: []ebtypes.Target{{Id: aws.String("test"), Arn: &arn}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = eb.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: &name, EventBusName: &bus, Ids: []string{"test"}})
		_, _ = eb.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: &name, EventBusName: &bus})
		_, _ = stack.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	})
	return aws.ToString(q.QueueUrl)
}

// awaitEvent waits up to timeout for the event of transfer id with
// detailType on queue (see subscribe) and returns its detail.
func awaitEvent(t *testing.T, url, id, detailType string, timeout time.Duration) json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := stack.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var ev struct {
				Source     string          `json:"source"`
				DetailType string          `json:"detail-type"`
				Detail     json.RawMessage `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatalf("observer message is not an EventBridge event: %s", aws.ToString(m.Body))
			}
			var d schema.Detail
			_ = json.Unmarshal(ev.Detail, &d)
			if d.TransferID != id {
				t.Fatalf("the rule let through another transfer's event: %s", aws.ToString(m.Body))
			}
			_, _ = stack.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
			if ev.DetailType == detailType {
				if ev.Source != "ferry" {
					t.Fatalf("source = %q, want ferry", ev.Source)
				}
				return ev.Detail
			}
		}
	}
	t.Fatalf("no %q event for %s on %s within %s", detailType, id, url, timeout)
	return nil
}

func validateDetail(t *testing.T, detail []byte) {
	t.Helper()
	if err := schema.ValidateTransferEvent(detail); err != nil {
		t.Fatalf("detail does not match the schema: %v\n%s", err, detail)
	}
}

func TestDuplicateNotificationMakesOneTransfer(t *testing.T) {
	sender := uniq("dup")
	key := "outbound/" + sender + "/twice.bin"
	id, _ := stack.upload(t, key, 6*mib, meta(sender))
	stack.waitFor(t, id, 60*time.Second, "delivered", delivered)
	before := len(stack.events(t, id))

	// Deliver the same notification twice more, as S3 may.
	head, err := stack.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(stack.res.UploadBucket), Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	rec := events.S3EventRecord{EventVersion: "2.1", EventSource: "aws:s3", EventName: "ObjectCreated:Put", EventTime: time.Now().UTC()}
	rec.S3.Bucket.Name = stack.res.UploadBucket
	rec.S3.Object.Key = key
	rec.S3.Object.Size = 6 * mib
	rec.S3.Object.ETag = strings.Trim(aws.ToString(head.ETag), `"`)
	rec.S3.Object.VersionID = aws.ToString(head.VersionId)
	body, _ := json.Marshal(events.S3Event{Records: []events.S3EventRecord{rec}})
	url := stack.queueURL(t, stack.res.IntakeQueue)
	for range 2 {
		if _, err := stack.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(string(body))}); err != nil {
			t.Fatal(err)
		}
	}
	waitQueueEmpty(t, url)

	page, err := stack.store.History(context.Background(), store.Query{Sender: sender, Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != id {
		t.Fatalf("transfers from %s = %+v, want exactly %s", sender, page.Items, id)
	}
	if after := len(stack.events(t, id)); after != before {
		t.Fatalf("transfer has %d events after the duplicates, %d before", after, before)
	}
}

// waitQueueEmpty waits until a queue has no visible or in-flight messages.
func waitQueueEmpty(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := stack.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
		if err != nil {
			t.Fatal(err)
		}
		if out.Attributes["ApproximateNumberOfMessages"] == "0" && out.Attributes["ApproximateNumberOfMessagesNotVisible"] == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s not drained: %v", url, out.Attributes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestKilledMidTransferCompletes(t *testing.T) {
	sender := uniq("kill")
	key := "outbound/" + sender + "/big.bin"
	const chunks = 16
	id, sum := stack.upload(t, key, chunks*5*mib, meta(sender))

	stack.waitFor(t, id, 60*time.Second, "under way", func(st domain.State) bool { return st.ChunksSent >= 2 })
	stack.stopLocal(syscall.SIGKILL)
	mid, err := stack.store.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Status == domain.StatusDelivered {
		t.Fatalf("transfer finished before the kill; the test proves nothing (chunks sent %d)", mid.ChunksSent)
	}
	t.Logf("killed ferry local at v%d with %d/%d chunks sent", mid.Version, mid.ChunksSent, chunks)
	if _, err := stack.startLocal(); err != nil {
		t.Fatal(err)
	}

	st := stack.waitFor(t, id, 120*time.Second, "delivered", delivered)
	if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/big.bin"); got != sum {
		t.Fatalf("sha256 after restart = %s, want %s", got, sum)
	}
	evs := stack.events(t, id)
	if got, want := eventTypes(evs), wantTypes(chunks, domain.TypeDelivered); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v (no event may be duplicated)", got, want)
	}
	if st.Version != chunks+3 {
		t.Fatalf("version = %d, want %d", st.Version, chunks+3)
	}
}

func TestBadUploadsAreRecordedFailed(t *testing.T) {
	sender := uniq("bad")
	cases := []struct {
		name, key string
		meta      map[string]string
		reason    string
		code      string
	}{
		{"missing recipient", "outbound/" + sender + "/a.bin", map[string]string{"sender": sender}, "", ""},
		{"missing sender", "outbound/" + sender + "/b.bin", map[string]string{"recipient": "partner-a"}, "missing metadata: sender", "MISSING_METADATA"},
		{"invalid sender", "outbound/" + sender + "/c.bin", map[string]string{"sender": "bad sender!", "recipient": "partner-a"}, `metadata sender "bad sender!"`, "INVALID_METADATA"},
		{"no route", "outbound/" + sender + "/d.bin", map[string]string{"sender": sender, "recipient": "nobody"}, "no route matches", "NO_ROUTE"},
	}
	// Without a recipient no route matches either: the reason says so.
	cases[0].reason, cases[0].code = "no route matches", "NO_ROUTE"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, _ := stack.upload(t, c.key, 1000, c.meta)
			st := stack.waitFor(t, id, 30*time.Second, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
			f := st.LastFailure
			if f == nil || f.Retryable || f.Kind != domain.KindInvalid || !strings.Contains(f.Message, c.reason) || f.Code != c.code {
				t.Fatalf("failure = %+v, want not retryable, invalid, code %q, reason containing %q", f, c.code, c.reason)
			}
			if got := eventTypes(stack.events(t, id)); !slices.Equal(got, []domain.EventType{domain.TypeRequested, domain.TypeFailed}) {
				t.Fatalf("events = %v", got)
			}
			waitHistory(t, store.Query{Status: domain.StatusFailed, Since: time.Now().Add(-time.Hour)}, id, domain.StatusFailed)
			out, code := stack.ferry(t, "history", "--status", "FAILED", "--since", "1h")
			if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, c.reason) {
				t.Fatalf("ferry history --status FAILED (exit %d) lacks %s / %q:\n%s", code, id, c.reason, out)
			}
		})
	}
}

func TestPoisonRecordsGoToFailureQueues(t *testing.T) {
	ctx := context.Background()
	intakeURL := stack.queueURL(t, stack.res.IntakeQueue)
	dlqURL := stack.queueURL(t, stack.res.IntakeQueue+"-dlq")
	failuresURL := stack.queueURL(t, stack.res.StreamFailures)

	// A message that is not an S3 notification, and an event item nobody can decode.
	marker := uniq("poison")
	if _, err := stack.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &intakeURL, MessageBody: aws.String("this is not json " + marker)}); err != nil {
		t.Fatal(err)
	}
	if err := putRawEvent(ctx, "T#"+marker, "E#0000000001", "not a payload"); err != nil {
		t.Fatal(err)
	}
	// Meanwhile good work goes on.
	sender := uniq("good")
	id, sum := stack.upload(t, "outbound/"+sender+"/fine.bin", 7*mib, meta(sender))
	stack.waitFor(t, id, 60*time.Second, "delivered", delivered)
	if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/fine.bin"); got != sum {
		t.Fatalf("sha256 = %s, want %s", got, sum)
	}

	t.Run("the malformed SQS message reaches the intake dead-letter queue", func(t *testing.T) {
		waitMessage(t, dlqURL, marker, 90*time.Second)
	})
	t.Run("the undecodable stream record reaches the stream failure queue from both readers", func(t *testing.T) {
		// publish retries 10 times to advance's 3; the least-privilege
		// check relies on both having sent.
		seen := map[string]bool{}
		deadline := time.Now().Add(3 * time.Minute)
		for !(seen["advance"] && seen["publish"]) && time.Now().Before(deadline) {
			out, err := stack.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &failuresURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range out.Messages {
				var f esm.StreamFailure
				if json.Unmarshal([]byte(aws.ToString(m.Body)), &f) == nil && strings.Contains(aws.ToString(m.Body), marker) {
					seen[f.Mapping] = true
				}
			}
		}
		if !seen["advance"] || !seen["publish"] {
			t.Fatalf("stream failures about %s from %v, want from advance and publish", marker, seen)
		}
	})
}

// waitMessage waits until a queue holds a message whose body contains s.
func waitMessage(t *testing.T, url, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := stack.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			if strings.Contains(aws.ToString(m.Body), s) {
				return
			}
		}
	}
	t.Fatalf("no message containing %q on %s within %s", s, url, timeout)
}

// putRawEvent writes an event item directly, bypassing the store, to play a
// record no reader can decode.
func putRawEvent(ctx context.Context, pk, sk, data string) error {
	_, err := dynamodb.NewFromConfig(stack.awsCfg).PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(stack.res.Table),
		Item: map[string]ddbtypes.AttributeValue{
			"pk":   &ddbtypes.AttributeValueMemberS{Value: pk},
			"sk":   &ddbtypes.AttributeValueMemberS{Value: sk},
			"type": &ddbtypes.AttributeValueMemberS{Value: "Requested"},
			"data": &ddbtypes.AttributeValueMemberS{Value: data},
		},
	})
	return err
}
