// Package schema holds the JSON Schema of ferry's published event detail.
package schema

import _ "embed"

// TransferEvent is the JSON Schema (draft 2020-12) of the detail of every
// EventBridge event ferry publishes.
//
//go:embed transfer-event.schema.json
var TransferEvent []byte
