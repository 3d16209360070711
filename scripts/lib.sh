# Shared by the local stack scripts. Source it; it sets paths and helpers.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
venv="$cache/venv"
azurite="$cache/azurite"
# Ory Hydra, built by scripts/install-test-peers.sh at tools/hydra's version.
hydra_bin() { echo "$cache/bin/hydra-$(cd "$root/tools/hydra" && go list -m -f '{{.Version}}' github.com/ory/hydra/v2)"; }
rundir="$cache/run"
mkdir -p "$rundir"
source "$root/scripts/venv.sh"

# Credentials and region for the emulators: moto accepts any.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_EC2_METADATA_DISABLED=true


# free_port prints a TCP port free on loopback now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS waits until URL answers.
wait_http() {
  local url=$1 deadline=$((SECONDS + $2))
  until python3 - "$url" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1)
PY
  do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out waiting for $url" >&2
      return 1
    fi
    sleep 0.2
  done
}

# start_stack MOTO_PORT MESH_PORT starts moto and the MESH sandbox, exports
# what tests and ferry need to reach them, and stops both on exit.
start_stack() {
  local moto_port=$1 mesh_port=$2
  export FERRY_AWS_ENDPOINT FERRY_MESH_URL FERRY_MESH_PORT=$mesh_port
  export FERRY_TLS_DIR="$cache/tls" FERRY_MESH_CA="$cache/tls/ca.pem" FERRY_ROOT="$root"
  trap '"$root/scripts/stack.sh" stop '"$moto_port"'; "$root/scripts/mesh-sandbox.sh" reset '"$mesh_port" EXIT
  FERRY_AWS_ENDPOINT=$("$root/scripts/stack.sh" start "$moto_port")
  FERRY_MESH_URL=$("$root/scripts/mesh-sandbox.sh" start "$mesh_port")
}

# start_azurite PORT starts Azurite's blob service (scripts/azurite.sh),
# exports FERRY_AZURITE_BLOB (its http://127.0.0.1:PORT/devstoreaccount1,
# which transport/azblob's integration tests use), and stops it on exit,
# after whatever EXIT trap is already set.
start_azurite() {
  local port=$1 prev=""
  if [ -n "$(trap -p EXIT)" ]; then
    eval "set -- $(trap -p EXIT)"
    prev="$3; "
  fi
  trap "$prev"'"$root/scripts/azurite.sh" stop '"$port" EXIT
  export FERRY_AZURITE_BLOB
  FERRY_AZURITE_BLOB=$("$root/scripts/azurite.sh" start "$port")
}
