#!/usr/bin/env bash
# Side-by-side benchmark of nginx and nginx-rs (issue 7), on 127.0.0.1 only, bounded in time.
#
#   bench/run.sh                      # keepalive variant, 1/64/512 connections, 3 A/B pairs, 10 s each
#   VARIANT=walkthrough bench/run.sh  # the walkthrough's default.conf (names and port rewritten)
#   VARIANT=accesslog bench/run.sh    # keepalive with access_log in the combined format
#   VARIANT=body1m bench/run.sh       # keepalive, 1 MiB responses
#   VARIANT=slow10ms bench/run.sh     # keepalive, backends take 10 ms (examples/backend.rs)
#   VARIANT=https bench/run.sh        # keepalive, clients over TLS 1.3 (`listen ... ssl`, a
#                                     # self-signed RSA-2048 certificate made with openssl)
#   VARIANT=idle bench/run.sh         # memory per idle keepalive client connection (IDLE_N=10000,
#                                     # measured IDLE_SETTLE=1 s after the last one is set up)
#   AA=1 bench/run.sh                 # nginx against nginx: the noise floor
#   WORKERS=2 bench/run.sh            # scaling: worker_processes 2 on both sides
#   UPSTREAM_KEEPALIVE=1024 bench/run.sh  # `keepalive N` of the upstream (default 32, the issue's);
#                                     # above the connection count no upstream connection is ever
#                                     # closed, so 512 clients measure the proxy without connect churn
#   DURATION=5 PAIRS=1 CONNS="1 64" bench/run.sh
#   NGINX_RS=target/debug/nginx-rs bench/run.sh   # skip the release build
#   BACKEND_EXAMPLE=target/debug/examples/backend VARIANT=slow10ms ...   # same for the backend
#
# Three backends: one nginx with three listen ports and `return 200` (cheap, never the
# bottleneck). Proxies: nginx (`worker_processes 1`) as A, nginx-rs (`worker_processes 1`) as B,
# run in turn A B A B on the same generated config. On 2+ cores the proxy under test is pinned
# to PROXY_CPU and wrk plus the backends to LOAD_CPU (taskset), so the proxy that uses less CPU is
# not punished twice. Per run: requests/s, p50/p99 latency, p99.9 and max (from a wrk Lua
# `done` hook), errors, proxy CPU seconds
# (utime+stime from /proc over the proxy's processes, during the wrk run only), requests per proxy
# CPU-second, and memory (nginx: PSS summed over master and worker at the end of the run;
# nginx-rs: peak RSS, VmHWM, summed over its processes, and also its PSS at the end, as nginx's).
# Then per connection count the B/A ratios with median and spread over the pairs. Output: bench/results/<timestamp>/{runs.tsv,table.md,ratios.png}; the chart
# (bench/chart.py, python3 + matplotlib, installed with pip when missing) shows the ratios.
#
# WORKERS=N sets `worker_processes N` on both proxies and pins them to cores 0..N-1, the load to
# the next N cores; with fewer than 2N cores proxy and load share all cores (the per-CPU-second
# figures stay comparable, the latencies less so). wrk runs WRK_THREADS (default N) threads.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
PAIRS=${PAIRS:-3}
CONNS=${CONNS:-"1 64 512"}
VARIANT=${VARIANT:-keepalive}
UPSTREAM_KEEPALIVE=${UPSTREAM_KEEPALIVE:-32}
KA_LABEL=$UPSTREAM_KEEPALIVE
[ "$VARIANT" = walkthrough ] && KA_LABEL="as in the walkthrough config"
AA=${AA:-0}
WORKERS=${WORKERS:-1}
WRK_THREADS=${WRK_THREADS:-$WORKERS}
CORES=$(nproc)
if [ "$WORKERS" -gt 1 ]; then
    if [ "$CORES" -ge $((2 * WORKERS)) ]; then
        PROXY_CPU=${PROXY_CPU:-0-$((WORKERS - 1))}
        LOAD_CPU=${LOAD_CPU:-$WORKERS-$((2 * WORKERS - 1))}
    else
        echo "warning: $CORES cores for $WORKERS workers and the load: proxy and load share cores 0-$((CORES - 1))" >&2
        PROXY_CPU=${PROXY_CPU:-0-$((CORES - 1))}
        LOAD_CPU=${LOAD_CPU:-0-$((CORES - 1))}
    fi
fi
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-18000}
NGINX=${NGINX:-/usr/sbin/nginx}

IDLE_N=${IDLE_N:-10000}
IDLE_SETTLE=${IDLE_SETTLE:-1}
WORKER_CONNECTIONS=4096
RLIMIT=""
if [ "$VARIANT" = idle ]; then
    WORKER_CONNECTIONS=$((IDLE_N + 1024))
    RLIMIT="worker_rlimit_nofile $((2 * WORKER_CONNECTIONS));"
    ulimit -n $((IDLE_N + 1024)) 2>/dev/null || echo "warning: cannot raise ulimit -n to $((IDLE_N + 1024))" >&2
fi
PROXY_PORT=$((BASE_PORT + 80))
B1=$((BASE_PORT + 1)) B2=$((BASE_PORT + 2)) B3=$((BASE_PORT + 3))
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d /tmp/nginx-rs-bench.XXXXXX)
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT"

for tool in wrk taskset "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run .ci/run)" >&2; exit 1; }
done
if [ "$CORES" -lt 2 ]; then
    echo "warning: fewer than 2 cores; proxy and load share a core" >&2
    LOAD_CPU=$PROXY_CPU
fi

# shellcheck source=bench/common.sh
. bench/common.sh

# The proxy's http-level config for $VARIANT; $1 is the run's prefix (for the access log).
proxy_http() {
    local dir=$1 log=""
    [ "$VARIANT" = accesslog ] && log="access_log $dir/access.log combined;"
    case "$VARIANT" in
    keepalive | accesslog | body1m | slow10ms | idle)
        keepalive_http "$UPSTREAM_KEEPALIVE" "$log"
        ;;
    https)
        # TLS 1.3 on both: nginx 1.22's default protocols stop at TLSv1.2; current nginx's (and
        # nginx-rs's) include TLSv1.3, which clients then choose.
        keepalive_http "$UPSTREAM_KEEPALIVE" "ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;" ssl
        ;;
    walkthrough)
        # nginx cannot resolve host.docker.internal and port 80 may be taken: only those change.
        sed -e "s/host.docker.internal:5001/127.0.0.1:$B1/" \
            -e "s/host.docker.internal:5002/127.0.0.1:$B2/" \
            -e "s/host.docker.internal:5003/127.0.0.1:$B3/" \
            -e "s/listen 80;/listen 127.0.0.1:$PROXY_PORT;/" fixtures/walkthrough/default.conf
        ;;
    *)
        echo "unknown VARIANT $VARIANT (keepalive, walkthrough, accesslog, body1m, slow10ms, idle)" >&2
        exit 1
        ;;
    esac
}

# Memory in KiB of pid $1 and children: PSS sum ($2=pss) or VmHWM sum ($2=hwm).
mem_kib() {
    local total=0 p v
    for p in "$1" $(pgrep -P "$1" || true); do
        if [ "$2" = pss ]; then
            v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        else
            v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        fi
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# wrk latency like "1.23ms" to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}

# wrk prints p50..p99 with --latency; the tail beyond that comes from this hook (microseconds).
cat >"$WORK/tail.lua" <<'LUA'
done = function(summary, latency, requests)
    io.write(string.format("tail p99.9 %d max %d\n", latency:percentile(99.9), latency.max))
end
LUA

# --- backends ---
backends_conf
URL_PATH=/
[ "$VARIANT" = body1m ] && URL_PATH=/big.bin
SCHEME=http
if [ "$VARIANT" = https ]; then
    command -v openssl >/dev/null || { echo "missing openssl (for VARIANT=https)" >&2; exit 1; }
    SCHEME=https
    make_cert "$WORK"
fi
if [ "$VARIANT" = slow10ms ]; then
    # nginx cannot wait 10 ms before answering; the walkthrough's example backend can.
    if [ -z "${BACKEND_EXAMPLE:-}" ]; then
        cargo build --release --quiet --example backend
        BACKEND_EXAMPLE=target/release/examples/backend
    fi
    for p in $B1 $B2 $B3; do
        BACKEND_DELAY_MS=10 taskset -c "$LOAD_CPU" "$BACKEND_EXAMPLE" "$p" "b$p" 2>/dev/null &
        pids+=("$!")
    done
else
    taskset -c "$LOAD_CPU" "$NGINX" -e stderr -p "$WORK/backends" -c "$WORK/backends/nginx.conf" &
    pids+=("$!")
fi
wait_backends

# --- proxies ---
B_NAME=nginx-rs
if [ "$AA" = 1 ]; then
    B_NAME=nginx
elif [ -z "${NGINX_RS:-}" ]; then
    cargo build --release --quiet --bin nginx-rs
    NGINX_RS=target/release/nginx-rs
fi

# Runs proxy $1 (nginx|nginx-rs) as label $2 at $3 connections, pair $4; appends to runs.tsv.
run_one() {
    local flavor=$1 label=$2 conns=$3 pair=$4 dir="$WORK/$2-$3-$4" bin pid
    mkdir -p "$dir"
    main_conf "$dir" "$(proxy_http "$dir")" "$flavor" "$WORKERS" >"$dir/nginx.conf"
    if [ "$flavor" = nginx ]; then bin=("$NGINX" -e stderr); else bin=("$NGINX_RS"); fi
    taskset -c "$PROXY_CPU" "${bin[@]}" -p "$dir" -c "$dir/nginx.conf" 2>"$dir/stderr" &
    pid=$!
    if ! wait_port "$PROXY_PORT"; then
        echo "  $label ($flavor) did not serve: $(head -c 300 "$dir/stderr")" >&2
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        printf '%s\t%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n' "$label" "$flavor" "$conns" "$pair" >>"$OUT/runs.tsv"
        return 0
    fi
    # Warm up pools and caches, then measure.
    taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c "$conns" -d1s "$SCHEME://127.0.0.1:$PROXY_PORT$URL_PATH" >/dev/null
    local t0 t1 u k
    read -r u k <<<"$(cpu_ticks "$pid")"
    t0=$((u + k))
    taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c "$conns" -d"${DURATION}s" --latency -s "$WORK/tail.lua" \
        "$SCHEME://127.0.0.1:$PROXY_PORT$URL_PATH" >"$dir/wrk.txt"
    read -r u k <<<"$(cpu_ticks "$pid")"
    t1=$((u + k))
    local mem pss rps p50 p99 p999 max errors cpu
    # PSS for both too: nginx-rs started as root is two processes (supervisor and server), and a
    # sum of their peak RSS counts the binary's and libc's shared pages twice.
    pss=$(mem_kib "$pid" pss)
    if [ "$flavor" = nginx ]; then mem=$pss; else mem=$(mem_kib "$pid" hwm); fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$dir/wrk.txt")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$dir/wrk.txt")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$dir/wrk.txt")")
    p999=$(awk '$1 == "tail" {printf "%.3f", $3 / 1000}' "$dir/wrk.txt")
    max=$(awk '$1 == "tail" {printf "%.3f", $5 / 1000}' "$dir/wrk.txt")
    errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$dir/wrk.txt")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$flavor" "$conns" "$pair" \
        "$rps" "$p50" "$p99" "$errors" "$cpu" "$mem" "${p999:-NA}" "${max:-NA}" "$pss" >>"$OUT/runs.tsv"
    echo "  $label $flavor c=$conns pair=$pair: $rps req/s, p99 ${p99} ms, p99.9 ${p999} ms, max ${max} ms, cpu ${cpu} s, mem ${mem} KiB, errors $errors"
}

# Memory per idle keepalive connection: proxy PSS before and after IDLE_N clients that each made
# one request and stay connected (examples/idle_clients.rs). Appends to idle.tsv.
run_idle() {
    local flavor=$1 label=$2 pair=$3 dir="$WORK/idle-$2-$3" bin pid before after ready
    mkdir -p "$dir"
    main_conf "$dir" "$(proxy_http "$dir")" "$flavor" >"$dir/nginx.conf"
    if [ "$flavor" = nginx ]; then bin=("$NGINX" -e stderr); else bin=("$NGINX_RS"); fi
    taskset -c "$PROXY_CPU" "${bin[@]}" -p "$dir" -c "$dir/nginx.conf" 2>"$dir/stderr" &
    pid=$!
    if ! wait_port "$PROXY_PORT"; then
        echo "  $label ($flavor) did not serve: $(head -c 300 "$dir/stderr")" >&2
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    # One request first, so lazily allocated per-process state is in "before".
    curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" || true
    before=$(mem_kib "$pid" pss)
    taskset -c "$LOAD_CPU" "$IDLE_CLIENTS" "127.0.0.1:$PROXY_PORT" "$IDLE_N" >"$dir/idle.out" &
    local idle_pid=$!
    for _ in $(seq 600); do
        grep -q '^ready' "$dir/idle.out" 2>/dev/null && break
        sleep 0.1
    done
    ready=$(cat "$dir/idle.out")
    # Connections idle for a moment (nginx-rs parks them after 50-100 ms without a request).
    sleep "$IDLE_SETTLE"
    after=$(mem_kib "$pid" pss)
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local held=${ready#ready } per
    held=${held%% *}
    per=$(awk -v a="$after" -v b="$before" -v n="${held:-0}" 'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "NA" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$flavor" "$pair" "${held:-0}" "$before" "$after" "$per" >>"$OUT/idle.tsv"
    echo "  $label $flavor pair=$pair: ${held:-0} idle connections, PSS $before -> $after KiB, $per bytes/connection"
}

if [ "$VARIANT" = idle ]; then
    if [ -z "${IDLE_CLIENTS:-}" ]; then
        cargo build --release --quiet --example idle_clients
        IDLE_CLIENTS=target/release/examples/idle_clients
    fi
    printf 'label\tproxy\tpair\tconnections\tpss_before_kib\tpss_after_kib\tbytes_per_conn\n' >"$OUT/idle.tsv"
    echo "variant=idle connections=$IDLE_N pairs=$PAIRS A=nginx B=$B_NAME"
    for pair in $(seq "$PAIRS"); do
        run_idle nginx A "$pair"
        run_idle "$B_NAME" B "$pair"
    done
    awk -F'\t' -v b="$B_NAME" -v n="$IDLE_N" '
    NR == 1 { next }
    $7 != "NA" { v[$1] = v[$1] " " $7; if ($1 == "A") a[$3] = $7; else bb[$3] = $7 }
    function median(list,   x, k, i, j, t) {
        k = split(list, x, " "); if (k == 0) return "NA";
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
        return (k % 2) ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2;
    }
    END {
        r = ""; for (p in a) if ((p in bb) && a[p] > 0) r = r " " bb[p] / a[p];
        printf "%d idle keepalive connections; A = nginx, B = %s; PSS growth per connection.\n\n", n, b;
        print "| A bytes/conn | B bytes/conn | B/A (median) |";
        print "|---|---|---|";
        printf "| %s | %s | %s |\n", median(v["A"]), median(v["B"]), (r == "" ? "NA" : sprintf("%.2f", median(r)));
    }' "$OUT/idle.tsv" >"$OUT/table.md"
    echo
    cat "$OUT/table.md"
    echo
    echo "runs: $OUT/idle.tsv, table: $OUT/table.md"
    exit 0
fi

printf 'label\tproxy\tconns\tpair\trps\tp50_ms\tp99_ms\terrors\tcpu_s\tmem_kib\tp999_ms\tmax_ms\tpss_kib\n' >"$OUT/runs.tsv"
echo "variant=$VARIANT workers=$WORKERS duration=${DURATION}s pairs=$PAIRS conns=[$CONNS] A=nginx B=$B_NAME proxy cpu $PROXY_CPU, load cpu $LOAD_CPU"
for conns in $CONNS; do
    for pair in $(seq "$PAIRS"); do
        run_one nginx A "$conns" "$pair"
        run_one "$B_NAME" B "$conns" "$pair"
    done
done

# --- table: per connection count, medians and B/A ratios (median, min-max over pairs) ---
awk -F'\t' -v b="$B_NAME" -v variant="$VARIANT" -v ka="$KA_LABEL" -v dur="$DURATION" -v order="$CONNS" -v workers="$WORKERS" '
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ");
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    if (n == 0) return "NA";
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2;
}
function spread(list,   a, n, i, lo, hi) {
    n = split(list, a, " "); if (n == 0) return "NA";
    lo = hi = a[1]; for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
    return sprintf("%.2f-%.2f", lo, hi);
}
NR == 1 { next }
{
    key = $3 SUBSEP $4; c[$3] = 1;
    if ($5 == "NA") { bad[$3] = 1; next }
    rps[$1, key] = $5; p99[$1, key] = $7; cpu[$1, key] = $9; mem[$1, key] = $10; err[$1] += $8;
    eff = ($9 > 0) ? $5 * dur / $9 : 0; effv[$1, key] = eff;
    arps[$1, $3] = arps[$1, $3] " " $5; ap99[$1, $3] = ap99[$1, $3] " " $7;
    aeff[$1, $3] = aeff[$1, $3] " " eff; amem[$1, $3] = amem[$1, $3] " " $10;
    ap999[$1, $3] = ap999[$1, $3] " " $11; amax[$1, $3] = amax[$1, $3] " " $12;
    apss[$1, $3] = apss[$1, $3] " " $13;
}
END {
    printf "Variant `%s`, upstream keepalive %s, worker_processes %s, %ss per run; A = nginx, B = %s. Ratios are B/A per pair: median (min-max).\n\n", variant, ka, workers, dur, b;
    print "| conns | A req/s | B req/s | A req/CPU-s | B req/CPU-s | B/A req/CPU-s | A p99 ms | B p99 ms | B/A p99 | A p99.9 ms | B p99.9 ms | A max ms | B max ms | A mem KiB | B mem KiB | B PSS KiB |";
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
    nk = split(order, ks, " ");
    for (ki = 1; ki <= nk; ki++) {
        k = ks[ki];
        reff = ""; rp99 = "";
        for (kk in rps) {
            split(kk, parts, SUBSEP);
            if (parts[1] != "A" || parts[2] != k) continue;
            bk = "B" SUBSEP parts[2] SUBSEP parts[3];
            if (!(bk in rps)) continue;
            if (effv[kk] > 0) reff = reff " " effv[bk] / effv[kk];
            if (p99[kk] > 0) rp99 = rp99 " " p99[bk] / p99[kk];
        }
        note = (k in bad) ? " (some runs did not serve)" : "";
        printf "| %s%s | %.0f | %.0f | %.0f | %.0f | %s (%s) | %.2f | %.2f | %s (%s) | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f |\n", k, note,
            median(arps["A", k]), median(arps["B", k]), median(aeff["A", k]), median(aeff["B", k]),
            (reff == "" ? "NA" : sprintf("%.2f", median(reff))), spread(reff),
            median(ap99["A", k]), median(ap99["B", k]),
            (rp99 == "" ? "NA" : sprintf("%.2f", median(rp99))), spread(rp99),
            median(ap999["A", k]), median(ap999["B", k]), median(amax["A", k]), median(amax["B", k]),
            median(amem["A", k]), median(amem["B", k]), median(apss["B", k]);
    }
    printf "\nErrors: A %d, B %d.\n", err["A"], err["B"];
}' "$OUT/runs.tsv" >"$OUT/table.md"

# --- chart: bench/chart.py needs python3 + matplotlib (installed with pip when missing) ---
CHART=""
if command -v python3 >/dev/null; then
    if ! python3 -c "import matplotlib" 2>/dev/null; then
        python3 -m pip install --quiet matplotlib 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages matplotlib 2>/dev/null || true
    fi
    if python3 bench/chart.py "$OUT/runs.tsv" "$OUT/ratios.png" \
        "$B_NAME / nginx, variant $VARIANT, worker_processes $WORKERS, ${DURATION}s x $PAIRS pairs" >/dev/null; then
        CHART=", chart: $OUT/ratios.png"
    else
        echo "warning: no chart (bench/chart.py failed)" >&2
    fi
fi

echo
cat "$OUT/table.md"
echo
echo "runs: $OUT/runs.tsv, table: $OUT/table.md$CHART"
