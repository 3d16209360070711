#!/usr/bin/env bash
# Installs what the local stack needs into .cache (git-ignored): a Python
# venv with the pinned emulators, and the ferry binary. Idempotent: a second
# run with the same pins does nothing but rebuild ferry.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

req="$root/infra/local/requirements.txt"
stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing the local stack's emulators into .cache/venv (first run only)…" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
  touch "$stamp"
fi

# Azurite, Azure Storage's emulator (the azblob transport's integration
# tests), pinned, into .cache/azurite: .cache/azurite/node_modules/.bin/azurite-blob.
azurite_version=3.37.0
azurite_stamp="$azurite/.installed-$azurite_version"
if [ ! -f "$azurite_stamp" ]; then
  echo "installing Azurite $azurite_version into .cache/azurite (first run only)…" >&2
  rm -rf "$azurite"
  mkdir -p "$azurite"
  npm install --prefix "$azurite" --no-save --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2
  touch "$azurite_stamp"
fi

mkdir -p "$root/bin"
(cd "$root" && go build -o bin/ferry ./cmd/ferry)
