#!/usr/bin/env bash
# make deploy-console: uploads the web console (console/*.html, *.js,
# *.css) to the stack's console bucket, writes its config.json from the
# stack's outputs (ApiUrl, LiveUrl) and invalidates the distribution, with
# the AWS CLI and your credentials. The stack is the first argument, else
# FERRY_STACK, else samconfig.toml's stack_name (make deploy writes it).
# The stack must have been deployed with ConsoleHosting=cloudfront (the
# default). Files go up with Cache-Control: no-cache, so browsers check
# for a new console on every visit (and get 304s meanwhile).
#
# It does not source lib.sh, whose emulator credentials would replace yours.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v aws >/dev/null || { echo "deploy-console: the AWS CLI (aws) is not installed" >&2; exit 1; }
stack=${1:-${FERRY_STACK:-}}
if [ -z "$stack" ] && [ -f "$root/samconfig.toml" ]; then
  stack=$(sed -n 's/^stack_name *= *"\(.*\)"/\1/p' "$root/samconfig.toml" | head -n1)
fi
[ -n "$stack" ] || { echo "usage: scripts/deploy-console.sh STACK (or FERRY_STACK, or deploy once with make deploy)" >&2; exit 2; }

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}
bucket=$(output ConsoleBucket)
distribution=$(output ConsoleDistributionId)
url=$(output ConsoleUrl)
api=$(output ApiUrl)
live=$(output LiveUrl)
if [ "$bucket" = None ] || [ -z "$bucket" ]; then
  echo "deploy-console: stack $stack has no console bucket (deployed with ConsoleHosting=none?)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$api" "$live" >"$tmp/config.json" <<'PY'
import json, sys
print(json.dumps({"api": sys.argv[1].rstrip("/"), "live": sys.argv[2].rstrip("/")}))
PY

echo "uploading the console to s3://$bucket/" >&2
aws s3 sync "$root/console/" "s3://$bucket/" --delete --only-show-errors \
  --exclude '*' --include '*.html' --include '*.js' --include '*.css' \
  --cache-control no-cache
aws s3 cp "$tmp/config.json" "s3://$bucket/config.json" --only-show-errors \
  --content-type application/json --cache-control no-cache
aws cloudfront create-invalidation --distribution-id "$distribution" --paths '/*' --query Invalidation.Id --output text >/dev/null
echo "console: $url (API $api, live $live)"
