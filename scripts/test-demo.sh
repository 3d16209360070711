#!/usr/bin/env bash
# Runs `make run`'s demo to its end, as a newcomer's first run would: a fresh
# state dir (so the sample files are generated anew) and free ports (so it
# never collides with a running `make run`). Fails if any sample is not
# delivered.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
state=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo-XXXXXX")
trap 'rm -rf "$state"' EXIT
FERRY_RUN_ONCE=1 FERRY_STATE_DIR="$state" FERRY_MOTO_PORT=$(free_port) FERRY_MESH_PORT=$(free_port) FERRY_API_PORT=$(free_port) \
  FERRY_LIVE_PORT=$(free_port) FERRY_CONSOLE_PORT=$(free_port) FERRY_SMTP_PORT=$(free_port) \
  "$root/scripts/run.sh"
