#!/usr/bin/env bash
# Installs Debian's nginx for the scale-out test (tests/scaleout.rs) when it is
# missing. Idempotent and quiet: prints only what it installs, and errors. The
# test runs its own nginx on a free port with its own prefix; the package's
# system service is neither needed nor started here.
# Usage: tests/nginx-setup.sh   (run as root or with sudo)
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

echo "setup: installing nginx (apt)"
export DEBIAN_FRONTEND=noninteractive
if ! out=$(sudo_if_needed apt-get update -qq 2>&1 \
    && sudo_if_needed apt-get install -y -qq nginx 2>&1); then
  echo "$out" >&2
  echo "setup: apt-get failed" >&2
  exit 1
fi
