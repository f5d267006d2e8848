# Shared by the bench/ scripts (sourced, not run). Expects WORK (the scratch directory, removed
# on exit), and for the functions that start things NGINX, B1-B3 (the backends' ports),
# PROXY_PORT, PROXY_CPU and LOAD_CPU; WORKER_CONNECTIONS and RLIMIT may be set before main_conf.

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Waits until something accepts on 127.0.0.1:$1, at most 10 s.
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# The main config around http-level text $2 for a prefix $1; $3=nginx adds nginx's temp paths;
# $4 is worker_processes (default 1).
main_conf() {
    local dir=$1 http=$2 flavor=$3 temps="" workers=${4:-1}
    if [ "$flavor" = nginx ]; then
        temps="client_body_temp_path $dir/cb; proxy_temp_path $dir/pt; fastcgi_temp_path $dir/ft;
    uwsgi_temp_path $dir/ut; scgi_temp_path $dir/st;"
    fi
    cat <<CONF
daemon off;
master_process on;
worker_processes $workers;
pid $dir/nginx.pid;
${RLIMIT:-}
error_log $dir/error.log warn;
events {
    worker_connections ${WORKER_CONNECTIONS:-4096};
}
http {
    access_log off;
    $temps
$http
}
CONF
}

# The three backends' directory $WORK/backends: a 1 MiB html/big.bin and nginx.conf, one nginx
# listening on $B1, $B2 and $B3 with `return 200` on / and the file on /big.bin.
backends_conf() {
    mkdir -p "$WORK/backends/html"
    head -c 1048576 /dev/zero | tr '\0' 'x' >"$WORK/backends/html/big.bin"
    # nginx workers run as an unprivileged user when started as root: let them read the file.
    chmod 755 "$WORK" "$WORK/backends" "$WORK/backends/html"
    chmod 644 "$WORK/backends/html/big.bin"
    main_conf "$WORK/backends" "    server {
        listen 127.0.0.1:$B1;
        listen 127.0.0.1:$B2;
        listen 127.0.0.1:$B3;
        location / { return 200 \"Hello from backend\n\"; }
        location = /big.bin { root $WORK/backends/html; }
    }" nginx >"$WORK/backends/nginx.conf"
}

# Starts the backends of backends_conf, pinned to CPUs $1 when given, and waits for their ports.
start_backends() {
    backends_conf
    if [ -n "${1:-}" ]; then
        taskset -c "$1" "$NGINX" -e stderr -p "$WORK/backends" -c "$WORK/backends/nginx.conf" &
    else
        "$NGINX" -e stderr -p "$WORK/backends" -c "$WORK/backends/nginx.conf" &
    fi
    pids+=("$!")
    wait_backends
}

wait_backends() {
    for p in $B1 $B2 $B3; do wait_port "$p" || { echo "backends did not start" >&2; exit 1; }; done
}

# A self-signed certificate for localhost, valid a day: $1/cert.pem and $1/key.pem (readable by
# all: an nginx-rs started as root reads them after dropping to `user`). Needs openssl.
make_cert() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
    chmod 644 "$1/key.pem"
}

# The keepalive proxy's http-level config: the three backends with upstream `keepalive $1`, one
# server on PROXY_PORT with $2 in it (an access_log line, or nothing) and $3 after the listen
# address (`ssl`, or nothing).
keepalive_http() {
    cat <<CONF
    upstream backends {
        server 127.0.0.1:$B1;
        server 127.0.0.1:$B2;
        server 127.0.0.1:$B3;
        keepalive $1;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT${3:+ $3};
        ${2:-}
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
CONF
}

# utime and stime in ticks of pid $1 and its children, as "user system".
cpu_ticks() {
    local u=0 k=0 p f
    for p in "$1" $(pgrep -P "$1" || true); do
        if [ -r "/proc/$p/stat" ]; then
            # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
            read -r -a f <<<"$(sed 's/.*) //' "/proc/$p/stat")"
            u=$((u + f[11])) k=$((k + f[12]))
        fi
    done
    echo "$u $k"
}

# Starts "$@" pinned to PROXY_CPU (stderr to $dir/stderr, $dir named after the proxy), waits until
# it accepts on PROXY_PORT and warms it up with 2 s of wrk at $1 connections (the first
# argument, taken off). Sets pid (the started process) and target (the process that serves:
# nginx's worker, nginx-rs's child when it was started as root, otherwise pid itself).
start_proxy() {
    local conns=$1
    shift
    taskset -c "$PROXY_CPU" "$@" 2>"$dir/stderr" &
    pid=$!
    pids+=("$pid")
    wait_port "$PROXY_PORT" || {
        echo "$(basename "$dir") did not serve: $(head -c 300 "$dir/stderr")" >&2
        exit 1
    }
    taskset -c "$LOAD_CPU" wrk -t1 -c "$conns" -d2s "http://127.0.0.1:$PROXY_PORT/" >/dev/null
    target=$(pgrep -P "$pid" | head -1 || true)
    target=${target:-$pid}
}
