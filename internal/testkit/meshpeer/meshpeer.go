// Package meshpeer runs NHS England's Python MESH client (mesh-client,
// installed in the local stack's venv) as the independent peer of ferry's
// MESH tests: a test hands it a Python snippet that uses `client`, a
// mesh_client.MeshClient for one sandbox mailbox, and reads what it prints.
package meshpeer

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Peer says how to reach the sandbox. CA, Cert and Key are file paths; an
// empty CA turns verification off (plain-http sandboxes in development),
// empty Cert and Key send no client certificate.
type Peer struct {
	Python string // interpreter with mesh_client installed
	URL    string
	CA     string
	Cert   string
	Key    string
}

// prelude binds `client` for the mailbox in MESH_MAILBOX, with the sandbox's
// password and shared key, and no retries (a failure must show).
const prelude = `
import os, sys, json, hashlib, mesh_client
verify = os.environ.get("MESH_CA") or False
cert = (os.environ["MESH_CERT"], os.environ["MESH_KEY"]) if os.environ.get("MESH_CERT") else None
client = mesh_client.MeshClient(os.environ["MESH_URL"], os.environ["MESH_MAILBOX"], "password",
    shared_key=b"TestKey", verify=verify, cert=cert, max_retries=0)
`

// Run executes script as mailbox with stdin and returns its trimmed
// stdout, failing the test (with the client's stderr) if it fails or runs
// longer than two minutes.
func (p Peer) Run(t testing.TB, mailbox, script string, stdin []byte) string {
	t.Helper()
	if _, err := os.Stat(p.Python); err != nil {
		t.Fatalf("no python with mesh-client at %q: %v", p.Python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Python, "-c", prelude+script)
	cmd.Env = append(os.Environ(), "MESH_URL="+p.URL, "MESH_MAILBOX="+mailbox, "MESH_CA="+p.CA,
		"MESH_CERT="+p.Cert, "MESH_KEY="+p.Key, "PYTHONWARNINGS=ignore")
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mesh-client: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
