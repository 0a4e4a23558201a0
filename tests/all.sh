#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first:
#   bash tests/all.sh
# Rust unit and integration tests (real proxy, real zmq peers, real HTTP and
# websockets over loopback), then the browser tests (real sockjs-client in
# Debian's headless Chromium). One release build serves all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies (chromium, npm packages, pyzmq, nginx) if missing"
bash tests/browser/setup.sh
bash tests/nginx-setup.sh

echo "== building (release)"
start=$SECONDS
cargo build --release --all-targets --locked
echo "== release build took $((SECONDS - start)) s"

echo "== Rust tests"
cargo test --release --locked 2>&1

echo "== browser tests"
node --test --test-concurrency=1 tests/browser/ tests/browser-bridge/
