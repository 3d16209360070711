// Package schema is what ferry publishes: the Go type of every EventBridge
// event's detail (Detail, NewDetail, DetailType) and its JSON Schema, with a
// validator subscribers can use in their own tests.
package schema

import _ "embed"

// TransferEvent is the JSON Schema (draft 2020-12) of the detail of every
// EventBridge event ferry publishes.
//
//go:embed transfer-event.schema.json
var TransferEvent []byte
