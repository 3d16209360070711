#!/usr/bin/env bash
# Starts or stops the local AWS emulator (moto server) on loopback.
#   scripts/stack.sh start [PORT]   idempotent; prints the endpoint URL
#   scripts/stack.sh stop [PORT]
# PORT defaults to $FERRY_MOTO_PORT or 4570.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cmd=${1:-}
port=${2:-${FERRY_MOTO_PORT:-4570}}
pidfile="$rundir/moto-$port.pid"
url="http://127.0.0.1:$port"

case "$cmd" in
start)
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$url"
    exit 0
  fi
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$rundir/moto-$port.log" 2>&1 &
  echo $! >"$pidfile"
  wait_http "$url/moto-api/data.json" 60 || { cat "$rundir/moto-$port.log" >&2; exit 1; }
  echo "$url"
  ;;
stop)
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  ;;
*)
  echo "usage: $0 start|stop [PORT]" >&2
  exit 2
  ;;
esac
