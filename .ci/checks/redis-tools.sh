#!/usr/bin/env bash
# Runs Debian's redis-cli and redis-benchmark against a freshly built flin-server and fails
# on any error they report; then stops the server with SHUTDOWN and checks it exits 0.
# Installs redis-tools when missing. Bounded waits throughout; the trap cleans up.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # wait_logged_port, stop_pids, ...
cd "$(dirname "$0")/../.."

readonly START_TIMEOUT_SECS=30   # the server logging that it is ready

work="$(mktemp -d)"
pid=""
cleanup() {
    stop_pids "$pid"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    if [ -s "$work/log" ]; then
        echo "--- server log" >&2
        cat "$work/log" >&2
    fi
    exit 1
}
# The helpers of bench/lib.sh fail through die.
die() { fail "$@"; }

if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
    apt_install redis-tools
fi

cargo build --release -p flin-server
bin="${CARGO_TARGET_DIR:-target}/release/flin-server"

# Port 0: the server picks a free port and logs it, so there is no race for one.
FLIN_LOG_LEVEL=info "$bin" --dir "$work/data" --port 0 --threads 2 >"$work/log" 2>&1 &
pid=$!
wait_logged_port server "$pid" "$work/log" port
echo "flin-server pid $pid on port $port"

cli() { timeout 30 redis-cli -p "$port" "$@"; }

expect() {
    local want="$1"
    shift
    local got
    got="$(cli "$@")" || fail "redis-cli $* exited non-zero"
    [ "$got" = "$want" ] || fail "redis-cli $*: got '$got', want '$want'"
}

expect PONG PING
expect OK SET greeting hello
expect hello GET greeting
expect 1 DBSIZE
expect 1 INCR counter
expect 5 INCRBY counter 4
expect OK SET temp v EX 100
expect 100 TTL temp
expect 2 DEL temp counter
expect 1 EXISTS greeting
expect "ERR unknown command 'NOSUCH', with args beginning with: 'x' " NOSUCH x
expect "ERR wrong number of arguments for 'get' command" GET
info="$(cli INFO)" || fail "INFO"
for field in redis_version: connected_clients: total_commands_processed: engine_segments: "db0:keys=1,expires=0,avg_ttl=0"; do
    grep -q "$field" <<<"$info" || fail "INFO lacks $field"
done
[ "$(cli CONFIG GET save | head -1)" = "save" ] || fail "CONFIG GET save"
[ "$(cli CONFIG GET appendonly | tail -1)" = "yes" ] || fail "CONFIG GET appendonly"
[ "$(cli COMMAND COUNT)" -gt 40 ] || fail "COMMAND COUNT"
# redis-cli's own pipe mode (RESP over stdin).
printf 'SET piped 1\r\nGET piped\r\n' | timeout 30 redis-cli -p "$port" --pipe >"$work/pipe" 2>&1 || fail "redis-cli --pipe: $(cat "$work/pipe")"
grep -q "errors: 0, replies: 2" "$work/pipe" || fail "redis-cli --pipe: $(cat "$work/pipe")"

echo "redis-benchmark"
timeout 300 redis-benchmark -p "$port" -t set,get,ping,mset -n 20000 -q >"$work/bench" 2>&1 || fail "redis-benchmark exited non-zero: $(cat "$work/bench")"
tr '\r' '\n' <"$work/bench" | grep "requests per second" | tee "$work/bench.summary"
if tr '\r' '\n' <"$work/bench" | grep -Eiq "error|warning"; then
    fail "redis-benchmark reported: $(tr '\r' '\n' <"$work/bench" | grep -Ei 'error|warning' | head -3)"
fi
# SET, GET, PING_INLINE, PING_MBULK, MSET.
[ "$(wc -l <"$work/bench.summary")" -eq 5 ] || fail "redis-benchmark did not finish every test"

echo "SHUTDOWN"
cli SHUTDOWN >/dev/null 2>&1 || true
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "server still running 30 s after SHUTDOWN"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "server exited with status $status after SHUTDOWN"
echo "redis-tools check passed"
