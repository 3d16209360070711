package resources

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ferryhq/ferry/internal/local/cfn"
)

// TestTemplate reads the real, embedded infra/template.yaml and checks what
// the local runtime takes from it.
func TestTemplate(t *testing.T) {
	d, err := Template("eu-west-2")
	if err != nil {
		t.Fatalf("Template: %v", err)
	}
	t.Run("names by role", func(t *testing.T) {
		want := Resources{
			Table:            "ferry-transfers",
			ConnectionsTable: "ferry-connections",
			UploadBucket:     "ferry-local",
			UploadPrefixes:   []string{"outbound/"},
			MESHBucket:       "ferry-local-mesh",
			MESHPrefixes:     []string{"outbound/"},
			DeliveryBucket:   "ferry-local-delivered",
			IntakeQueue:      "ferry-intake",
			RetryQueue:       "ferry-retry",
			StreamFailures:   "ferry-stream-failures",
			ObserverQueue:    "ferry-observer",
			EventBus:         "ferry",
			EventSource:      "ferry",
			MaxReceives:      3,
		}
		if got := d.Resources(); !reflect.DeepEqual(got, want) {
			t.Errorf("Resources() =\n%+v, want\n%+v", got, want)
		}
		if got := Defaults(); !reflect.DeepEqual(got, want) {
			t.Errorf("Defaults() =\n%+v, want\n%+v", got, want)
		}
	})
	t.Run("http api", func(t *testing.T) {
		want := []HTTPAPI{{ID: "Api", IdentityHeaders: []string{"Authorization"}, AuthorizerTTL: 5 * time.Minute,
			// ConsoleOrigin of infra/local/stack.json: ferry local's console
			CORS: &CORS{
				AllowOrigins: []string{"http://127.0.0.1:4574"}, AllowHeaders: []string{"authorization", "content-type", "idempotency-key"},
				AllowMethods: []string{"GET", "POST", "DELETE"}, MaxAge: 10 * time.Minute,
			}}}
		if !reflect.DeepEqual(d.HTTPAPIs, want) {
			t.Errorf("HTTPAPIs = %+v, want %+v", d.HTTPAPIs, want)
		}
		ws := []WebSocketAPI{{ID: "LiveApi", APIID: "liveapi", Stage: "live", Routes: []string{"$connect", "$disconnect", "subscribe", "unsubscribe", "$default"},
			Handler: "live", Authorizer: "authorizer", IdentityQuery: "token",
			ConnectARN: "arn:aws:execute-api:eu-west-2:123456789012:liveapi/live/$connect"}}
		if !reflect.DeepEqual(d.WebSocketAPIs, ws) {
			t.Errorf("WebSocketAPIs = %+v, want %+v", d.WebSocketAPIs, ws)
		}
	})
	t.Run("rules", func(t *testing.T) {
		want := []Rule{{ID: "NotifyRule", Name: "ferry-notify", Bus: "ferry", Pattern: `{"detail":{"transferId":[{"exists":true}]},"source":["ferry"]}`, Enabled: true, Queues: []string{"ferry-notify"}}}
		if !reflect.DeepEqual(d.Rules, want) {
			t.Errorf("Rules = %+v, want %+v", d.Rules, want)
		}
	})
	t.Run("table", func(t *testing.T) {
		in := d.Table.Input
		if aws.ToString(in.TableName) != "ferry-transfers" || in.StreamSpecification == nil || in.StreamSpecification.StreamViewType != "NEW_IMAGE" {
			t.Errorf("table %s, stream %+v; want ferry-transfers with a NEW_IMAGE stream", aws.ToString(in.TableName), in.StreamSpecification)
		}
		if len(in.KeySchema) != 2 || aws.ToString(in.KeySchema[0].AttributeName) != "pk" || in.KeySchema[0].KeyType != "HASH" || aws.ToString(in.KeySchema[1].AttributeName) != "sk" {
			t.Errorf("key schema %+v, want pk HASH, sk RANGE", in.KeySchema)
		}
		if len(in.AttributeDefinitions) != 12 {
			t.Errorf("%d attribute definitions, want 12", len(in.AttributeDefinitions))
		}
		projections := map[string]string{}
		for _, g := range in.GlobalSecondaryIndexes {
			projections[aws.ToString(g.IndexName)] = string(g.Projection.ProjectionType)
			if len(g.KeySchema) != 2 {
				t.Errorf("index %s has key schema %+v", aws.ToString(g.IndexName), g.KeySchema)
			}
		}
		want := map[string]string{"byStatus": "ALL", "bySender": "ALL", "byRecipient": "ALL", "byRoute": "ALL", "byRef": "KEYS_ONLY"}
		if !reflect.DeepEqual(projections, want) {
			t.Errorf("indexes %v, want %v", projections, want)
		}
	})
	t.Run("queues", func(t *testing.T) {
		want := map[string]Queue{
			"ferry-intake-dlq":      {ID: "IntakeDLQ", Name: "ferry-intake-dlq", Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}},
			"ferry-retry-dlq":       {ID: "RetryDLQ", Name: "ferry-retry-dlq", Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}},
			"ferry-email-dlq":       {ID: "EmailDLQ", Name: "ferry-email-dlq", Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}},
			"ferry-stream-failures": {ID: "StreamFailures", Name: "ferry-stream-failures", Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}},
			"ferry-intake":          {ID: "IntakeQueue", Name: "ferry-intake", Attributes: map[string]string{"VisibilityTimeout": "360", "MessageRetentionPeriod": "1209600"}, DeadLetter: "ferry-intake-dlq", MaxReceiveCount: 3},
			"ferry-retry":           {ID: "RetryQueue", Name: "ferry-retry", Attributes: map[string]string{"VisibilityTimeout": "360", "MessageRetentionPeriod": "1209600"}, DeadLetter: "ferry-retry-dlq", MaxReceiveCount: 3},
			"ferry-notify-dlq":      {ID: "NotifyDLQ", Name: "ferry-notify-dlq", Attributes: map[string]string{"MessageRetentionPeriod": "1209600"}},
			"ferry-notify":          {ID: "NotifyQueue", Name: "ferry-notify", Attributes: map[string]string{"VisibilityTimeout": "180", "MessageRetentionPeriod": "3600"}, DeadLetter: "ferry-notify-dlq", MaxReceiveCount: 5},
		}
		if len(d.Queues) != len(want) {
			t.Errorf("%d queues, want %d", len(d.Queues), len(want))
		}
		made := map[string]bool{}
		for _, q := range d.Queues {
			if !reflect.DeepEqual(q, want[q.Name]) {
				t.Errorf("queue %+v, want %+v", q, want[q.Name])
			}
			if q.DeadLetter != "" && !made[q.DeadLetter] {
				t.Errorf("queue %s comes before its dead-letter queue %s", q.Name, q.DeadLetter)
			}
			made[q.Name] = true
		}
	})
	t.Run("buckets", func(t *testing.T) {
		intake := []Notification{{Event: "s3:ObjectCreated:*", Prefix: "outbound/", Queue: "ferry-intake"}}
		want := []Bucket{
			{ID: "UploadBucket", Name: "ferry-local", Versioning: true, Notifications: intake},
			{ID: "MeshBucket", Name: "ferry-local-mesh", Versioning: true, Notifications: intake},
			{ID: "DeliveryBucketName", Name: "ferry-local-delivered", Versioning: true, External: true},
		}
		if !reflect.DeepEqual(d.Buckets, want) {
			t.Errorf("buckets\n%+v, want\n%+v", d.Buckets, want)
		}
	})
	t.Run("receipt rules", func(t *testing.T) {
		want := []ReceiptRule{{ID: "EmailRule", Recipients: []string{"ferry.test"}, TLSRequired: true, ScanEnabled: true, Bucket: "ferry-local", Prefix: "email/",
			Handler: "email", FunctionARN: "arn:aws:lambda:eu-west-2:123456789012:function:ferry-EmailFunction"}}
		if !reflect.DeepEqual(d.ReceiptRules, want) {
			t.Errorf("receipt rules\n%+v, want\n%+v", d.ReceiptRules, want)
		}
	})
	t.Run("bus", func(t *testing.T) {
		if d.Bus != "ferry" {
			t.Errorf("bus %q, want ferry", d.Bus)
		}
	})
	t.Run("event sources", func(t *testing.T) {
		filter := []string{`{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": [{"prefix": "E#"}]}}}}`}
		stream := func(retries, factor int) []StreamSource {
			return []StreamSource{{Event: "Stream", Table: "ferry-transfers", StartingPosition: "TRIM_HORIZON", BatchSize: 100,
				MaxRetries: retries, BisectOnError: true, ParallelizationFactor: factor, ReportBatchItemFailures: true,
				OnFailure: "ferry-stream-failures", Filters: filter}}
		}
		want := map[string]Function{
			"intake":   {ID: "IntakeFunction", Handler: "intake", Queues: []QueueSource{{Event: "Uploads", Queue: "ferry-intake", BatchSize: 10, ReportBatchItemFailures: true}}},
			"advance":  {ID: "AdvanceFunction", Handler: "advance", Streams: stream(3, 4)},
			"publish":  {ID: "PublishFunction", Handler: "publish", Streams: stream(10, 1)},
			"meshpoll": {ID: "MeshPollFunction", Handler: "meshpoll", Schedules: []string{"Poll"}},
			"retry":    {ID: "RetryFunction", Handler: "retry", Queues: []QueueSource{{Event: "Retries", Queue: "ferry-retry", BatchSize: 10, ReportBatchItemFailures: true}}},
			"notify":   {ID: "NotifyFunction", Handler: "notify", Queues: []QueueSource{{Event: "Events", Queue: "ferry-notify", BatchSize: 10, ReportBatchItemFailures: true}}},
			"live":     {ID: "LiveFunction", Handler: "live"},
		}
		for h, w := range want {
			got, ok := d.Function(h)
			if !ok || !reflect.DeepEqual(got, w) {
				t.Errorf("function %s =\n%+v, want\n%+v", h, got, w)
			}
		}
	})
}

var testStack = cfn.Stack{Name: "s", Region: "us-east-1", AccountID: "1", Parameters: map[string]string{"Env": "dev"}}

// minimal is a template with one of each resource the local runtime reads,
// and resources and properties it must ignore even though they hold
// intrinsics it cannot resolve.
const minimal = `
Parameters:
  Env: {Type: String}
  OutBucketName: {Type: String, Default: out}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-t"
      SSESpecification: {KMSMasterKeyId: !ImportValue shared-key}
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: !If [IsProd, NEW_AND_OLD_IMAGES, NEW_IMAGE]}
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      KmsMasterKeyId: !If [IsProd, !ImportValue prod-key, !Ref AWS::NoValue]
  ProdQ:
    Type: AWS::SQS::Queue
    Condition: IsProd
  In:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-in"
      NotificationConfiguration:
        QueueConfigurations:
          - {Event: "s3:ObjectCreated:*", Queue: !GetAtt Q.Arn, Filter: {S3Key: {Rules: [{Name: prefix, Value: a/}, {Name: suffix, Value: .csv}]}}}
  Bus: {Type: AWS::Events::EventBus, Properties: {Name: !Ref AWS::StackName}}
  Everything:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !GetAtt Bus.Arn
      EventPattern: {source: [ferry]}
      Targets: [{Id: q, Arn: !GetAtt Q.Arn}, {Id: topic, Arn: !ImportValue topic-arn}]
  Alarm: {Type: AWS::CloudWatch::Alarm, Properties: {AlarmActions: [!ImportValue ops]}}
  Key: {Type: AWS::KMS::Key, Properties: {KeyPolicy: !FindInMap [A, B, C]}}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Handler: h
      Policies: [!ImportValue policy]
      Events:
        S: {Type: DynamoDB, Properties: {Stream: !GetAtt T.StreamArn, StartingPosition: LATEST}}
        M: {Type: SQS, Properties: {Queue: !GetAtt Q.Arn}}
        A: {Type: Api, Properties: {Path: !ImportValue path}}
`

func TestFromTemplate(t *testing.T) {
	t.Run("reads what it needs and ignores the rest", func(t *testing.T) {
		d, err := FromTemplate([]byte(minimal), testStack)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(d.Table.Input.TableName) != "s-t" || d.Table.Input.StreamSpecification.StreamViewType != "NEW_IMAGE" {
			t.Errorf("table %+v", d.Table.Input)
		}
		if want := []Queue{{ID: "Q", Name: "s-Q", Attributes: map[string]string{"VisibilityTimeout": "60"}}}; !reflect.DeepEqual(d.Queues, want) {
			t.Errorf("queues %+v, want %+v (ProdQ's condition is false)", d.Queues, want)
		}
		wantBuckets := []Bucket{
			{ID: "In", Name: "s-in", Notifications: []Notification{{Event: "s3:ObjectCreated:*", Prefix: "a/", Suffix: ".csv", Queue: "s-Q"}}},
			{ID: "OutBucketName", Name: "out", Versioning: true, External: true},
		}
		if !reflect.DeepEqual(d.Buckets, wantBuckets) {
			t.Errorf("buckets %+v, want %+v", d.Buckets, wantBuckets)
		}
		wantRules := []Rule{{ID: "Everything", Name: "s-Everything", Bus: "s", Pattern: `{"source":["ferry"]}`, Enabled: true, Queues: []string{"s-Q"}}}
		if d.Bus != "s" || !reflect.DeepEqual(d.Rules, wantRules) {
			t.Errorf("bus %q, rules %+v; want s, %+v", d.Bus, d.Rules, wantRules)
		}
		wantF := Function{ID: "F", Handler: "h",
			Streams: []StreamSource{{Event: "S", Table: "s-t", StartingPosition: "LATEST", BatchSize: 100, MaxRetries: RetryForever, ParallelizationFactor: 1}},
			Queues:  []QueueSource{{Event: "M", Queue: "s-Q", BatchSize: 10}},
		}
		if f, _ := d.Function("h"); !reflect.DeepEqual(f, wantF) {
			t.Errorf("function\n%+v, want\n%+v (Lambda's defaults)", f, wantF)
		}
	})

	errs := []struct {
		name, from, to string
		want           []string
	}{
		{"unresolvable property it reads", "VisibilityTimeout: 60", "VisibilityTimeout: !ImportValue timeout",
			[]string{"resource Q", "Properties.VisibilityTimeout", "Fn::ImportValue"}},
		{"queue of an event not in the template", "Queue: !GetAtt Q.Arn}}", "Queue: arn:aws:sqs:us-east-1:1:elsewhere}}",
			[]string{"resource F", "Properties.Events.M.Properties.Queue", "not the ARN of a queue of the template"}},
		{"stream of another table", "Stream: !GetAtt T.StreamArn", "Stream: arn:aws:dynamodb:us-east-1:1:table/other/stream/x",
			[]string{"resource F", "Events.S.Properties.Stream", "not the stream of the template's table"}},
		{"bad starting position", "StartingPosition: LATEST", "StartingPosition: AT_TIMESTAMP",
			[]string{"StartingPosition", "AT_TIMESTAMP"}},
		{"Ref of a resource whose condition is false", "Queue: !GetAtt Q.Arn}}", "Queue: !GetAtt ProdQ.Arn}}",
			[]string{"Fn::GetAtt", "ProdQ is not created"}},
		{"notification filter it does not know", "{Name: suffix, Value: .csv}", "{Name: infix, Value: x}",
			[]string{"resource In", "neither prefix nor suffix"}},
		{"a parameter without a value", "Env: {Type: String}", "Env: {Type: String}\n  Needed: {Type: String}",
			nil}, // unused: no error
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(minimal, tt.from) {
				t.Fatalf("the template has no %q", tt.from)
			}
			_, err := FromTemplate([]byte(strings.Replace(minimal, tt.from, tt.to, 1)), testStack)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("FromTemplate: %v", err)
				}
				return
			}
			var ce *cfn.Error
			if !errors.As(err, &ce) {
				t.Fatalf("FromTemplate error %v, want a *cfn.Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("two tables with streams", func(t *testing.T) {
		second := "  T2:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n      KeySchema: [{AttributeName: id, KeyType: HASH}]\n"
		d, err := FromTemplate([]byte(strings.Replace(minimal, "  Q:\n", second+"  Q:\n", 1)), testStack)
		if err != nil || d.Table.ID != "T" || len(d.Tables) != 1 || d.Tables[0].ID != "T2" {
			t.Errorf("a second table without a stream: %v, event table %s, others %+v; want T and [T2]", err, d.Table.ID, d.Tables)
		}
		two := strings.Replace(minimal, "  Q:\n", second+"      StreamSpecification: {StreamViewType: NEW_IMAGE}\n  Q:\n", 1)
		if _, err := FromTemplate([]byte(two), testStack); err == nil || !strings.Contains(err.Error(), "T and T2 have one") {
			t.Errorf("error %v, want one about the two tables with streams", err)
		}
	})
	t.Run("an unresolvable stack name", func(t *testing.T) {
		if _, err := FromTemplate([]byte(minimal), cfn.Stack{Region: "r"}); err == nil || !strings.Contains(err.Error(), "stack name") {
			t.Errorf("error %v, want one naming the missing stack name", err)
		}
	})
}
