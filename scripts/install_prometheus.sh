#!/usr/bin/env bash
# Debian's prometheus for the end-to-end metrics test (tests/test_prometheus.py starts it with a
# config of its own, scraping `hybrid-quantum metrics`; the package's service is not used).
# Idempotent: nothing to do when a prometheus is on PATH. Installing needs root, as CI has;
# elsewhere it says how and leaves the test to skip.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install_prometheus.sh: no prometheus; the Prometheus test will be skipped." \
    "Install it with: sudo apt-get install -y prometheus" >&2
  exit 0
fi
echo "Installing prometheus (apt-get) for the Prometheus test ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101: the package must not start its own server (no init here, and no port taken)
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus
