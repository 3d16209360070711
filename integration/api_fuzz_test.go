//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAPIContractFuzz runs schemathesis (PyPI, pinned in
// api/requirements-test.txt; test-integration.sh installs it and names it
// in FERRY_SCHEMATHESIS) against ferry local's HTTP API with a partner's
// key: every route of api/openapi.yaml, with inputs the spec allows and
// inputs it does not. It fails on any server error and on any response
// the spec does not describe (status, content type, body). One worker:
// with several, hypothesis's parsing of its own lambdas in threads trips
// a CPython 3.11 bug ("AST constructor recursion depth mismatch").
func TestAPIContractFuzz(t *testing.T) {
	st := os.Getenv("FERRY_SCHEMATHESIS")
	if st == "" {
		t.Fatal("FERRY_SCHEMATHESIS is not set: run `make test-integration`")
	}
	key := apiKey(t, uniq("fuzzer"), "partner")
	stack.mu.Lock()
	base := stack.local.api
	stack.mu.Unlock()
	spec, err := filepath.Abs("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(st, "run", spec, "--url", base, "--header", "Authorization: Bearer "+key,
		"--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
		"--max-examples", "30", "--seed", "20261202", "--generation-database", "none", "--workers", "1")
	cmd.Env = append(os.Environ(), "SCHEMATHESIS_TELEMETRY=false", "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("schemathesis found problems (%v):\n%s", err, out)
	}
	t.Logf("schemathesis:\n%s", out)
}
