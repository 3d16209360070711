#!/usr/bin/env bash
# Installs the peers only the integration tests and benchmarks use, beyond
# the local stack (scripts/install.sh): OpenSSH's sshd, Azurite, Ory Hydra, Mailpit and
# Chromium (the console's browser test).
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

# Ory Hydra, the OIDC issuer of the HTTP API's token tests, at the version
# tools/hydra/go.mod pins (a module of its own, so ferry's go.mod stays
# clean), built with SQLite (for DSN=memory) into .cache/bin/hydra-VERSION.
# A first build takes about two minutes on two cores with an empty build
# cache (plus its modules' download); the binary is then kept.
hydra=$(hydra_bin)
hydra_version=${hydra##*/hydra-}
if [ ! -x "$hydra" ]; then
  echo "building Ory Hydra $hydra_version into .cache/bin (first run only)…" >&2
  mkdir -p "$cache/bin"
  (cd "$root/tools/hydra" && CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension \
    -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$hydra_version" \
    -o "$hydra.tmp" github.com/ory/hydra/v2)
  mv "$hydra.tmp" "$hydra"
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

# Chromium, the browser the console's test drives (chromedp, over the
# DevTools protocol), Debian's package at a pinned version.
chromium_version=156.0.8078.114-1~deb12u1
if ! dpkg-query -W -f '${Version}' chromium 2>/dev/null | grep -qxF "$chromium_version"; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "installing chromium $chromium_version (the console's browser test)…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "chromium=$chromium_version" >/dev/null
  else
    echo "note: chromium $chromium_version is missing; the console's browser test needs it: apt-get install chromium=$chromium_version as root" >&2
  fi
fi
