#!/usr/bin/env bash
# Installs what the browser tests (tests/browser/*.test.js) need, when missing:
# Debian's chromium (apt), the npm packages of package-lock.json (npm ci:
# sockjs-client, playwright-core), pyzmq for the Python sample backend,
# tnetstring3 for the Python Mongrel2 handler of the tests and
# prometheus_client, whose parsers read /metrics in tests/metrics_exposition.rs.
# Idempotent and quiet: prints only what it installs, and errors. It does not
# build the Rust binaries; the tests need, from the repo root:
#   cargo build --release --bin sockjsproxy --example echo --example datereply
# Usage: tests/browser/setup.sh   (from anywhere; run as root or with sudo)
set -euo pipefail

cd "$(dirname "$0")/../.."

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Chromium from Debian; playwright-core drives it (never `playwright install`).
# Plus fonts for the CJK text and emoji of the sample page's screenshot.
apt_packages=(chromium fonts-wqy-microhei fonts-noto-color-emoji)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  if ! out=$(sudo_if_needed apt-get update -qq 2>&1 \
      && sudo_if_needed apt-get install -y -qq "${missing[@]}" 2>&1); then
    echo "$out" >&2
    echo "setup: apt-get failed" >&2
    exit 1
  fi
fi

# npm packages, exactly as locked; redone only when the lock file changed.
stamp=node_modules/.package-lock.json
if [ ! -f node_modules/sockjs-client/dist/sockjs.min.js ] \
  || [ ! -d node_modules/playwright-core ] \
  || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "setup: npm ci"
  if ! out=$(npm ci --no-audit --no-fund --no-progress --loglevel=error 2>&1); then
    echo "$out" >&2
    echo "setup: npm ci failed" >&2
    exit 1
  fi
fi

# pyzmq for samples/datereply-sjp.py (its test is skipped without it).
if command -v python3 >/dev/null && ! python3 -c 'import zmq' 2>/dev/null; then
  echo "setup: installing pyzmq (pip)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pyzmq \
    || echo "setup: pyzmq not installed; the Python sample test will be skipped" >&2
fi

# tnetstring3 for tests/common/m2_handler.py, the Mongrel2 handler of the
# tests/mongrel2_*.rs tests (which are skipped without it).
if command -v python3 >/dev/null && ! python3 -c 'import tnetstring' 2>/dev/null; then
  echo "setup: installing tnetstring3 (pip)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore tnetstring3 \
    || echo "setup: tnetstring3 not installed; the Mongrel2 handler tests will be skipped" >&2
fi

# prometheus_client for tests/metrics_exposition.rs (a real /metrics parser).
if command -v python3 >/dev/null && ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "setup: installing prometheus_client (pip)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore prometheus_client \
    || echo "setup: prometheus_client not installed; the /metrics parser tests will be skipped" >&2
fi
