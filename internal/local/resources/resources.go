// Package resources creates the AWS resources ferry needs on the local
// emulator, idempotently: the event table with its stream, the buckets (the
// upload bucket and the MESH bucket, laid out as NHS England's MESH client's,
// notify the intake queue), the queues with their
// dead-letter queues, the event bus and a rule whose SQS target lets a
// person or a test see what ferry publishes. The SAM template in infra/
// declares the same resources for AWS.
package resources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// Resources names everything Setup creates.
type Resources struct {
	Table          string
	UploadBucket   string // uploads under UploadPrefix notify the intake queue
	UploadPrefixes []string
	// MESHBucket is laid out as NHS England's MESH client's bucket:
	// uploads under MESHPrefixes (outbound/) are sent to MESH, and received
	// messages land under inbound/{mailbox}/.
	MESHBucket     string
	MESHPrefixes   []string
	DeliveryBucket string
	IntakeQueue    string
	RetryQueue     string
	StreamFailures string // on-failure destination of the stream readers
	ObserverQueue  string // target of the rule that matches every ferry event
	EventBus       string
	EventSource    string
	// MaxReceives is how often a queue message is tried before its queue's
	// redrive policy moves it to the dead-letter queue ("<queue>-dlq").
	MaxReceives int
}

// Defaults returns the resource names of the local stack.
func Defaults() Resources {
	return Resources{
		Table:          "ferry-transfers",
		UploadBucket:   "ferry-local",
		UploadPrefixes: []string{"outbound/", "discard/"},
		MESHBucket:     "ferry-local-mesh",
		MESHPrefixes:   []string{"outbound/"},
		DeliveryBucket: "ferry-local-delivered",
		IntakeQueue:    "ferry-intake",
		RetryQueue:     "ferry-retry",
		StreamFailures: "ferry-stream-failures",
		ObserverQueue:  "ferry-observer",
		EventBus:       "ferry",
		EventSource:    "ferry",
		MaxReceives:    3,
	}
}

// Stack is what Setup made: the names plus the URLs and ARNs callers need.
type Stack struct {
	Resources
	IntakeURL, IntakeDLQURL string
	RetryURL, RetryDLQURL   string
	StreamFailuresURL       string
	ObserverURL             string
	IntakeARN               string
}

// Clients are the service clients Setup uses.
type Clients struct {
	S3          *s3.Client
	SQS         *sqs.Client
	EventBridge *eventbridge.Client
}

// Setup creates every resource that does not exist yet (the table is the
// store's to create) and returns their addresses. Running it again changes
// nothing.
func Setup(ctx context.Context, c Clients, r Resources) (*Stack, error) {
	st := &Stack{Resources: r}
	var err error
	if st.IntakeURL, st.IntakeDLQURL, err = queueWithDLQ(ctx, c.SQS, r.IntakeQueue, r.MaxReceives); err != nil {
		return nil, err
	}
	if st.RetryURL, st.RetryDLQURL, err = queueWithDLQ(ctx, c.SQS, r.RetryQueue, r.MaxReceives); err != nil {
		return nil, err
	}
	if st.StreamFailuresURL, err = queue(ctx, c.SQS, r.StreamFailures, nil); err != nil {
		return nil, err
	}
	if st.ObserverURL, err = queue(ctx, c.SQS, r.ObserverQueue, nil); err != nil {
		return nil, err
	}
	if st.IntakeARN, err = queueARN(ctx, c.SQS, st.IntakeURL); err != nil {
		return nil, err
	}
	for _, b := range []string{r.UploadBucket, r.MESHBucket, r.DeliveryBucket} {
		if b == "" {
			continue
		}
		if err := bucket(ctx, c.S3, b); err != nil {
			return nil, err
		}
	}
	for b, prefixes := range map[string][]string{r.UploadBucket: r.UploadPrefixes, r.MESHBucket: r.MESHPrefixes} {
		if b == "" {
			continue
		}
		if err := notify(ctx, c.S3, b, prefixes, st.IntakeARN); err != nil {
			return nil, err
		}
	}
	if err := bus(ctx, c.EventBridge, c.SQS, st); err != nil {
		return nil, err
	}
	return st, nil
}

// notify sends bucket's ObjectCreated notifications under each prefix to
// the intake queue.
func notify(ctx context.Context, c *s3.Client, bucket string, prefixes []string, queueARN string) error {
	var qcs []s3types.QueueConfiguration
	for _, p := range prefixes {
		qcs = append(qcs, s3types.QueueConfiguration{
			Id:       aws.String("ferry-intake-" + p),
			QueueArn: &queueARN,
			Events:   []s3types.Event{s3types.EventS3ObjectCreated},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String(p)},
			}}},
		})
	}
	if _, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    &bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: qcs},
	}); err != nil {
		return fmt.Errorf("notification on %s: %w", bucket, err)
	}
	return nil
}

func queueWithDLQ(ctx context.Context, c *sqs.Client, name string, maxReceives int) (url, dlqURL string, err error) {
	if dlqURL, err = queue(ctx, c, name+"-dlq", map[string]string{"MessageRetentionPeriod": "1209600"}); err != nil {
		return "", "", err
	}
	dlqARN, err := queueARN(ctx, c, dlqURL)
	if err != nil {
		return "", "", err
	}
	policy, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqARN, "maxReceiveCount": strconv.Itoa(maxReceives)})
	url, err = queue(ctx, c, name, map[string]string{"RedrivePolicy": string(policy), "VisibilityTimeout": "30"})
	return url, dlqURL, err
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

func bucket(ctx context.Context, c *s3.Client, name string) error {
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	// Versioning gives every upload a version id, which makes intake's
	// dedupe exact and lets a transfer copy the version it was asked for.
	_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  &name,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	})
	if err != nil {
		return fmt.Errorf("versioning on %s: %w", name, err)
	}
	return nil
}

func bus(ctx context.Context, eb *eventbridge.Client, q *sqs.Client, st *Stack) error {
	_, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: &st.EventBus})
	var exists *ebtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ResourceAlreadyExistsException" {
			return fmt.Errorf("create event bus %s: %w", st.EventBus, err)
		}
	}
	pattern, _ := json.Marshal(map[string][]string{"source": {st.EventSource}})
	rule := st.EventBus + "-observe-all"
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: &rule, EventBusName: &st.EventBus, EventPattern: aws.String(string(pattern))}); err != nil {
		return fmt.Errorf("rule %s: %w", rule, err)
	}
	arn, err := queueARN(ctx, q, st.ObserverURL)
	if err != nil {
		return err
	}
	_, err = eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: &rule, EventBusName: &st.EventBus, Targets: []ebtypes.Target{{Id: aws.String("observer"), Arn: &arn}}})
	if err != nil {
		return fmt.Errorf("target of %s: %w", rule, err)
	}
	return nil
}
