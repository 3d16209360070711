#!/usr/bin/env bash
# Installs what the local stack needs into .cache (git-ignored): a Python
# venv with the pinned emulators, and the ferry binary. Idempotent: a second
# run with the same pins does nothing but rebuild ferry. What only the tests
# need (sshd, Azurite) is scripts/install-test-peers.sh's.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

pinned_venv "$venv" "$root/infra/local/requirements.txt" "the local stack's emulators"
mkdir -p "$root/bin"
(cd "$root" && go build -o bin/ferry ./cmd/ferry)
