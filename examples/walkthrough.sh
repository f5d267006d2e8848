#!/usr/bin/env bash
# The walkthrough without Docker or Python: three backends like its Flask app.py on
# 127.0.0.1:5001-5003, nginx-rs on its unmodified default.conf (port 80, so run as root), and
# `curl localhost` three times (one, two, three). Then it keeps serving until Ctrl-C, and stops
# what it started.
#
#   examples/walkthrough.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin nginx-rs --example backend

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# Waits until something accepts on 127.0.0.1:$1 (bash's /dev/tcp), at most 10 s.
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing accepts on port $1" >&2
    return 1
}

for backend in "5001 one" "5002 two" "5003 three"; do
    # shellcheck disable=SC2086 # "PORT ID" splits into the two arguments on purpose
    target/debug/examples/backend $backend &
    pids+=("$!")
done
for port in 5001 5002 5003; do wait_port "$port"; done

target/debug/nginx-rs -c fixtures/walkthrough/default.conf &
pids+=("$!")
wait_port 80

for _ in 1 2 3; do
    curl -s http://localhost/
    echo
done

echo "serving on http://localhost/ - Ctrl-C to stop"
wait
