#!/usr/bin/env bash
# Runs the integration tests against a local stack (moto and the MESH
# sandbox) started on free ports, so it never collides with a running
# `make run`. Stops what it started.
#
# Every `ferry local` the tests start records the AWS calls each function
# makes into .cache/calls/run-*/ (FERRY_CALL_LOG_DIR). Run with no arguments — the
# whole suite — it then checks those calls against the functions' IAM
# policies in infra/template.yaml (infra/checks/least_privilege.py); a -run
# filter would leave statements unused that the whole suite uses, so then
# the check is skipped.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
"$root/scripts/install.sh"
"$root/scripts/install-test-peers.sh"
start_stack "$(free_port)" "$(free_port)"
start_azurite "$(free_port)"

export FERRY_BIN="$root/bin/ferry"
# Ory Hydra, the OIDC issuer the HTTP API's token tests get tokens from.
export FERRY_HYDRA
FERRY_HYDRA=$(hydra_bin)
export FERRY_MAILPIT="$cache/mailpit/mailpit"
# schemathesis, for the HTTP API's fuzz test, in a venv of its own.
api_venv="$cache/api-test-venv"
pinned_venv "$api_venv" "$root/api/requirements-test.txt" "schemathesis"
export FERRY_SCHEMATHESIS="$api_venv/bin/st"
# A directory of this run's own, so that runs side by side (a -run filter
# beside the whole suite) do not mix their recordings; a day's are kept.
mkdir -p "$cache/calls"
find "$cache/calls" -mindepth 1 -maxdepth 1 -type d -mtime +0 -exec rm -rf {} +
export FERRY_CALL_LOG_DIR
FERRY_CALL_LOG_DIR=$(mktemp -d "$cache/calls/run-XXXXXX")
cd "$root"
# -p 1: the packages share one MESH sandbox, whose inboxes ferry local polls.
go test -tags integration -count=1 -p 1 -timeout 25m "$@" ./...

if [ $# -eq 0 ]; then
  infra_venv="$cache/infra-venv"
  pinned_venv "$infra_venv" "$root/infra/requirements-infra.txt" "the infrastructure tools"
  echo "least privilege: the recorded calls against infra/template.yaml's policies"
  "$infra_venv/bin/python" "$root/infra/checks/least_privilege.py" \
    --template "$root/infra/template.yaml" --stack "$root/infra/local/stack.json" \
    --output "$FERRY_CALL_LOG_DIR/least-privilege.txt" "$FERRY_CALL_LOG_DIR"
fi
