#!/usr/bin/env bash
# The Debian packages that building and testing the project need and a fresh machine lacks, installed
# with apt (as root or with sudo). Run by tests/run.sh, and by .ci/run before its first build (clippy).
set -euo pipefail

missing=()
# librdkafka (the Kafka consumer), built from source by rdkafka-sys, needs make and a C++ compiler.
command -v make >/dev/null || missing+=(make)
command -v c++ >/dev/null || missing+=(g++)
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

