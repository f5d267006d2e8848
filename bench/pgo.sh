#!/usr/bin/env bash
# A profile-guided (PGO) release build of nginx-rs: instrument, train on proxy traffic, rebuild.
#
#   bench/pgo.sh                    # writes target/pgo/use/release/nginx-rs
#   NGINX_RS=target/pgo/use/release/nginx-rs bench/run.sh   # then benchmark it
#
# 1. Builds nginx-rs with `-Cprofile-generate` (every crate, not only nginx-rs) in target/pgo/gen.
# 2. Trains it, 127.0.0.1 only, ~30 s: one worker in front of three nginx `return 200` backends,
#    under wrk: upstream keepalive at 1, 64 and 512 connections, the walkthrough's config (a new
#    upstream connection per request), the combined access log, browser-like request headers,
#    1 MiB responses, HTTPS (when openssl is there to make a certificate), HTTP/2 (when h2load
#    is there too) and keepalive clients that pause between requests (the dormant set). Stopped
#    with SIGQUIT, it writes its profile.
# 3. Merges the profile with an llvm-profdata that reads rustc's LLVM format (LLVM_PROFDATA, then
#    rustup's llvm-tools, then the newest /usr/lib/llvm-*/; when none does and apt-get is there,
#    the newest llvm-N package is installed), and builds again with `-Cprofile-use` in
#    target/pgo/use.
#
# RUSTFLAGS given to the script are kept (a `.cargo/config.toml` `rustflags` is not: cargo uses
# RUSTFLAGS instead); CARGO_PROFILE_RELEASE_* are passed through. What PGO changes is code layout
# and inlining, not behaviour: code the training never ran is optimized for size.
set -euo pipefail
cd "$(dirname "$0")/.."

NGINX=${NGINX:-/usr/sbin/nginx}
BASE_PORT=${BASE_PORT:-18200}
TRAIN_SECONDS=${TRAIN_SECONDS:-3}
PROXY_PORT=$((BASE_PORT + 80)) TLS_PORT=$((BASE_PORT + 443)) LOG_PORT=$((BASE_PORT + 81))
WALK_PORT=$((BASE_PORT + 82))
B1=$((BASE_PORT + 1)) B2=$((BASE_PORT + 2)) B3=$((BASE_PORT + 3))
OUTDIR=target/pgo
WORK=$(mktemp -d /tmp/nginx-rs-pgo.XXXXXX)
for tool in wrk "$NGINX" cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool (run .ci/run)" >&2; exit 1; }
done
# shellcheck source=bench/common.sh
. bench/common.sh

# --- 1. instrumented build ---
PROFILES=$WORK/profiles
mkdir -p "$PROFILES"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$PROFILES" CARGO_TARGET_DIR=$OUTDIR/gen \
    cargo build --release --quiet --bin nginx-rs
rm -f "$PROFILES"/*.profraw # build scripts ran instrumented too
# Started as root, the serving process is `nobody` and writes its profile here.
chmod 1777 "$PROFILES"
chmod 755 "$WORK"

# --- 2. training ---
start_backends
mkdir -p "$WORK/proxy"
chmod 755 "$WORK/proxy"

TLS=""
if command -v openssl >/dev/null; then
    make_cert "$WORK/proxy"
    TLS="server {
        listen 127.0.0.1:$TLS_PORT ssl;
        http2 on;
        ssl_certificate $WORK/proxy/cert.pem;
        ssl_certificate_key $WORK/proxy/key.pem;
        location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"
fi
main_conf "$WORK/proxy" "    upstream backends {
        server 127.0.0.1:$B1;
        server 127.0.0.1:$B2;
        server 127.0.0.1:$B3;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }
    server {
        listen 127.0.0.1:$LOG_PORT;
        access_log $WORK/proxy/access.log combined;
        location / { proxy_pass http://backends; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }
$(sed -e "s/host.docker.internal:5001/127.0.0.1:$B1/" -e "s/host.docker.internal:5002/127.0.0.1:$B2/" \
        -e "s/host.docker.internal:5003/127.0.0.1:$B3/" -e "s/listen 80;/listen 127.0.0.1:$WALK_PORT;/" \
        fixtures/walkthrough/default.conf)
    $TLS" nginx-rs >"$WORK/proxy/nginx.conf"
"$OUTDIR/gen/release/nginx-rs" -c "$WORK/proxy/nginx.conf" &
proxy=$!
pids+=("$proxy")
wait_port "$PROXY_PORT" || { echo "the instrumented nginx-rs did not start" >&2; exit 1; }

train() { wrk -t1 -d"${TRAIN_SECONDS}s" "$@" >/dev/null; }
train -c1 "http://127.0.0.1:$PROXY_PORT/"
train -c64 "http://127.0.0.1:$PROXY_PORT/"
train -c512 "http://127.0.0.1:$PROXY_PORT/"
train -c64 "http://127.0.0.1:$WALK_PORT/"
train -c64 "http://127.0.0.1:$LOG_PORT/"
train -c64 -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36" \
    -H "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8" -H "Accept-Language: en-US,en;q=0.9" \
    -H "Accept-Encoding: gzip, deflate, br" -H "Referer: http://127.0.0.1/" -H "Cookie: a=1; b=2" \
    "http://127.0.0.1:$PROXY_PORT/"
train -c16 "http://127.0.0.1:$PROXY_PORT/big.bin"
[ -n "$TLS" ] && train -c64 "https://127.0.0.1:$TLS_PORT/"
# HTTP/2 when h2load (Debian: nghttp2-client) is there: wrk speaks only HTTP/1.1.
if [ -n "$TLS" ] && command -v h2load >/dev/null; then
    h2load -n 30000 -c 16 -m 8 "https://127.0.0.1:$TLS_PORT/" >/dev/null
fi
# Keepalive clients that pause long enough to sleep in the dormant set between requests.
for _ in $(seq 20); do
    exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT"
    for _ in 1 2 3; do
        printf 'GET / HTTP/1.1\r\nHost: pgo\r\n\r\n' >&3
        sleep 0.05
    done
    exec 3>&-
done
kill -QUIT "$proxy"
wait "$proxy" || true

# --- 3. merge and the optimized build ---
host_llvm=$(rustc -vV | sed -n 's/^LLVM version: //p')
candidates=()
[ -n "${LLVM_PROFDATA:-}" ] && candidates+=("$LLVM_PROFDATA")
candidates+=("$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-profdata)
merge() {
    for c in "${candidates[@]}" $(ls -d /usr/lib/llvm-*/bin/llvm-profdata 2>/dev/null | sort -rV) llvm-profdata; do
        if command -v "$c" >/dev/null && "$c" merge -o "$WORK/merged.profdata" "$PROFILES"/*.profraw 2>/dev/null; then
            echo "merged with $c"
            return 0
        fi
    done
    return 1
}
if ! merge; then
    newest=$(apt-cache pkgnames llvm- 2>/dev/null | grep -E '^llvm-[0-9]+$' | sort -V | tail -1 || true)
    if [ -n "$newest" ] && command -v apt-get >/dev/null; then
        echo "no llvm-profdata reads rustc's LLVM $host_llvm profiles; installing $newest" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$newest" >/dev/null
    fi
    merge || {
        echo "no llvm-profdata reads rustc's LLVM $host_llvm profiles: set LLVM_PROFDATA or run" \
            "rustup component add llvm-tools" >&2
        exit 1
    }
fi
mkdir -p "$OUTDIR"
cp "$WORK/merged.profdata" "$OUTDIR/nginx-rs.profdata"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PWD/$OUTDIR/nginx-rs.profdata" CARGO_TARGET_DIR=$OUTDIR/use \
    cargo build --release --quiet --bin nginx-rs
echo "$OUTDIR/use/release/nginx-rs"
