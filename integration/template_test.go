//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/ferryhq/ferry/domain"
)

// TestLocalStackIsTheTemplates: what ferry local created on the emulator
// has the settings infra/template.yaml gives it, where the old local code
// had its own (a 30s visibility timeout, an extra discard/ notification,
// every index projecting ALL).
func TestLocalStackIsTheTemplates(t *testing.T) {
	ctx := context.Background()
	t.Run("queues", func(t *testing.T) {
		attrs := func(name string) map[string]string {
			out, err := stack.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
				QueueUrl:       aws.String(stack.queueURL(t, name)),
				AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
			})
			if err != nil {
				t.Fatal(err)
			}
			return out.Attributes
		}
		intake := attrs(stack.res.IntakeQueue)
		if intake["VisibilityTimeout"] != "360" {
			t.Errorf("intake visibility timeout %s, want the template's 360", intake["VisibilityTimeout"])
		}
		var redrive struct {
			DeadLetterTargetARN string `json:"deadLetterTargetArn"`
		}
		if err := json.Unmarshal([]byte(intake["RedrivePolicy"]), &redrive); err != nil {
			t.Fatalf("intake redrive policy %q: %v", intake["RedrivePolicy"], err)
		}
		if dlq := attrs(stack.res.IntakeQueue + "-dlq"); redrive.DeadLetterTargetARN != dlq["QueueArn"] || dlq["MessageRetentionPeriod"] != "1209600" {
			t.Errorf("intake redrives to %s, its DLQ is %s retaining %ss; want the DLQ, 14 days", redrive.DeadLetterTargetARN, dlq["QueueArn"], dlq["MessageRetentionPeriod"])
		}
		if got := attrs(stack.res.StreamFailures)["MessageRetentionPeriod"]; got != "1209600" {
			t.Errorf("stream failures retention %s, want 1209600", got)
		}
	})
	t.Run("upload bucket notifies outbound/ only", func(t *testing.T) {
		out, err := stack.s3.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(stack.res.UploadBucket)})
		if err != nil {
			t.Fatal(err)
		}
		var prefixes []string
		for _, qc := range out.QueueConfigurations {
			for _, r := range qc.Filter.Key.FilterRules {
				prefixes = append(prefixes, aws.ToString(r.Value))
			}
		}
		if len(prefixes) != 1 || prefixes[0] != "outbound/" {
			t.Errorf("notification prefixes %v, want [outbound/]", prefixes)
		}
	})
	t.Run("the delivery bucket, not the template's, is created versioned", func(t *testing.T) {
		out, err := stack.s3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(stack.res.DeliveryBucket)})
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != "Enabled" {
			t.Errorf("delivery bucket versioning %q, want Enabled", out.Status)
		}
	})
	t.Run("table", func(t *testing.T) {
		out, err := dynamodb.NewFromConfig(stack.awsCfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(stack.res.Table)})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, g := range out.Table.GlobalSecondaryIndexes {
			got[aws.ToString(g.IndexName)] = string(g.Projection.ProjectionType)
		}
		if got["byRef"] != "KEYS_ONLY" || got["byStatus"] != "ALL" || len(got) != 5 {
			t.Errorf("indexes %v, want the template's five, byRef KEYS_ONLY", got)
		}
		if s := out.Table.StreamSpecification; s == nil || s.StreamViewType != "NEW_IMAGE" {
			t.Errorf("stream %+v, want NEW_IMAGE", s)
		}
	})
	t.Run("an upload under outbound/discard/ takes the discard route", func(t *testing.T) {
		id, _ := stack.upload(t, "outbound/discard/"+uniq("d")+".bin", 1024, nil)
		st := stack.waitFor(t, id, 60*time.Second, "delivered", delivered)
		if st.Request.Route != "discard" || st.Status != domain.StatusDelivered {
			t.Errorf("route %q, status %s; want discard, delivered", st.Request.Route, st.Status)
		}
	})
}
