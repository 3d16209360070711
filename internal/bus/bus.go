// Package bus publishes ferry's own notices (events about partners and
// expectations rather than transfers) on its EventBridge bus, one at a
// time. Transfer events go through functions/publish, which batches them.
package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// Client is what events go to (EventBridge).
type Client interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus is one event bus and the source its notices carry.
type Bus struct {
	Client Client
	Name   string
	// Source is the events' source ("ferry" when empty).
	Source string
}

// Put publishes one event of detailType about resource, with detail as
// its JSON detail, at time at. An entry EventBridge refuses is an error.
func (b Bus) Put(ctx context.Context, detailType, resource string, detail any, at time.Time) error {
	data, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	source := b.Source
	if source == "" {
		source = "ferry"
	}
	out, err := b.Client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(b.Name), Source: aws.String(source), DetailType: aws.String(detailType),
		Detail: aws.String(string(data)), Resources: []string{resource}, Time: aws.Time(at),
	}}})
	if err != nil {
		return fmt.Errorf("publish %s about %s: %w", detailType, resource, err)
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		return fmt.Errorf("publish %s about %s: %s %s", detailType, resource, aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage))
	}
	return nil
}
