#!/usr/bin/env bash
# Runs the integration tests against a local stack started on free ports,
# so it never collides with a running `make run`. Stops what it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$root/scripts/install.sh"

port=$(free_port)
endpoint=$("$root/scripts/stack.sh" start "$port")
trap '"$root/scripts/stack.sh" stop "$port"' EXIT

export FERRY_AWS_ENDPOINT=$endpoint
export FERRY_BIN="$root/bin/ferry"
cd "$root"
go test -tags integration -count=1 -timeout 20m "$@" ./...
