# Shared by the local stack scripts. Source it; it sets paths and helpers.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
venv="$cache/venv"
rundir="$cache/run"
mkdir -p "$rundir"

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
