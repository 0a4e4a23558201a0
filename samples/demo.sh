#!/usr/bin/env bash
# Sets up and runs the demo: the proxy serving samples/ (SockJS at /, the
# bridge at /data), the datereply backend (SockJS), and the bridge sample's
# REP/PUB backend; then prints the URLs to open. Ctrl-C stops everything.
#   bash samples/demo.sh            (HTTP port: PORT=8080 by default)
# Everything listens on 127.0.0.1 only: the zmq ports (9241, 9242) and HTTP.
# Needs Rust and Node.js (npm); fetches sockjs-client from npm, never a CDN.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8080}"

if [ ! -f node_modules/sockjs-client/dist/sockjs.min.js ]; then
  echo "demo: npm ci (sockjs-client for the page)"
  npm ci --no-audit --no-fund --no-progress --loglevel=error
fi
echo "demo: building (release; the first build takes a few minutes)"
cargo build --release --quiet --bin sockjsproxy --example datereply --example bridge_backend

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

target/release/examples/datereply -a 127.0.0.1 & pids+=($!)
target/release/examples/bridge_backend & pids+=($!)
target/release/sockjsproxy -a 127.0.0.1 --http-address 127.0.0.1 --http-port "$PORT" --samples samples \
  --bridge /data --bridge-policy samples/bridge-policy.toml & pids+=($!)

sleep 1
cat <<MSG

  SockJS demo:  http://localhost:$PORT/samples/
  Bridge demo:  http://localhost:$PORT/samples/bridge.html

  (Ctrl-C stops the proxy and the backends.)
MSG
wait -n "${pids[@]}"
