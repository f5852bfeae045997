#!/usr/bin/env bash
# Debian's chromium for the browser test (tests/test_browser.py drives it with Playwright; no
# browser download). Idempotent: nothing to do when a chromium is on PATH. Installing needs
# root, as CI has; elsewhere it says how and leaves the test to skip.
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    exit 0
  fi
done
if [ "$(id -u)" != 0 ]; then
  echo "install_browser.sh: no chromium; the browser test will be skipped." \
    "Install it with: sudo apt-get install -y chromium" >&2
  exit 0
fi
echo "Installing chromium (apt-get) for the browser test ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
