// Package infra holds the AWS SAM template, the one definition of ferry's
// resources, and the values the local stack gives its parameters, embedded so
// that `ferry local` builds the local stack from them wherever it runs.
package infra

import _ "embed"

// Template is infra/template.yaml, the SAM template that deploys ferry to AWS
// and that `ferry local` makes the local stack from.
//
//go:embed template.yaml
var Template []byte

// LocalStack is infra/local/stack.json: the stack name, account ID and
// parameter values of the local stack (see internal/local/cfn.ReadStack).
//
//go:embed local/stack.json
var LocalStack []byte
