package cfn

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testTemplate holds one resource of most types the local runtime reads,
// written in both the short-tag and the long form.
const testTemplate = `
Globals:
  Function:
    Handler: shared
Parameters:
  Env: {Type: String, Default: dev}
  BucketName: {Type: String}
  Unset: {Type: String}
  Names: {Type: CommaDelimitedList, Default: "a, b,c"}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: {"Fn::Equals": [{"Ref": "Env"}, "dev"]}
  NotProd: !Not [!Condition IsProd]
  DevAndNotProd: !And [!Condition IsDev, {Condition: NotProd}]
  ProdOrDev: !Or [!Condition IsProd, !Condition IsDev]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-table"
  DLQ:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "${AWS::StackName}-dlq"}
  Unnamed:
    Type: AWS::SQS::Queue
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: {"Fn::Sub": ["${Prefix}-queue", {Prefix: !Ref "AWS::StackName"}]}
      VisibilityTimeout: !If [IsProd, 900, 30]
      DelaySeconds: !If [IsProd, 5, !Ref AWS::NoValue]
      RedrivePolicy: {deadLetterTargetArn: !GetAtt DLQ.Arn, maxReceiveCount: "3"}
      Tags:
        - {Key: a, Value: !ImportValue elsewhere}
  Bucket:
    Type: AWS::S3::Bucket
    Properties: {BucketName: !Ref BucketName}
  LogBucket:
    Type: AWS::S3::Bucket
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Ref AWS::StackName}
  ProdOnly:
    Type: AWS::SQS::Queue
    Condition: IsProd
    Properties: {QueueName: prod-only}
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties: {AlarmActions: [!ImportValue ops-topic]}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Q: {Type: SQS, Properties: {Queue: !GetAtt [Queue, Arn]}}
`

func testResolver(t *testing.T, tpl string) *Resolver {
	t.Helper()
	parsed, err := Parse([]byte(tpl))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r, err := NewResolver(parsed, Stack{Name: "ferry", Region: "eu-west-2", AccountID: "123456789012", Parameters: map[string]string{"BucketName": "uploads"}})
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	return r
}

// inline wraps a property value in a one-resource template, so a test can
// resolve an expression as the property V of resource R.
func inline(expr string) string {
	return testTemplate + "\n  R:\n    Type: AWS::SQS::Queue\n    Properties:\n      V: " + expr + "\n"
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name, expr string
		want       any
	}{
		{"parameter from the stack", "!Ref BucketName", "uploads"},
		{"parameter default", "!Ref Env", "dev"},
		{"list parameter", "!Ref Names", []any{"a", "b", "c"}},
		{"stack name", "!Ref AWS::StackName", "ferry"},
		{"region", "!Ref AWS::Region", "eu-west-2"},
		{"account", "{Ref: AWS::AccountId}", "123456789012"},
		{"partition", "!Ref AWS::Partition", "aws"},
		{"URL suffix", "!Ref AWS::URLSuffix", "amazonaws.com"},
		{"table name", "!Ref Table", "ferry-table"},
		{"queue URL", "!Ref Queue", "https://sqs.eu-west-2.amazonaws.com/123456789012/ferry-queue"},
		{"queue named after the stack and its ID", "!GetAtt Unnamed.QueueName", "ferry-Unnamed"},
		{"bucket name", "!Ref Bucket", "uploads"},
		{"bucket named after the stack and its ID, in lower case", "!Ref LogBucket", "ferry-logbucket"},
		{"bus name", "!Ref Bus", "ferry"},
		{"queue ARN", "!GetAtt Queue.Arn", "arn:aws:sqs:eu-west-2:123456789012:ferry-queue"},
		{"queue ARN, long list form", `{"Fn::GetAtt": [DLQ, Arn]}`, "arn:aws:sqs:eu-west-2:123456789012:ferry-dlq"},
		{"queue name", "!GetAtt Queue.QueueName", "ferry-queue"},
		{"queue URL attribute", "!GetAtt DLQ.QueueUrl", "https://sqs.eu-west-2.amazonaws.com/123456789012/ferry-dlq"},
		{"stream ARN", "!GetAtt Table.StreamArn", "arn:aws:dynamodb:eu-west-2:123456789012:table/ferry-table/stream/local"},
		{"bucket ARN", "!GetAtt Bucket.Arn", "arn:aws:s3:::uploads"},
		{"bus ARN", "!GetAtt Bus.Arn", "arn:aws:events:eu-west-2:123456789012:event-bus/ferry"},
		{"bus name attribute", "!GetAtt Bus.Name", "ferry"},
		{"sub of parameters, pseudo parameters and attributes", `!Sub "arn:${AWS::Partition}:x:${AWS::Region}:${BucketName}:${Queue.QueueName}"`, "arn:aws:x:eu-west-2:uploads:ferry-queue"},
		{"sub literal", `!Sub "${!Literal}-${Env}"`, "${Literal}-dev"},
		{"sub with variables", `!Sub ["${A}/${B}", {A: !Ref Env, B: x}]`, "dev/x"},
		{"if true", "!If [IsDev, yes, no]", "yes"},
		{"if false", "!If [IsProd, yes, no]", "no"},
		{"if of not", "!If [NotProd, yes, no]", "yes"},
		{"if of and", "!If [DevAndNotProd, yes, no]", "yes"},
		{"if of or", "!If [ProdOrDev, yes, no]", "yes"},
		{"long-form equals", "{\"Fn::If\": [IsDev, 1, 2]}", int64(1)},
		{"no value drops list items", "[a, !Ref AWS::NoValue, !If [IsProd, x, !Ref AWS::NoValue], b]", []any{"a", "b"}},
		{"no value drops keys", "{a: 1, b: !Ref AWS::NoValue}", map[string]any{"a": int64(1)}},
		{"join", `!Join [":", [a, !Ref Env, c]]`, "a:dev:c"},
		{"select", "!Select [1, [a, b, c]]", "b"},
		{"select of split", `!Select [2, !Split [",", "x,y,z"]]`, "z"},
		{"numbers and booleans", "[1, 2.5, true, \"4\"]", []any{int64(1), 2.5, true, "4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testResolver(t, inline(tt.expr))
			got, err := r.Property("R", "V").Any()
			if err != nil {
				t.Fatalf("resolve %s: %v", tt.expr, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("resolve %s = %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string // all in the message
	}{
		{"unsupported function", "!ImportValue shared", []string{"resource R", "Properties.V", "Fn::ImportValue", "not supported"}},
		{"unsupported function, nested", "{a: [x, !FindInMap [M, k, v]]}", []string{"resource R", "Properties.V.a.1", "Fn::FindInMap"}},
		{"parameter without a value", "!Ref Unset", []string{"Properties.V", "Ref", "parameter Unset"}},
		{"unknown name", "!Ref Nowhere", []string{"Ref", "Nowhere is neither a parameter nor a resource"}},
		{"unknown attribute", "!GetAtt Bucket.DomainName", []string{"Fn::GetAtt", "attribute DomainName of Bucket (AWS::S3::Bucket)"}},
		{"ref of an unsupported type", "!Ref Alarm", []string{"Ref", "AWS::CloudWatch::Alarm"}},
		{"resource whose condition is false", "!GetAtt ProdOnly.Arn", []string{"ProdOnly is not created", "IsProd"}},
		{"unknown condition", "!If [Nope, a, b]", []string{"Condition", "no condition \"Nope\""}},
		{"bad getatt", "!GetAtt Queue", []string{"Fn::GetAtt", "RESOURCE.ATTRIBUTE"}},
		{"select out of range", "!Select [3, [a]]", []string{"Fn::Select", "out of range"}},
		{"unterminated sub", `!Sub "${Env"`, []string{"Fn::Sub", "unterminated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testResolver(t, inline(tt.expr))
			_, err := r.Property("R", "V").Any()
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("resolve %s: error %v, want a *cfn.Error", tt.expr, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("resolve %s: error %q does not say %q", tt.expr, err, w)
				}
			}
		})
	}
}

func TestResolveIsLazy(t *testing.T) {
	r := testResolver(t, testTemplate)
	// Queue's Tags hold an intrinsic the resolver cannot resolve; reading
	// its other properties does not touch them.
	q := r.Property("Queue")
	if got, err := q.Get("VisibilityTimeout").Int(); err != nil || got != 30 {
		t.Errorf("VisibilityTimeout = %d, %v; want 30", got, err)
	}
	if got, err := q.Get("RedrivePolicy", "maxReceiveCount").Int(); err != nil || got != 3 {
		t.Errorf("maxReceiveCount = %d, %v; want 3 (from a string)", got, err)
	}
	if q.Get("DelaySeconds").Exists() {
		t.Error("DelaySeconds (AWS::NoValue) exists")
	}
	if q.Get("MessageRetentionPeriod").Exists() {
		t.Error("MessageRetentionPeriod (not set) exists")
	}
	if _, err := q.Get("Tags").Index(0).Get("Key").String(); err != nil {
		t.Errorf("Tags.0.Key: %v (its sibling Value is what cannot be resolved)", err)
	}
	if _, err := q.Get("Tags").Index(0).Get("Value").String(); err == nil || !strings.Contains(err.Error(), "Properties.Tags.0.Value: Fn::ImportValue") {
		t.Errorf("Tags.0.Value: error %v, want one naming the path and Fn::ImportValue", err)
	}
	// A property set in SAM's Globals applies to every function.
	if got, err := r.Property("Fn", "Handler").String(); err != nil || got != "shared" {
		t.Errorf("Fn Handler = %q, %v; want shared (from Globals)", got, err)
	}
	// Stepping through an intrinsic resolves it on the way.
	if got, err := r.Property("Fn", "Events", "Q", "Properties", "Queue").String(); err != nil || got != "arn:aws:sqs:eu-west-2:123456789012:ferry-queue" {
		t.Errorf("event queue = %q, %v", got, err)
	}
	keys, err := r.Property("Fn", "Events").Keys()
	if err != nil || !reflect.DeepEqual(keys, []string{"Q"}) {
		t.Errorf("event keys = %v, %v; want [Q]", keys, err)
	}
}

func TestConditionsAndEnabled(t *testing.T) {
	r := testResolver(t, testTemplate)
	for name, want := range map[string]bool{"IsProd": false, "IsDev": true, "NotProd": true, "DevAndNotProd": true, "ProdOrDev": true} {
		if got, err := r.Condition(name); err != nil || got != want {
			t.Errorf("Condition(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	for id, want := range map[string]bool{"Queue": true, "ProdOnly": false, "Missing": false} {
		if got, err := r.Enabled(id); err != nil || got != want {
			t.Errorf("Enabled(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
}

func TestConditionCycle(t *testing.T) {
	r := testResolver(t, "Conditions:\n  A: !Not [!Condition B]\n  B: !Not [!Condition A]\nResources: {}\n")
	if _, err := r.Condition("A"); err == nil || !strings.Contains(err.Error(), "refers to itself") {
		t.Errorf("Condition(A) error %v, want a cycle", err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, tpl := range map[string]string{
		"not a mapping":         "- a\n",
		"resource without type": "Resources:\n  X: {Properties: {}}\n",
		"bad YAML":              "Resources: [\n",
		"resources not a map":   "Resources: [a]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(tpl)); err == nil {
				t.Errorf("Parse(%q) succeeded", tpl)
			}
		})
	}
}

func TestReadStack(t *testing.T) {
	s, err := ReadStack([]byte(`{"stackName": "ferry", "accountId": "1", "parameters": {"A": "b"}}`), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "ferry" || s.AccountID != "1" || s.Region != "us-east-1" || s.Parameters["A"] != "b" {
		t.Errorf("ReadStack = %+v", s)
	}
	if _, err := ReadStack([]byte(`{"stackName": "ferry"}`), ""); err == nil || !strings.Contains(err.Error(), "region") || !strings.Contains(err.Error(), "account") {
		t.Errorf("ReadStack without region and account: %v, want both reported", err)
	}
	if _, err := ReadStack([]byte(`{"stackname": "ferry"}`), "r"); err == nil {
		t.Error("ReadStack accepted an unknown field")
	}
}

func TestStreamTable(t *testing.T) {
	for arn, want := range map[string]string{
		"arn:aws:dynamodb:eu-west-2:123456789012:table/ferry-transfers/stream/2025-03-01T00:00:00.000": "ferry-transfers",
		"arn:aws:dynamodb:eu-west-2:123456789012:table/t/stream/local":                                 "t",
		"arn:aws:sqs:eu-west-2:123456789012:q":                                                         "",
	} {
		if got := StreamTable(arn); got != want {
			t.Errorf("StreamTable(%s) = %q, want %q", arn, got, want)
		}
	}
}
