// Package resources makes ferry's local stack on the emulator from the SAM
// template, infra/template.yaml, the one definition of ferry's resources:
// Template reads the template (through internal/local/cfn) into a
// Definition — the table with its keys, indexes and stream, the queues with
// their redrive policies, the buckets with versioning and notifications, the
// event bus and its rules, and each function's event sources — and Setup
// creates it, idempotently.
//
// Two things are added locally, and only locally: the buckets the template
// is given by a …BucketName parameter but does not create (the delivery
// bucket, which in AWS is the user's) are created, versioned; and a rule on
// the bus ("<bus>-observe-all") sends every ferry event to an observer
// queue ("<stack>-observer") so that a person or a test can see what ferry
// publishes.
package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/ferryhq/ferry/store"
)

// EventSource is the source of the events ferry publishes when
// FERRY_EVENT_SOURCE is not set (internal/app's default, which the template
// keeps); the observer rule matches it.
const EventSource = "ferry"

// Resources names the parts of the local stack that the local runtime, the
// CLI and the tests address by role.
type Resources struct {
	Table string
	// ConnectionsTable holds the live channel's WebSocket connections.
	ConnectionsTable string
	// UploadBucket is the template's UploadBucket; uploads under
	// UploadPrefixes notify the intake queue.
	UploadBucket   string
	UploadPrefixes []string
	// MESHBucket (the template's MeshBucket) is laid out as NHS England's
	// MESH client's bucket: uploads under MESHPrefixes (outbound/) are sent
	// to MESH, and received messages land under inbound/{mailbox}/.
	MESHBucket     string
	MESHPrefixes   []string
	DeliveryBucket string // named by the DeliveryBucketName parameter
	IntakeQueue    string // the intake function's queue
	RetryQueue     string // the retry function's queue
	StreamFailures string // on-failure destination of the advance stream reader
	ObserverQueue  string // local only: target of the rule that matches every ferry event
	EventBus       string
	EventSource    string
	// MaxReceives is how often an intake message is tried before the
	// queue's redrive policy moves it to the dead-letter queue.
	MaxReceives int
}

// Defaults returns the names of the local stack, derived from the embedded
// template and stack file. It panics if they cannot be read, which the
// package's tests rule out for the embedded files.
func Defaults() Resources {
	d, err := Template("us-east-1") // names do not depend on the region
	if err != nil {
		panic(fmt.Sprintf("resources: the embedded infra/template.yaml: %v", err))
	}
	return d.Resources()
}

// Resources returns the names of d's parts by role.
func (d Definition) Resources() Resources {
	r := Resources{
		Table:            aws.ToString(d.Table.Input.TableName),
		ConnectionsTable: d.Name("Connections"),
		UploadBucket:     d.Name("UploadBucket"),
		MESHBucket:       d.Name("MeshBucket"),
		DeliveryBucket:   d.Name("DeliveryBucketName"),
		ObserverQueue:    d.StackName + "-observer",
		EventBus:         d.Bus,
		EventSource:      EventSource,
	}
	for _, b := range d.Buckets {
		for _, n := range b.Notifications {
			switch b.Name {
			case r.UploadBucket:
				r.UploadPrefixes = append(r.UploadPrefixes, n.Prefix)
			case r.MESHBucket:
				r.MESHPrefixes = append(r.MESHPrefixes, n.Prefix)
			}
		}
	}
	if f, ok := d.Function("intake"); ok && len(f.Queues) > 0 {
		r.IntakeQueue = f.Queues[0].Queue
		q, _ := d.Queue(r.IntakeQueue)
		r.MaxReceives = q.MaxReceiveCount
	}
	if f, ok := d.Function("retry"); ok && len(f.Queues) > 0 {
		r.RetryQueue = f.Queues[0].Queue
	}
	if f, ok := d.Function("advance"); ok && len(f.Streams) > 0 {
		r.StreamFailures = f.Streams[0].OnFailure
	}
	return r
}

// Stack is what Setup made: the definition, the names by role, and the
// addresses callers need.
type Stack struct {
	Resources
	Definition              Definition
	QueueURLs               map[string]string // by queue name
	IntakeURL, IntakeDLQURL string
	RetryURL, RetryDLQURL   string
	StreamFailuresURL       string
	ObserverURL             string
	StreamARN               string // the table's latest stream
}

// Clients are the service clients Setup uses.
type Clients struct {
	DynamoDB    *dynamodb.Client
	S3          *s3.Client
	SQS         *sqs.Client
	EventBridge *eventbridge.Client
}

// Setup creates every resource of d that does not exist yet, brings the
// queues' attributes and the buckets' versioning and notifications to what
// d says, and returns their addresses. Running it again changes nothing.
func Setup(ctx context.Context, c Clients, d Definition) (*Stack, error) {
	st := &Stack{Definition: d, Resources: d.Resources(), QueueURLs: map[string]string{}}
	table := store.New(c.DynamoDB, st.Table)
	if err := table.CreateTable(ctx, *d.Table.Input); err != nil {
		return nil, err
	}
	var err error
	if st.StreamARN, err = table.StreamARN(ctx); err != nil {
		return nil, err
	}
	for _, t := range d.Tables {
		if err := store.New(c.DynamoDB, aws.ToString(t.Input.TableName)).CreateTable(ctx, *t.Input); err != nil {
			return nil, err
		}
	}
	arns := map[string]string{}
	for _, q := range d.Queues {
		attrs := make(map[string]string, len(q.Attributes)+1)
		for k, v := range q.Attributes {
			attrs[k] = v
		}
		if q.DeadLetter != "" {
			policy, _ := json.Marshal(map[string]string{"deadLetterTargetArn": arns[q.DeadLetter], "maxReceiveCount": strconv.Itoa(q.MaxReceiveCount)})
			attrs["RedrivePolicy"] = string(policy)
		}
		url, err := queue(ctx, c.SQS, q.Name, attrs)
		if err != nil {
			return nil, err
		}
		if arns[q.Name], err = queueARN(ctx, c.SQS, url); err != nil {
			return nil, err
		}
		st.QueueURLs[q.Name] = url
	}
	if st.ObserverURL, err = queue(ctx, c.SQS, st.ObserverQueue, nil); err != nil {
		return nil, err
	}
	if arns[st.ObserverQueue], err = queueARN(ctx, c.SQS, st.ObserverURL); err != nil {
		return nil, err
	}
	st.IntakeURL, st.RetryURL = st.QueueURLs[st.IntakeQueue], st.QueueURLs[st.RetryQueue]
	if q, ok := d.Queue(st.IntakeQueue); ok {
		st.IntakeDLQURL = st.QueueURLs[q.DeadLetter]
	}
	if q, ok := d.Queue(st.RetryQueue); ok {
		st.RetryDLQURL = st.QueueURLs[q.DeadLetter]
	}
	st.StreamFailuresURL = st.QueueURLs[st.StreamFailures]
	for _, b := range d.Buckets {
		if err := bucket(ctx, c.S3, b, arns); err != nil {
			return nil, err
		}
	}
	if d.Bus != "" {
		if err := bus(ctx, c.EventBridge, d.Bus); err != nil {
			return nil, err
		}
	}
	rules := append([]Rule(nil), d.Rules...)
	if d.Bus != "" {
		pattern, _ := json.Marshal(map[string][]string{"source": {st.EventSource}})
		rules = append(rules, Rule{Name: d.Bus + "-observe-all", Bus: d.Bus, Pattern: string(pattern), Enabled: true, Queues: []string{st.ObserverQueue}})
	}
	for _, r := range rules {
		if err := rule(ctx, c.EventBridge, r, arns); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func queue(ctx context.Context, c *sqs.Client, name string, attrs map[string]string) (string, error) {
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
	if err != nil {
		var already *sqstypes.QueueNameExists
		if !errors.As(err, &already) {
			return "", fmt.Errorf("create queue %s: %w", name, err)
		}
		got, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: &name})
		if err != nil {
			return "", fmt.Errorf("queue %s: %w", name, err)
		}
		// Made by an earlier run, maybe from an earlier template.
		if len(attrs) > 0 {
			if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: got.QueueUrl, Attributes: attrs}); err != nil {
				return "", fmt.Errorf("queue %s: set attributes: %w", name, err)
			}
		}
		return aws.ToString(got.QueueUrl), nil
	}
	return aws.ToString(out.QueueUrl), nil
}

func queueARN(ctx context.Context, c *sqs.Client, url string) (string, error) {
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", url, err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

// bucket creates b if need be and sets its versioning and notifications.
func bucket(ctx context.Context, c *s3.Client, b Bucket, queueARNs map[string]string) error {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b.Name})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", b.Name, err)
	}
	if b.Versioning {
		// Versioning gives every upload a version id, which makes intake's
		// dedupe exact and lets a transfer copy the version it was asked for.
		_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  &b.Name,
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			return fmt.Errorf("versioning on %s: %w", b.Name, err)
		}
	}
	if b.External {
		return nil // the user's bucket: its notifications are not ferry's
	}
	qcs := []s3types.QueueConfiguration{}
	for i, n := range b.Notifications {
		var rules []s3types.FilterRule
		if n.Prefix != "" {
			rules = append(rules, s3types.FilterRule{Name: s3types.FilterRuleNamePrefix, Value: aws.String(n.Prefix)})
		}
		if n.Suffix != "" {
			rules = append(rules, s3types.FilterRule{Name: s3types.FilterRuleNameSuffix, Value: aws.String(n.Suffix)})
		}
		qc := s3types.QueueConfiguration{
			Id:       aws.String(fmt.Sprintf("%s-%d", n.Queue, i)),
			QueueArn: aws.String(queueARNs[n.Queue]),
			Events:   []s3types.Event{s3types.Event(n.Event)},
		}
		if rules != nil {
			qc.Filter = &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: rules}}
		}
		qcs = append(qcs, qc)
	}
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    &b.Name,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: qcs},
	}); err != nil {
		return fmt.Errorf("notification on %s: %w", b.Name, err)
	}
	return nil
}

func bus(ctx context.Context, eb *eventbridge.Client, name string) error {
	_, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: &name})
	var exists *ebtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceAlreadyExistsException" {
			return fmt.Errorf("create event bus %s: %w", name, err)
		}
	}
	return nil
}

// rule puts r on its bus with its SQS targets.
func rule(ctx context.Context, eb *eventbridge.Client, r Rule, queueARNs map[string]string) error {
	state := ebtypes.RuleStateEnabled
	if !r.Enabled {
		state = ebtypes.RuleStateDisabled
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: &r.Name, EventBusName: &r.Bus, EventPattern: &r.Pattern, State: state}); err != nil {
		return fmt.Errorf("rule %s: %w", r.Name, err)
	}
	if len(r.Queues) == 0 {
		return nil
	}
	var targets []ebtypes.Target
	for _, q := range r.Queues {
		targets = append(targets, ebtypes.Target{Id: aws.String(q), Arn: aws.String(queueARNs[q])})
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: &r.Name, EventBusName: &r.Bus, Targets: targets}); err != nil {
		return fmt.Errorf("targets of %s: %w", r.Name, err)
	}
	return nil
}
