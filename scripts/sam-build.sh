#!/usr/bin/env bash
# sam build of infra/template.yaml into .cache/sam-build/out, offline: one
# arm64 bootstrap binary (BuildMethod go1.x from functions/bootstrap), then
# a check that each function's copy is the same arm64 ELF. Used by make
# check-infra and make deploy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
source "$root/scripts/venv.sh"
venv="$cache/infra-venv"
pinned_venv "$venv" "$root/infra/requirements-infra.txt" "the infrastructure tools"

build="$cache/sam-build"
mkdir -p "$build"
(cd "$root" && SAM_CLI_TELEMETRY=0 GOFLAGS="-buildvcs=false -tags=lambda.norpc" "$venv/bin/sam" build \
  -t "$root/infra/template.yaml" -b "$build/out" --cache-dir "$build/cache" >"$build.log" 2>&1) || { cat "$build.log" >&2; exit 1; }
for fn in "$build"/out/*Function; do
  # ELF e_machine (2 bytes at offset 18) is 0xb7 for aarch64.
  if [ "$(od -An -tx1 -j18 -N2 "$fn/bootstrap" | tr -d ' \n')" != "b700" ]; then
    echo "sam-build: $fn/bootstrap is not an arm64 binary" >&2
    exit 1
  fi
done
# One artifact: every function runs the same binary, which sam package
# uploads once (its S3 key is the content's hash).
if [ "$(sha256sum "$build"/out/*Function/bootstrap | cut -d' ' -f1 | sort -u | wc -l)" != 1 ]; then
  echo "sam-build: the functions' bootstrap binaries differ" >&2
  exit 1
fi
