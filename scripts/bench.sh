#!/usr/bin/env bash
# Runs the benchmarks against a local stack started on a free port.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$root/scripts/install.sh"

port=$(free_port)
endpoint=$("$root/scripts/stack.sh" start "$port")
trap '"$root/scripts/stack.sh" stop "$port"' EXIT

export FERRY_AWS_ENDPOINT=$endpoint
export FERRY_BIN="$root/bin/ferry"
cd "$root"
go test -tags integration -run '^$' -bench . -benchtime 1x -timeout 30m ./integration/
