#!/usr/bin/env bash
# make run: the whole service on the local stack. Installs what it needs,
# starts moto, NHS England's MESH sandbox and `ferry local`, sends a sample
# multi-chunk file to S3 and another through MESH (X26ABC1 → X26ABC2, which
# ferry also polls, so the second lands in inbound/X26ABC2/), prints their
# timelines live, then stays up. Ctrl-C stops everything it started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$root"

port=${FERRY_MOTO_PORT:-4570}
mesh_port=${FERRY_MESH_PORT:-4571}
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
mkdir -p .ferry
log=.ferry/ferry-local.log

local_pid=
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping…"
  [ -n "$local_pid" ] && kill "$local_pid" 2>/dev/null && wait "$local_pid" 2>/dev/null || true
  if $started_moto; then "$root/scripts/stack.sh" stop "$port"; fi
  if $started_mesh; then "$root/scripts/mesh-sandbox.sh" stop "$mesh_port"; fi
  exit 0
}
trap cleanup INT TERM EXIT

bin/ferry local --state-dir .ferry >"$log" 2>&1 &
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

sample=.ferry/sample-report.csv
if [ ! -f "$sample" ]; then
  # 40 MiB of random bytes: three 16 MiB chunks on the local-s3 route.
  head -c $((40 * 1024 * 1024)) /dev/urandom >"$sample"
fi
echo "== ferry is running on the local stack ($endpoint); logs: $log"
echo "== sending $sample (40 MiB, 3 chunks) from org-a to org-b"
bin/ferry send "$sample" --key outbound/sample-report.csv \
  --meta sender=org-a --meta recipient=org-b --meta subject=weekly+figures \
  --watch --observe-queue "$observer"
src_sum=$(sha256sum "$sample" | cut -d' ' -f1)
echo "== source sha256 $src_sum"

mesh_sample=.ferry/sample-mesh.csv
if [ ! -f "$mesh_sample" ]; then
  # 48 MiB of CSV: three 20 MiB MESH chunks, gzip-compressed on the way.
  python3 -c 'import sys
w = sys.stdout.write
i = 0
while i < 1300000:
    w("%010d,patient-%08d,result,%05d\n" % (i, i % 99991, i % 65521)); i += 1' | head -c $((48 * 1024 * 1024)) >"$mesh_sample"
fi
echo
echo "== sending $mesh_sample (48 MiB, 3 chunks) through MESH: mailbox X26ABC1's folder, so its"
echo "   outbound mapping supplies mex-to X26ABC2 and workflow TEST_WORKFLOW"
bin/ferry send "$mesh_sample" --key outbound/mesh/X26ABC1/sample-mesh.csv \
  --meta mex-subject=weekly+results --meta mex-localid=demo-1 \
  --watch --until acknowledged --observe-queue "$observer"
echo "== ferry polled X26ABC2, landed the message in S3 and acknowledged it (which MESH tracking reported back):"
bin/ferry history --route mesh-inbound --since 1h

cat <<TXT

== ferry is up. Send another file (in another shell):

  export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 FERRY_S3_PATH_STYLE=true
  bin/ferry send FILE --meta sender=org-a --meta recipient=org-b --watch
  # or with the aws CLI:
  aws s3 cp FILE s3://ferry-local/outbound/FILE --metadata sender=org-a,recipient=org-b

  # through MESH (metadata as NHS England's client reads it):
  bin/ferry send FILE --key outbound/mesh/FILE --meta mex-from=X26ABC1 --meta mex-to=X26ABC2 --meta mex-workflowid=TEST_WORKFLOW --watch

  bin/ferry history --status DELIVERED --since 1h
  bin/ferry history --status FAILED --since 1h
  bin/ferry show TRANSFER_ID

Ctrl-C stops ferry local, the emulator and the MESH sandbox.
TXT
wait "$local_pid"
