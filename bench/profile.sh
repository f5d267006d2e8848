#!/usr/bin/env bash
# CPU profiles of nginx and nginx-rs under the same wrk load (issue 7), on 127.0.0.1 only.
#
#   bench/profile.sh                              # keepalive config, 64 connections, 5 s each
#   CONNS=512 DURATION=5 bench/profile.sh
#   NGINX_RS=target/release/nginx-rs bench/profile.sh   # skip the release build
#   ACCESS_LOG=1 bench/profile.sh               # with access_log in the combined format
#   UPSTREAM_KEEPALIVE=1024 CONNS=512 bench/profile.sh   # no upstream connect churn (default 32)
#   RECORD=0 ONLY=nginx-rs NGINX_RS=/tmp/a bench/profile.sh   # CPU per request only
#
# Same setup as bench/run.sh's keepalive variant (three `return 200` backends in one nginx, the
# proxy pinned to PROXY_CPU, wrk and backends to LOAD_CPU). For each proxy in turn: a 1 s wrk
# warm-up, then wrk for DURATION seconds while `perf record --call-graph dwarf` samples the
# proxy's processes (cpu-clock: VMs often have no hardware counters). Writes
# bench/profiles/<proxy>-c<CONNS>.svg (inferno flamegraphs; `cargo install inferno` when
# missing), <proxy>-c<CONNS>.folded (collapsed stacks, for grep) and stat.txt with user and
# system CPU microseconds per request (from /proc, as bench/run.sh).
# Needs perf, wrk, taskset, nginx; root or perf_event_paranoid <= 1 for kernel stacks.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-18100}
NGINX=${NGINX:-/usr/sbin/nginx}
FREQ=${FREQ:-999}
RECORD=${RECORD:-1}
ACCESS_LOG=${ACCESS_LOG:-0}
UPSTREAM_KEEPALIVE=${UPSTREAM_KEEPALIVE:-32}
CLK_TCK=$(getconf CLK_TCK)
ONLY=${ONLY:-"nginx nginx-rs"}
OUT=bench/profiles
PROXY_PORT=$((BASE_PORT + 80))
B1=$((BASE_PORT + 1)) B2=$((BASE_PORT + 2)) B3=$((BASE_PORT + 3))
WORK=$(mktemp -d /tmp/nginx-rs-profile.XXXXXX)
mkdir -p "$OUT"

for tool in wrk taskset perf "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
if [ "$RECORD" = 1 ] && ! command -v inferno-flamegraph >/dev/null; then
    cargo install --quiet inferno
fi
if [ -z "${NGINX_RS:-}" ]; then
    cargo build --release --quiet --bin nginx-rs
    NGINX_RS=target/release/nginx-rs
fi

# shellcheck source=bench/common.sh
. bench/common.sh

start_backends "$LOAD_CPU"

[ "$RECORD" = 1 ] && : >"$OUT/stat.txt"
for flavor in $ONLY; do
    dir="$WORK/$flavor"
    mkdir -p "$dir"
    log=""
    [ "$ACCESS_LOG" = 1 ] && log="access_log $dir/access.log combined;"
    main_conf "$dir" "$(keepalive_http "$UPSTREAM_KEEPALIVE" "$log")" "$flavor" >"$dir/nginx.conf"
    if [ "$flavor" = nginx ]; then bin=("$NGINX" -e stderr); else bin=("$NGINX_RS"); fi
    start_proxy "$CONNS" "${bin[@]}" -p "$dir" -c "$dir/nginx.conf"
    rec_pid=
    if [ "$RECORD" = 1 ]; then
        perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$target" -o "$dir/perf.data" \
            -- sleep "$DURATION" 2>/dev/null &
        rec_pid=$!
    fi
    read -r u0 k0 <<<"$(cpu_ticks "$pid")"
    taskset -c "$LOAD_CPU" wrk -t1 -c "$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PROXY_PORT/" >"$dir/wrk.txt"
    read -r u1 k1 <<<"$(cpu_ticks "$pid")"
    requests=$(awk '/requests in/ {print $1}' "$dir/wrk.txt")
    [ -n "$rec_pid" ] && { wait "$rec_pid" || true; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    {
        echo "== $flavor, $CONNS connections, $requests requests in ${DURATION}s"
        awk -v u=$((u1 - u0)) -v k=$((k1 - k0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN {
            printf "  CPU us/request: user %.1f, system %.1f\n", u / hz * 1e6 / n, k / hz * 1e6 / n }'
    } | if [ "$RECORD" = 1 ]; then tee -a "$OUT/stat.txt"; else cat; fi
    [ "$RECORD" = 1 ] || continue
    perf script -i "$dir/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/$flavor-c$CONNS.folded"
    inferno-flamegraph --title "$flavor, keepalive proxy, $CONNS connections" \
        <"$OUT/$flavor-c$CONNS.folded" >"$OUT/$flavor-c$CONNS.svg"
done
echo "profiles: $OUT/{nginx,nginx-rs}-c$CONNS.{svg,folded}, counts: $OUT/stat.txt"
