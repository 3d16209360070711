package memstore

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// ReadJSON decodes the JSON file at path (a golden event under testdata, as
// Lambda delivers it) into v, failing the test if it cannot.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

// StreamFailures returns the item identifiers (sequence numbers) of a
// stream handler's batch item failures, sorted; nil when there are none.
func StreamFailures(resp events.DynamoDBEventResponse) []string {
	return sortedIDs(resp.BatchItemFailures, func(f events.DynamoDBBatchItemFailure) string { return f.ItemIdentifier })
}

// QueueFailures returns the item identifiers (message ids) of an SQS
// handler's batch item failures, sorted; nil when there are none.
func QueueFailures(resp events.SQSEventResponse) []string {
	return sortedIDs(resp.BatchItemFailures, func(f events.SQSBatchItemFailure) string { return f.ItemIdentifier })
}

func sortedIDs[F any](failures []F, id func(F) string) []string {
	var ids []string
	for _, f := range failures {
		ids = append(ids, id(f))
	}
	slices.Sort(ids)
	return ids
}
