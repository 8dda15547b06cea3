#!/usr/bin/env bash
# Sends every case of bench/compat/*.txt to a freshly built flin-server and to redis-server 7
# and fails on any reply that differs by a byte (flin-compat prints each difference).
# Installs redis-server when missing. Bounded waits throughout; the trap stops both servers.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # wait_logged_port, stop_pids, ...
cd "$(dirname "$0")/../.."

readonly START_TIMEOUT_SECS=30   # flin-server logging that it is ready

work="$(mktemp -d)"
flin_pid=""
redis_pid=""
cleanup() {
    stop_pids "$flin_pid" "$redis_pid"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for log in "$work/flin.log" "$work/redis.log"; do
        [ -s "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }
    done
    exit 1
}
# The helpers of bench/lib.sh fail through die.
die() { fail "$@"; }

command -v redis-server >/dev/null || apt_install redis-server
redis_version="$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"
case "$redis_version" in
    7.*) echo "redis-server $redis_version" ;;
    *)
        echo "FAIL: the cases describe Redis 7; redis-server is '$redis_version'. Install redis-server 7.x." >&2
        exit 1
        ;;
esac

cargo build --release -p flin-server -p flin-bench
target="${CARGO_TARGET_DIR:-target}/release"

# Commands of other data types (and introspection) that flin does not have: redis-server runs
# without them, so it answers them with the same unknown-command error as flin
# (bench/compat/unknown.txt).
removed=(LPUSH RPUSH LPOP LRANGE LLEN HSET HGET HGETALL HDEL SADD SMEMBERS SREM ZADD ZRANGE ZSCORE
    XADD XRANGE PFADD DEBUG)
rename_args=()
for c in "${removed[@]}"; do rename_args+=(--rename-command "$c" ""); done

# Starts redis-server and flin-server (extra arguments go to both); sets redis_pid,
# redis_port, flin_pid, flin_port.
start_servers() {
    # redis-server cannot pick its own port (0 disables TCP): try random ones until one binds.
    redis_port=""
    for _ in $(seq 20); do
        local port=$((20000 + RANDOM % 40000))
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize no \
            --dir "$work" "${rename_args[@]}" "$@" >"$work/redis.log" 2>&1 &
        redis_pid=$!
        for _ in $(seq 100); do
            grep -q "Ready to accept connections" "$work/redis.log" && break
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        if grep -q "Ready to accept connections" "$work/redis.log"; then
            redis_port="$port"
            break
        fi
        stop_pids "$redis_pid"
        redis_pid=""
    done
    [ -n "$redis_port" ] || fail "redis-server did not start on any of 20 ports"
    echo "redis-server pid $redis_pid on port $redis_port $*"

    # Port 0: flin-server picks a free port and logs it.
    rm -rf "$work/data"
    FLIN_LOG_LEVEL=info "$target/flin-server" --dir "$work/data" --port 0 --threads 2 "$@" \
        >"$work/flin.log" 2>&1 &
    flin_pid=$!
    flin_port=""
    wait_logged_port flin-server "$flin_pid" "$work/flin.log" flin_port
    echo "flin-server pid $flin_pid on port $flin_port $*"
}

stop_servers() {
    stop_pids "$flin_pid" "$redis_pid"
    flin_pid=""
    redis_pid=""
}

# Runs flin-compat over the given case files (and flin-compat options before them).
compare() {
    local status=0
    timeout 600 "$target/flin-compat" --flin "127.0.0.1:$flin_port" --redis "127.0.0.1:$redis_port" \
        "$@" || status=$?
    case "$status" in
        0) ;;
        1) fail "flin's replies differ from redis-server's (above)" ;;
        *) fail "flin-compat could not run (status $status)" ;;
    esac
}

start_servers
compare bench/compat/*.txt
stop_servers

# The same with a password on both servers: bench/compat/auth/ starts unauthenticated.
password=compat-secret
start_servers --requirepass "$password"
compare --password "$password" bench/compat/auth/*.txt
stop_servers
echo "redis-compat check passed"
