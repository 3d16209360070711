package schema

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	compileOnce sync.Once
	compiled    *jsonschema.Schema
	compileErr  error
)

// ValidateTransferEvent reports whether detail, the JSON detail of an
// EventBridge event ferry publishes, matches TransferEvent, formats (such
// as date-time) included. Subscribers can use it in their own tests.
func ValidateTransferEvent(detail []byte) error {
	compileOnce.Do(func() {
		const url = "https://github.com/ferryhq/ferry/schema/transfer-event.schema.json"
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(TransferEvent))
		if err != nil {
			compileErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if compileErr = c.AddResource(url, doc); compileErr == nil {
			compiled, compileErr = c.Compile(url)
		}
	})
	if compileErr != nil {
		return fmt.Errorf("transfer event schema: %w", compileErr)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(detail))
	if err != nil {
		return err
	}
	return compiled.Validate(inst)
}
