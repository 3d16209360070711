// Package api holds the HTTP API's contract, openapi.yaml (OpenAPI 3.1):
// every route, parameter, response and error of functions/api. The tests
// hold the API's real responses to it.
package api

import _ "embed"

// Spec is api/openapi.yaml.
//
//go:embed openapi.yaml
var Spec []byte
