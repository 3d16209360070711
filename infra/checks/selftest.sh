#!/usr/bin/env bash
# Self-tests of the infrastructure checks: least_privilege.py's unit tests
# (test_*.py), then copies of infra/template.yaml broken on purpose, each of
# which least_privilege.py or checkov must reject (selftest.py). Uses the infra venv (.cache/infra-venv), installing it
# on first use.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

infra_venv="$cache/infra-venv"
pinned_venv "$infra_venv" "$root/infra/requirements-infra.txt" "the infrastructure checks' tools"
cd "$root"
export AWS_DEFAULT_REGION=us-east-1
"$infra_venv/bin/python" -m unittest discover -s infra/checks -p 'test_*.py'
"$infra_venv/bin/python" infra/checks/selftest.py
