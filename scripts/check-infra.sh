#!/usr/bin/env bash
# Checks infra/template.yaml offline: cfn-lint, checkov, sam validate --lint,
# a sam build of the Lambda binary (provided.al2023, arm64), and the
# self-tests of the least-privilege and checkov checks
# (infra/checks/selftest.sh). The tools come
# pinned from infra/requirements-infra.txt, installed on first use into
# .cache/infra-venv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

venv="$cache/infra-venv"
pinned_venv "$venv" "$root/infra/requirements-infra.txt" "the infrastructure tools"

template="$root/infra/template.yaml"
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-eu-west-2} SAM_CLI_TELEMETRY=0
echo "cfn-lint infra/template.yaml (informational rules too)"
"$venv/bin/cfn-lint" -c I -- "$template"
echo "checkov (skips are justified beside each resource, in Metadata.checkov)"
"$venv/bin/checkov" -f "$template" --config-file "$root/infra/checkov.yaml" >"$cache/checkov.log" 2>&1 || { cat "$cache/checkov.log" >&2; exit 1; }
echo "sam validate --lint"
"$venv/bin/sam" validate --lint -t "$template" >/dev/null
echo "sam build (offline, arm64)"
"$root/scripts/sam-build.sh"
echo "self-tests of the checks (least privilege, checkov)"
"$root/infra/checks/selftest.sh"
echo "infra checks passed"
