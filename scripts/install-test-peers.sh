#!/usr/bin/env bash
# Installs the peers only the integration tests and benchmarks use, beyond
# the local stack (scripts/install.sh): OpenSSH's sshd, Azurite and Mailpit.
# Idempotent; `make run` does not need them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The sftp transport's integration tests run a real OpenSSH sshd.
if [ ! -x /usr/sbin/sshd ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "installing openssh-server (sshd, for transport/sftp's integration tests)…" >&2
    # Install only: no sshd service started on port 22 (tests start their
    # own on loopback). policy-rc.d tells the package not to start it.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
    [ -z "$policy" ] || rm -f "$policy"
  else
    echo "note: /usr/sbin/sshd is missing; transport/sftp's integration tests need it: install openssh-server (apt-get install openssh-server as root)" >&2
  fi
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

# Mailpit, an SMTP server with an API for what it received (the email
# transport's integration tests), pinned, built from its Go module into
# .cache/mailpit/mailpit.
mailpit_version=v1.33.1
mailpit_stamp="$cache/mailpit/.installed-$mailpit_version"
if [ ! -f "$mailpit_stamp" ]; then
  echo "building Mailpit $mailpit_version into .cache/mailpit (first run only)…" >&2
  mkdir -p "$cache/mailpit"
  GOBIN="$cache/mailpit" go install "github.com/axllent/mailpit@$mailpit_version" >&2
  touch "$mailpit_stamp"
fi
