#!/usr/bin/env bash
# Runs the benchmarks against a local stack started on free ports.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$root/scripts/install.sh"
"$root/scripts/install-test-peers.sh"
start_stack "$(free_port)" "$(free_port)"
start_azurite "$(free_port)"

export FERRY_BIN="$root/bin/ferry"
cd "$root"
go test -tags integration -run '^$' -bench . -benchtime 1x -timeout 30m "$@" ./integration/
