#!/usr/bin/env bash
# Starts or stops NHS England's MESH sandbox on loopback, over mutual TLS
# with the local stack's private CA (scripts/gen-certs.py), storing messages
# in files so a restart keeps them.
#   scripts/mesh-sandbox.sh start [PORT]   idempotent; prints the base URL
#   scripts/mesh-sandbox.sh stop [PORT]
# PORT defaults to $FERRY_MESH_PORT or 4571. Mailboxes X26ABC1-3, password
# "password", shared key "TestKey" (the sandbox's own test accounts).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

cmd=${1:-}
port=${2:-${FERRY_MESH_PORT:-4571}}
pidfile="$rundir/mesh-$port.pid"
certs="$cache/tls"
data="$rundir/mesh-$port-data"
url="https://127.0.0.1:$port"

case "$cmd" in
start)
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "$url"
    exit 0
  fi
  "$venv/bin/python" "$root/scripts/gen-certs.py" "$certs"
  mkdir -p "$data"
  (cd "$rundir" && STORE_MODE=file MAILBOXES_DATA_DIR="$data" AUTH_MODE=full SHARED_KEY=TestKey \
    exec "$venv/bin/uvicorn" mesh_sandbox.api:app --host 127.0.0.1 --port "$port" \
      --ssl-keyfile "$certs/server.key" --ssl-certfile "$certs/server.pem" \
      --ssl-ca-certs "$certs/ca.pem" --ssl-cert-reqs 2 --log-level warning) \
    >"$rundir/mesh-$port.log" 2>&1 &
  echo $! >"$pidfile"
  deadline=$((SECONDS + 60))
  until curl -sf --cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client.key" "$url/health" >/dev/null; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "MESH sandbox did not start:" >&2
      cat "$rundir/mesh-$port.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "$url"
  ;;
stop)
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
  ;;
reset)
  "$0" stop "$port"
  rm -rf "$data"
  ;;
*)
  echo "usage: $0 start|stop|reset [PORT]" >&2
  exit 2
  ;;
esac
