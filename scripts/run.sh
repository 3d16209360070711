#!/usr/bin/env bash
# make run: the whole service on the local stack. Installs what it needs,
# starts moto, NHS England's MESH sandbox and `ferry local`, sends a sample
# multi-chunk file to S3 and another through MESH (put in the MESH bucket as
# NHS England's MESH client expects, X26ABC1 → X26ABC2, which ferry also
# polls, so it lands in the same bucket's inbound/X26ABC2/), prints their
# timelines live, then stays up. Ctrl-C stops everything it started.
#
# Settings (environment): FERRY_MOTO_PORT (4570), FERRY_MESH_PORT (4571),
# FERRY_API_PORT (4572, the HTTP API), FERRY_LIVE_PORT (4573, the WebSocket API),
# FERRY_CONSOLE_PORT (4574, the web console), FERRY_SMTP_PORT (4575, email in);
# FERRY_STATE_DIR (.ferry) for checkpoints, logs and the sample files;
# FERRY_RUN_ONCE=1 runs the demo to its end and exits (0 when every sample
# was delivered) instead of staying up — `make test` runs it that way, on
# free ports and a fresh state dir, as a newcomer's first run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$root"

port=${FERRY_MOTO_PORT:-4570}
mesh_port=${FERRY_MESH_PORT:-4571}
api_port=${FERRY_API_PORT:-4572}
live_port=${FERRY_LIVE_PORT:-4573}
smtp_port=${FERRY_SMTP_PORT:-4575}
console_port=${FERRY_CONSOLE_PORT:-4574}
state=${FERRY_STATE_DIR:-.ferry}
once=${FERRY_RUN_ONCE:-}
"$root/scripts/install.sh"

started_moto=false
if ! wait_http "http://127.0.0.1:$port/moto-api/data.json" 0 2>/dev/null; then
  started_moto=true
fi
started_mesh=false
[ -f "$rundir/mesh-$mesh_port.pid" ] && kill -0 "$(cat "$rundir/mesh-$mesh_port.pid")" 2>/dev/null || started_mesh=true
endpoint=$("$root/scripts/stack.sh" start "$port")
export FERRY_MESH_URL=$("$root/scripts/mesh-sandbox.sh" start "$mesh_port")
export FERRY_TLS_DIR="$cache/tls"

export AWS_ENDPOINT_URL=$endpoint
export FERRY_S3_PATH_STYLE=true
export FERRY_ROUTES=${FERRY_ROUTES:-$root/infra/local/routes.json}
mkdir -p "$state"
log=$state/ferry-local.log

local_pid=
cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  # Ctrl-C (or TERM) is how a kept-up stack is meant to stop.
  if [ -z "$once" ] && { [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; }; then rc=0; fi
  echo
  echo "stopping…"
  [ -n "$local_pid" ] && kill "$local_pid" 2>/dev/null && wait "$local_pid" 2>/dev/null || true
  if $started_moto; then "$root/scripts/stack.sh" stop "$port"; fi
  if $started_mesh; then
    # A one-off run leaves no messages behind; a kept-up stack keeps them.
    if [ -n "$once" ]; then "$root/scripts/mesh-sandbox.sh" reset "$mesh_port"; else "$root/scripts/mesh-sandbox.sh" stop "$mesh_port"; fi
  fi
  if [ "$rc" -ne 0 ] && [ -f "$log" ]; then
    echo "== the demo failed (exit $rc); the end of ferry local's log ($log):" >&2
    tail -n 40 "$log" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin/ferry local --state-dir "$state" --api "127.0.0.1:$api_port" --live "127.0.0.1:$live_port" \
  --console "127.0.0.1:$console_port" --smtp "127.0.0.1:$smtp_port" >"$log" 2>&1 &
local_pid=$!
deadline=$((SECONDS + 60))
until grep -q "ferry local: ready" "$log" 2>/dev/null; do
  if ! kill -0 "$local_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
    echo "ferry local did not start; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
observer=$(grep -o '"observerQueue":"[^"]*"' "$log" | head -1 | cut -d'"' -f4)
api=$(grep -o '"api":"[^"]*"' "$log" | head -1 | cut -d'"' -f4)
console=$(grep -o '"console":"[^"]*"' "$log" | head -1 | cut -d'"' -f4)

sample=$state/sample-report.csv
if [ ! -f "$sample" ]; then
  # 40 MiB of random bytes: three 16 MiB chunks on the local-s3 route.
  head -c $((40 * 1024 * 1024)) /dev/urandom >"$sample.tmp"
  mv "$sample.tmp" "$sample"
fi
echo "== ferry is running on the local stack ($endpoint); logs: $log"
echo "== the web console: $console (sign in with a key: bin/ferry keys create --party ops --role operator)"
echo "== sending $sample (40 MiB, 3 chunks) from org-a to org-b"
bin/ferry send "$sample" --key outbound/sample-report.csv \
  --meta sender=org-a --meta recipient=org-b --meta subject=weekly+figures \
  --watch --observe-queue "$observer"
src_sum=$(sha256sum "$sample" | cut -d' ' -f1)
echo "== source sha256 $src_sum"

mesh_sample=$state/sample-mesh.csv
if [ ! -f "$mesh_sample" ]; then
  # 48 MiB of CSV: three 20 MiB MESH chunks, gzip-compressed on the way.
  # Python writes the file itself (no pipe for it to break) and cuts it to
  # the exact size; the rename makes an interrupted run start afresh.
  python3 - "$mesh_sample.tmp" $((48 * 1024 * 1024)) <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    i = 0
    while f.tell() < size:
        f.write("".join("%010d,patient-%08d,result,%05d\n" % (j, j % 99991, j % 65521) for j in range(i, i + 10000)))
        i += 10000
    f.truncate(size)
PY
  mv "$mesh_sample.tmp" "$mesh_sample"
fi
echo
echo "== sending $mesh_sample (48 MiB, 3 chunks) through MESH, as NHS England's MESH client"
echo "   would: put in the MESH bucket under outbound/X26ABC1/, so that mailbox's outbound"
echo "   mapping supplies mex-to X26ABC2 and workflow TEST_WORKFLOW"
bin/ferry send "$mesh_sample" --bucket ferry-local-mesh --key outbound/X26ABC1/sample-mesh.csv \
  --meta mex-subject=weekly+results --meta mex-localid=demo-1 \
  --watch --until acknowledged --observe-queue "$observer"
echo "== ferry polled X26ABC2, landed the message in s3://ferry-local-mesh/inbound/X26ABC2/ and"
echo "   acknowledged it (which MESH tracking reported back):"
bin/ferry history --route mesh-inbound --since 1h

echo
echo "== the HTTP API on $api: a partner key for org-a (ferry keys create), a file posted with curl"
key=$(bin/ferry keys create --party org-a --label "make run demo" 2>/dev/null)
printf 'id,value\n1,42\n2,43\n' >"$state/api-sample.csv"
echo "   curl -H 'Authorization: Bearer fry_…' --data-binary @api-sample.csv '$api/transfers?recipient=org-b&filename=api-sample.csv'"
posted=$(curl -sS -H "Authorization: Bearer $key" -H 'Content-Type: text/csv' --data-binary @"$state/api-sample.csv" \
  "$api/transfers?recipient=org-b&filename=api-sample.csv")
echo "   → $posted"
id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$posted")
for _ in $(seq 150); do
  shown=$(curl -sS -H "Authorization: Bearer $key" "$api/transfers/$id")
  status=$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("status", ""))' <<<"$shown")
  [ "$status" = DELIVERED ] && break
  sleep 0.2
done
echo "   curl -H 'Authorization: Bearer fry_…' $api/transfers/$id"
echo "   → $shown"
if [ "$status" != DELIVERED ]; then
  echo "== the posted file was not delivered" >&2
  exit 1
fi

echo
echo "== ferry doctor: each partner checked, and logged in to, without sending anything"
if ! bin/ferry doctor; then
  echo "== a partner is unhealthy (above)" >&2
  exit 1
fi

if [ -n "$once" ]; then
  echo
  echo "== demo complete: every sample delivered (FERRY_RUN_ONCE is set, so stopping)"
  exit 0
fi

cat <<TXT

== ferry is up. Send another file (in another shell):

  export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 FERRY_S3_PATH_STYLE=true
  bin/ferry send FILE --meta sender=org-a --meta recipient=org-b --watch
  # or with the aws CLI:
  aws s3 cp FILE s3://ferry-local/outbound/FILE --metadata sender=org-a,recipient=org-b

  # through MESH, as with NHS England's MESH client: the MESH bucket's outbound/
  bin/ferry send FILE --bucket ferry-local-mesh --key outbound/X26ABC1/FILE \
    --meta mex-from=X26ABC1 --meta mex-to=X26ABC2 --meta mex-workflowid=TEST_WORKFLOW --watch
  # received messages: s3://ferry-local-mesh/inbound/{mailbox}/{message_id}.dat

  # through the HTTP API (api/openapi.yaml), with the demo key or one of your own:
  key=\$(bin/ferry keys create --party org-a)
  curl -H "Authorization: Bearer \$key" --data-binary @FILE '$api/transfers?recipient=org-b&filename=FILE'
  curl -H "Authorization: Bearer \$key" '$api/transfers?status=DELIVERED'

  bin/ferry history --status DELIVERED --since 1h
  bin/ferry history --status FAILED --since 1h
  bin/ferry show TRANSFER_ID
  bin/ferry doctor            # every partner checked without sending anything

  # the web console: open $console and sign in with a key, e.g. an operator's
  bin/ferry keys create --party ops --role operator

Ctrl-C stops ferry local, the emulator and the MESH sandbox.
TXT
wait "$local_pid"
