#!/usr/bin/env bash
# Runs the integration tests against a local stack (moto and the MESH
# sandbox) started on free ports, so it never collides with a running
# `make run`. Stops what it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$root/scripts/install.sh"
"$root/scripts/install-test-peers.sh"
start_stack "$(free_port)" "$(free_port)"
start_azurite "$(free_port)"

export FERRY_BIN="$root/bin/ferry"
cd "$root"
# -p 1: the packages share one MESH sandbox, whose inboxes ferry local polls.
go test -tags integration -count=1 -p 1 -timeout 25m "$@" ./...
