#!/usr/bin/env bash
# slow-reader.sh: the latency of well-behaved clients with and without clients that never read
# their replies, flin-server against redis-server.
#
# Starts both servers on free loopback ports (AOF/fsync everysec on both, default limits), and
# for each server and round runs flin-bench twice in the same minute: a baseline, then the same
# load beside --stalled N connections that each pipeline --stalled-requests GETs of a
# --stalled-value-size value and never read. Prints medians over rounds of ops/s, p50, p99 and
# max latency of the measured clients, and of how far the server's anonymous memory (RssAnon,
# sampled) rose during the run. Servers alternate who goes first each round.
#
#   bench/slow-reader.sh [--repeat R] [--requests N] [--clients C] [--stalled N]
#                        [--stalled-requests R] [--stalled-value-size BYTES] [--json FILE]
#
#   --repeat R               rounds per server (default 5)
#   --requests N             measured requests per run (default 200000)
#   --clients C              measured connections, unpipelined, SET:GET 1:1, 16-byte values
#                            (default 8)
#   --stalled N              never-reading connections in the second run of a round (default 4)
#   --stalled-requests R     GETs each of them pipelines (default 64)
#   --stalled-value-size B   bytes of the value they GET (default 1048576). Redis buffers every
#                            reply: it holds N x R x B bytes for them (256 MiB by default).
#   --json FILE              also write every run's numbers as JSON lines
#
# Environment: CARGO_TARGET_DIR (default <repo>/target); FLIN_SERVER_BIN to use an already
# built flin-server instead of building one.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # die, free_port, wait_ping, stop_pids, ...

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TARGET=${CARGO_TARGET_DIR:-$REPO/target}
readonly HOST=127.0.0.1
readonly START_TIMEOUT_SECS=10     # longest wait for a server to answer PING
readonly POLL_INTERVAL_SECS=0.1
readonly PORT_ATTEMPTS_MAX=100
readonly WARMUP_REQUESTS=50000
readonly RSS_SAMPLE_SECS=0.02

repeat=5
requests=200000
clients=8
stalled=4
stalled_requests=64
stalled_value_size=1048576
json_out=""

count() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive count"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --repeat) count "$1" "${2:-}"; repeat=$2; shift 2 ;;
        --requests) count "$1" "${2:-}"; requests=$2; shift 2 ;;
        --clients) count "$1" "${2:-}"; clients=$2; shift 2 ;;
        --stalled) count "$1" "${2:-}"; stalled=$2; shift 2 ;;
        --stalled-requests) count "$1" "${2:-}"; stalled_requests=$2; shift 2 ;;
        --stalled-value-size) count "$1" "${2:-}"; stalled_value_size=$2; shift 2 ;;
        --json) [[ -n ${2:-} ]] || die "--json needs a file"; json_out=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
done

for tool in redis-server redis-cli jq; do
    command -v "$tool" >/dev/null \
        || die "needs $tool (apt-get install redis-server redis-tools jq)"
done

packages=(-p flin-bench)
[[ -z ${FLIN_SERVER_BIN:-} ]] && packages+=(-p flin-server)
echo "slow-reader.sh: cargo build --release ${packages[*]} (target $TARGET)" >&2
(cd "$REPO" && cargo build --release "${packages[@]}" >&2) || die "build failed"
readonly FLIN_BENCH=$TARGET/release/flin-bench
readonly FLIN_SERVER=${FLIN_SERVER_BIN:-$TARGET/release/flin-server}
[[ -x $FLIN_BENCH && -x $FLIN_SERVER ]] || die "no $FLIN_BENCH or $FLIN_SERVER after the build"

WORK=$(mktemp -d -t flin-slow-reader.XXXXXX)
pids=()
cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A port pid   # by server: redis | flin

# Anonymous resident memory of a process, KiB (flin's mapped segment files left out).
anon_kib() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

free_port "port[redis]"
free_port "port[flin]"
mkdir -p "$WORK/redis" "$WORK/flin"
redis-server --bind "$HOST" --port "${port[redis]}" --appendonly yes --appendfsync everysec \
    --save '' --dir "$WORK/redis" >"$WORK/redis.log" 2>&1 &
pid[redis]=$!
pids+=("${pid[redis]}")
"$FLIN_SERVER" --dir "$WORK/flin" --bind "$HOST" --port "${port[flin]}" --fsync everysec \
    >"$WORK/flin.log" 2>&1 &
pid[flin]=$!
pids+=("${pid[flin]}")
wait_ping redis-server "${pid[redis]}" "${port[redis]}" "$WORK/redis.log"
wait_ping flin-server "${pid[flin]}" "${port[flin]}" "$WORK/flin.log"

# bench SERVER JSON [FLAGS...]: one flin-bench run; fails the script on any wrong reply.
# Samples the server's anonymous memory while it runs and prints how far it rose above what
# it was at the start, KiB (memory an allocator kept from an earlier run does not count).
bench() {
    local server=$1 json=$2 bench_pid start peak now
    shift 2
    start=$(anon_kib "${pid[$server]}")
    peak=$start
    "$FLIN_BENCH" --addr "$HOST:${port[$server]}" --clients "$clients" --pipeline 1 \
        --ratio 1:1 --value-size 16 --keyspace 100000 --quiet --json "$json" "$@" >/dev/null &
    bench_pid=$!
    while kill -0 "$bench_pid" 2>/dev/null; do
        now=$(anon_kib "${pid[$server]}")
        ((now > peak)) && peak=$now
        sleep "$RSS_SAMPLE_SECS"
    done
    wait "$bench_pid" || die "flin-bench failed against $server (${port[$server]})"
    echo $((peak - start))
}

for server in redis flin; do
    bench "$server" "$WORK/warmup.json" --requests "$WARMUP_REQUESTS" >/dev/null
done

stalled_flags=(--stalled-clients "$stalled" --stalled-requests "$stalled_requests"
    --stalled-value-size "$stalled_value_size")
: >"$WORK/runs.jsonl"
for ((round = 0; round < repeat; round++)); do
    order=(redis flin)
    ((round % 2 == 1)) && order=(flin redis)
    for server in "${order[@]}"; do
        echo "slow-reader.sh: round $((round + 1))/$repeat, $server" >&2
        for mode in baseline stalled; do
            flags=(--requests "$requests")
            [[ $mode == stalled ]] && flags+=("${stalled_flags[@]}")
            anon=$(bench "$server" "$WORK/run.json" "${flags[@]}")
            jq -c --arg server "$server" --arg mode "$mode" --argjson round "$round" \
                --argjson anon "$anon" \
                '{server: $server, mode: $mode, round: $round, ops: .total.ops_per_sec,
                  p50: .total.latency_us.p50, p99: .total.latency_us.p99,
                  max: .total.latency_us.max, anon_kib_growth: $anon}' \
                "$WORK/run.json" >>"$WORK/runs.jsonl"
        done
    done
done

echo
echo "measured: $clients clients, pipeline 1, SET:GET 1:1, 16-byte values, $requests requests per run;"
echo "stalled: $stalled connections x $stalled_requests pipelined GETs of $stalled_value_size bytes, never read;"
echo "median of $repeat rounds; latency of the measured clients in us; how far the server's"
echo "anonymous memory (RssAnon, sampled every ${RSS_SAMPLE_SECS}s) rose during the run"
printf '%-6s %-9s %10s %9s %9s %9s %9s\n' server run ops/s p50 p99 max "+anon MiB"
for server in redis flin; do
    for mode in baseline stalled; do
        jq -rs --arg server "$server" --arg mode "$mode" '
            def median: sort | .[(length - 1) / 2 | floor];
            map(select(.server == $server and .mode == $mode)) as $r
            | [$server, $mode, ($r | map(.ops) | median | round),
               ($r | map(.p50) | median), ($r | map(.p99) | median), ($r | map(.max) | median),
               ($r | map(.anon_kib_growth) | median / 1024 | round)]
            | @tsv' "$WORK/runs.jsonl" \
            | awk -F'\t' '{ printf "%-6s %-9s %10d %9.1f %9.1f %9.1f %9d\n", $1, $2, $3, $4, $5, $6, $7 }'
    done
done
if [[ -n $json_out ]]; then
    cp "$WORK/runs.jsonl" "$json_out"
    echo "slow-reader.sh: wrote $json_out" >&2
fi
