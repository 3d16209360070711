#!/usr/bin/env bash
# Runs the benchmarks against a local stack started on free ports.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$root/scripts/install.sh"
"$root/scripts/install-test-peers.sh"
# wrk loads the HTTP API (BenchmarkAPI): Debian's, pinned.
wrk_version=4.1.0-3+b2
if ! command -v wrk >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "installing wrk $wrk_version (for BenchmarkAPI)…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "wrk=$wrk_version" >/dev/null
  else
    echo "note: wrk is missing; BenchmarkAPI needs it: apt-get install wrk" >&2
  fi
fi
start_stack "$(free_port)" "$(free_port)"
start_azurite "$(free_port)"

export FERRY_BIN="$root/bin/ferry"
# Ory Hydra, the OIDC issuer the integration harness starts (TestMain needs it).
export FERRY_HYDRA
FERRY_HYDRA=$(hydra_bin)
export FERRY_MAILPIT="$cache/mailpit/mailpit"
cd "$root"
go test -tags integration -run '^$' -bench . -benchtime 1x -timeout 60m "$@" ./integration/
