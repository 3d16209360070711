#!/usr/bin/env bash
# Checks infra/template.yaml offline: cfn-lint, sam validate --lint, a sam
# build of the Lambda binary (provided.al2023, arm64), and the self-tests of
# the least-privilege and checkov checks (infra/checks/selftest.sh). The tools come
# pinned from infra/requirements-infra.txt, installed on first use into
# .cache/infra-venv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

venv="$cache/infra-venv"
pinned_venv "$venv" "$root/infra/requirements-infra.txt" "the infrastructure checks' tools"

template="$root/infra/template.yaml"
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-eu-west-2} SAM_CLI_TELEMETRY=0
echo "cfn-lint infra/template.yaml"
"$venv/bin/cfn-lint" "$template"
echo "sam validate --lint"
"$venv/bin/sam" validate --lint -t "$template" >/dev/null
echo "sam build (offline, arm64)"
build="$cache/sam-build"
(cd "$root" && GOFLAGS="-buildvcs=false -tags=lambda.norpc" "$venv/bin/sam" build -t "$template" \
  -b "$build/out" --cache-dir "$build/cache" >"$build.log" 2>&1) || { cat "$build.log" >&2; exit 1; }
for fn in "$build"/out/*Function; do
  # ELF e_machine (2 bytes at offset 18) is 0xb7 for aarch64.
  if [ "$(od -An -tx1 -j18 -N2 "$fn/bootstrap" | tr -d ' \n')" != "b700" ]; then
    echo "check-infra: $fn/bootstrap is not an arm64 binary" >&2
    exit 1
  fi
done
echo "self-tests of the checks (least privilege, checkov)"
"$root/infra/checks/selftest.sh"
echo "infra checks passed"
