#!/usr/bin/env bash
# make deploy: sam build, then sam deploy --guided into the AWS account and
# region your credentials and AWS_REGION (or profile) name. The first run
# asks for the stack name and parameters (see README, "Deploying") and
# saves the answers in samconfig.toml; later runs reuse them. Arguments
# go to sam deploy (e.g. --no-confirm-changeset).
#
# It does not source lib.sh, whose emulator credentials would replace yours.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/sam-build.sh"
cd "$root"
guided=(--guided)
[ -f samconfig.toml ] && guided=()
SAM_CLI_TELEMETRY=0 exec "$root/.cache/infra-venv/bin/sam" deploy "${guided[@]}" \
  --template-file "$root/.cache/sam-build/out/template.yaml" \
  --capabilities CAPABILITY_IAM "$@"
