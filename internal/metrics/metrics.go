// Package metrics publishes CloudWatch metrics in the embedded metric format
// (EMF): a data point is one JSON log line with an "_aws" member, which
// CloudWatch Logs turns into a metric as it ingests a Lambda's output. No
// API call is made and no permission is needed, and the line is also an
// ordinary log record, searchable with the attributes beside it.
package metrics

import (
	"context"
	"log/slog"
	"time"
)

// Count logs n as one data point of the count metric name in namespace,
// with no dimensions, through log (whose handler must write JSON for
// CloudWatch to read it), with attrs (key, value pairs) beside it.
func Count(ctx context.Context, log *slog.Logger, namespace, name string, n int, attrs ...any) {
	directive := map[string]any{
		"Timestamp": time.Now().UnixMilli(),
		"CloudWatchMetrics": []map[string]any{{
			"Namespace":  namespace,
			"Dimensions": [][]string{{}},
			"Metrics":    []map[string]string{{"Name": name, "Unit": "Count"}},
		}},
	}
	log.InfoContext(ctx, "metric "+name, append([]any{"_aws", directive, name, n}, attrs...)...)
}
