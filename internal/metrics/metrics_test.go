package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// TestCountWritesEMF checks the line against what CloudWatch requires of an
// EMF record: an _aws member naming the namespace and metric, and the
// metric's value as a top-level member of the same name.
func TestCountWritesEMF(t *testing.T) {
	var buf bytes.Buffer
	Count(context.Background(), slog.New(slog.NewJSONHandler(&buf, nil)), "ferry/test", "TransfersFailed", 1, "route", "r1")
	var rec struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		TransfersFailed *int
		Route           string `json:"route"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, buf.Bytes())
	}
	d := rec.AWS.CloudWatchMetrics
	if rec.AWS.Timestamp == 0 || len(d) != 1 || d[0].Namespace != "ferry/test" || len(d[0].Dimensions) != 1 || len(d[0].Dimensions[0]) != 0 ||
		len(d[0].Metrics) != 1 || d[0].Metrics[0] != (struct{ Name, Unit string }{"TransfersFailed", "Count"}) {
		t.Errorf("_aws = %+v, want one Count metric TransfersFailed in ferry/test, no dimensions", rec.AWS)
	}
	if rec.TransfersFailed == nil || *rec.TransfersFailed != 1 || rec.Route != "r1" {
		t.Errorf("value %v, route %q; want 1 and r1 beside the directive", rec.TransfersFailed, rec.Route)
	}
}
