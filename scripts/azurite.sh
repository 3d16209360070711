#!/usr/bin/env bash
# Starts or stops Azurite's blob service (Azure Storage's emulator, for
# transport/azblob) on loopback, from .cache/azurite (scripts/install-test-peers.sh).
#   scripts/azurite.sh start [PORT]   idempotent; prints the service URL
#   scripts/azurite.sh stop [PORT]    also deletes the emulator's data
# PORT defaults to $FERRY_AZURITE_PORT or 4572. The account is Azurite's
# well-known devstoreaccount1, whose key is public (Azurite's README):
#   Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cmd=${1:-}
port=${2:-${FERRY_AZURITE_PORT:-4572}}
pidfile="$rundir/azurite-$port.pid"
data="$rundir/azurite-$port-data"
url="http://127.0.0.1:$port/devstoreaccount1"

case "$cmd" in
start)
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$url"
    exit 0
  fi
  bin="$azurite/node_modules/.bin/azurite-blob"
  if [ ! -x "$bin" ]; then
    echo "Azurite is not installed at $bin: run scripts/install-test-peers.sh" >&2
    exit 1
  fi
  mkdir -p "$data"
  "$bin" --blobHost 127.0.0.1 --blobPort "$port" --location "$data" \
    --skipApiVersionCheck --loose >"$rundir/azurite-$port.log" 2>&1 &
  echo $! >"$pidfile"
  deadline=$((SECONDS + 60))
  # Any HTTP answer will do: Azurite refuses an unsigned request.
  until curl -s -o /dev/null "$url?comp=list"; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "Azurite did not start:" >&2
      cat "$rundir/azurite-$port.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "$url"
  ;;
stop)
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    # On SIGINT Azurite saves its metadata and says "successfully closed",
    # but its process may linger for seconds after: kill it once it has
    # said so, or after 20s.
    kill -INT "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ] &&
      ! grep -q "successfully closed" "$rundir/azurite-$port.log" 2>/dev/null; do
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  rm -rf "$data"
  ;;
*)
  echo "usage: $0 start|stop [PORT]" >&2
  exit 2
  ;;
esac
