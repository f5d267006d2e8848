#!/usr/bin/env bash
# The floor under issue 7's throughput goals, measured: nginx, nginx-rs and two byte shuttles
# with no proxy logic at all (bench/floor.rs, over epoll and over io_uring), on 127.0.0.1 only.
#
#   bench/floor.sh                                       # 64 and 512 connections, 3 rounds, 5 s
#   CONNS=64 ROUNDS=5 NGINX_RS=target/pgo/use/release/nginx-rs bench/floor.sh
#
# Same setup as bench/run.sh's no-churn variant: three `return 200` backends in one nginx, the
# proxies with upstream `keepalive 1024` (the shuttles keep one upstream connection per client
# connection), the one under test pinned to PROXY_CPU, wrk and the backends to LOAD_CPU. Each
# round runs the four in turn: 2 s of warm-up, then DURATION seconds of wrk. Per run: CPU
# microseconds per request (user and system, from /proc), system calls per request (perf's
# raw_syscalls tracepoint on the serving process; "-" without perf), TCP segments per request
# (OutSegs of /proc/net/snmp: the whole host's, so wrk's and the backends' too), and requests
# per CPU-second against nginx's in the same round. Writes bench/latest/floor.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNS=${CONNS:-"64 512"}
ROUNDS=${ROUNDS:-3}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-18200}
NGINX=${NGINX:-/usr/sbin/nginx}
CLK_TCK=$(getconf CLK_TCK)
OUT=${OUT:-bench/latest/floor.md}
PROXY_PORT=$((BASE_PORT + 80))
B1=$((BASE_PORT + 1)) B2=$((BASE_PORT + 2)) B3=$((BASE_PORT + 3))
WORK=$(mktemp -d /tmp/nginx-rs-floor.XXXXXX)

for tool in wrk taskset "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
PERF=0
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
    PERF=1
else
    echo "perf cannot count raw_syscalls here: no system calls per request" >&2
fi
if [ -z "${NGINX_RS:-}" ]; then
    cargo build --release --quiet --bin nginx-rs
    NGINX_RS=target/release/nginx-rs
fi
cargo build --release --quiet --example floor
FLOOR=target/release/examples/floor

# shellcheck source=bench/common.sh
. bench/common.sh

start_backends "$LOAD_CPU"

PROXY_HTTP=$(keepalive_http 1024)

out_segs() { awk '/^Tcp:/ && $2 ~ /^[0-9]/ { print $12 }' /proc/net/snmp; }

# One run of $1 (nginx, nginx-rs, floor-epoll, floor-uring) at $2 connections, round $3:
# appends "conns round flavor requests user_us system_us syscalls_per_req segs_per_req".
run_one() {
    local flavor=$1 conns=$2 round=$3 dir="$WORK/$1" bin
    mkdir -p "$dir"
    case $flavor in
        nginx | nginx-rs)
            main_conf "$dir" "$PROXY_HTTP" "$flavor" >"$dir/nginx.conf"
            if [ "$flavor" = nginx ]; then bin=("$NGINX" -e stderr); else bin=("$NGINX_RS"); fi
            bin+=(-p "$dir" -c "$dir/nginx.conf")
            ;;
        floor-*)
            bin=("$FLOOR" "${flavor#floor-}" "127.0.0.1:$PROXY_PORT"
                "127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3")
            ;;
    esac
    start_proxy "$conns" "${bin[@]}"
    local stat_pid=
    if [ "$PERF" = 1 ]; then
        perf stat -x, -e raw_syscalls:sys_enter -p "$target" -o "$dir/perf.txt" \
            -- sleep "$DURATION" 2>/dev/null &
        stat_pid=$!
    fi
    local s0 s1 u0 k0 u1 k1
    s0=$(out_segs)
    read -r u0 k0 <<<"$(cpu_ticks "$pid")"
    taskset -c "$LOAD_CPU" wrk -t1 -c "$conns" -d"${DURATION}s" "http://127.0.0.1:$PROXY_PORT/" >"$dir/wrk.txt"
    read -r u1 k1 <<<"$(cpu_ticks "$pid")"
    s1=$(out_segs)
    [ -n "$stat_pid" ] && { wait "$stat_pid" || true; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local requests calls=-
    requests=$(awk '/requests in/ {print $1}' "$dir/wrk.txt")
    if grep -qE "Non-2xx|Socket errors" "$dir/wrk.txt"; then
        echo "$flavor had errors: $(grep -E "Non-2xx|Socket errors" "$dir/wrk.txt")" >&2
    fi
    [ "$PERF" = 1 ] && calls=$(awk -F, '/raw_syscalls/ {print $1}' "$dir/perf.txt")
    awk -v c="$conns" -v r="$round" -v f="$flavor" -v n="$requests" -v u=$((u1 - u0)) \
        -v k=$((k1 - k0)) -v hz="$CLK_TCK" -v calls="$calls" -v segs=$((s1 - s0)) 'BEGIN {
        sc = calls == "-" || calls == "" ? "-" : sprintf("%.2f", calls / n)
        printf "%s %s %s %d %.2f %.2f %s %.2f\n", c, r, f, n, u / hz * 1e6 / n, k / hz * 1e6 / n, sc, segs / n
    }' | tee -a "$WORK/rows"
}

for conns in $CONNS; do
    for round in $(seq "$ROUNDS"); do
        for flavor in nginx nginx-rs floor-epoll floor-uring; do
            run_one "$flavor" "$conns" "$round"
        done
    done
done

mkdir -p "$(dirname "$OUT")"
{
    echo "# The floor: CPU per request of proxies with and without proxy logic"
    echo
    echo "Made by \`bench/floor.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) cores, $(uname -r)),"
    echo "nginx-rs: \`$NGINX_RS\`, nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), ${DURATION} s per run, $ROUNDS rounds."
    echo "Medians over the rounds; \"per CPU-s\" is requests per CPU-second against nginx's in the"
    echo "same round (median, and the lowest and highest round)."
    awk '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function lo(list,   n, a, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
    function hi(list,   n, a, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
    {
        c = $1; r = $2; f = $3; key = c SUBSEP f
        if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
        cpu[c, r, f] = $5 + $6
        user[key] = user[key] " " $5; sys[key] = sys[key] " " $6; tot[key] = tot[key] " " ($5 + $6)
        if ($7 != "-") calls[key] = calls[key] " " $7
        segs[key] = segs[key] " " $8; rounds[c, r] = 1
    }
    END {
        split("nginx nginx-rs floor-epoll floor-uring", fl, " ")
        for (i = 1; i <= nc; i++) {
            c = order[i]
            printf "\n## %s connections\n\n", c
            print "| | CPU us/request | user | system | system calls/request | TCP segments/request | per CPU-s vs nginx |"
            print "|---|---|---|---|---|---|---|"
            for (j = 1; j <= 4; j++) {
                f = fl[j]; key = c SUBSEP f; ratios = ""
                for (rk in rounds) {
                    split(rk, p, SUBSEP)
                    if (p[1] == c && cpu[c, p[2], f] > 0) ratios = ratios " " sprintf("%.2f", cpu[c, p[2], "nginx"] / cpu[c, p[2], f])
                }
                printf "| %s | %.1f | %.1f | %.1f | %s | %.2f | %.2f (%.2f-%.2f) |\n", f, median(tot[key]),
                    median(user[key]), median(sys[key]), calls[key] == "" ? "-" : sprintf("%.2f", median(calls[key])),
                    median(segs[key]), median(ratios), lo(ratios), hi(ratios)
            }
        }
    }' "$WORK/rows"
    echo
    echo "Runs (connections, round, proxy, requests, user us, system us, calls, segments per request):"
    echo
    echo '```'
    cat "$WORK/rows"
    echo '```'
} >"$OUT"
cat "$OUT"
