#!/usr/bin/env bash
# compare.sh: redis-server vs flin-server, one command.
#
# Starts both servers on free loopback ports (AOF/fsync everysec on both), runs the same load
# against each, cell by cell and alternating which server goes first, and prints ops/s and
# server CPU per operation (utime+stime from /proc/PID/stat) side by side.
#
#   bench/compare.sh [--requests N] [--repeat R] [--loadgen] [--fsync always] [--json FILE] [--chart FILE.svg]
#
#   --requests N     requests per test and server in unpipelined cells (default 200000);
#                    pipelined cells use PIPELINED_FACTOR times as many
#   --repeat R       measure every test R times per server, alternating order, and report the
#                    median ops/s and CPU (default 1; 3 steadies numbers on a shared machine)
#   --loadgen        drive the load with flin-bench (checks every reply) instead of redis-benchmark
#   --fsync always   also run the SET c16 P1 cell with fsync on every write (both servers restarted)
#   --json FILE      also write the table as JSON (the input of `flin-bench chart`)
#   --chart FILE     also draw the table as an SVG chart: each cell's flin/redis ops/s ratio as
#                    a bar against a line at 1.0 (redis), both rates under it
#
# Environment:
#   CARGO_TARGET_DIR  where cargo builds (default: <repo>/target)
#   FLIN_SERVER_CMD   command line for the "flin" slot instead of the built flin-server, with
#                     {port}, {dir} and {fsync} (always|everysec) substituted, e.g. to test this
#                     script with two redis-servers:
#                     FLIN_SERVER_CMD="redis-server --bind 127.0.0.1 --port {port} --dir {dir} \
#                       --appendonly yes --appendfsync {fsync} --save ''"
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # die, free_port, wait_ping, stop_pids, ...

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TARGET=${CARGO_TARGET_DIR:-$REPO/target}
readonly FLIN_BENCH=$TARGET/release/flin-bench
readonly HOST=127.0.0.1
readonly VALUE_SIZE_BYTES=16
readonly KEYSPACE=100000
readonly PIPELINED_FACTOR=5
readonly START_TIMEOUT_SECS=10     # longest wait for a server to answer PING
readonly POLL_INTERVAL_SECS=0.1
readonly PORT_ATTEMPTS_MAX=100
readonly WARMUP_REQUESTS=20000     # unmeasured SETs sent to each server after it starts
# The matrix: clients:pipeline.
readonly CELLS=("1:1" "16:1" "16:16" "50:16" "1:64" "16:64")

requests=200000
repeat=1
loadgen=0
fsync_always=0
json_out=""
chart_out=""

while [[ $# -gt 0 ]]; do
    case $1 in
        --requests) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--requests needs a positive count"
                    requests=$2; shift 2 ;;
        --repeat) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--repeat needs a positive count"
                  repeat=$2; shift 2 ;;
        --loadgen) loadgen=1; shift ;;
        --fsync) [[ ${2:-} == always ]] || die "--fsync takes only 'always'"
                 fsync_always=1; shift 2 ;;
        --json) [[ -n ${2:-} ]] || die "--json needs a file"; json_out=$2; shift 2 ;;
        --chart) [[ -n ${2:-} ]] || die "--chart needs a file"; chart_out=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
done

# --- tools ------------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null \
    || ! command -v redis-cli >/dev/null; then
    apt_install redis-server redis-tools
fi

packages=(-p flin-bench)
[[ -z ${FLIN_SERVER_CMD:-} ]] && packages+=(-p flin-server)
echo "compare.sh: cargo build --release ${packages[*]} (target $TARGET)" >&2
(cd "$REPO" && cargo build --release "${packages[@]}" >&2) || die "build failed"
[[ -x $FLIN_BENCH ]] || die "no $FLIN_BENCH after the build"

CLK_TCK=$(getconf CLK_TCK)
readonly CLK_TCK

# --- servers ----------------------------------------------------------------------------------
WORK=$(mktemp -d -t flin-compare.XXXXXX)
redis_pid=""
flin_pid=""
redis_port=""
flin_port=""

stop_servers() {
    stop_pids "$redis_pid" "$flin_pid"
    redis_pid=""
    flin_pid=""
}
cleanup() { stop_servers; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_servers FSYNC: fresh data directories, both servers up and answering PING.
start_servers() {
    local fsync=$1
    local redis_dir=$WORK/redis-$fsync flin_dir=$WORK/flin-$fsync
    mkdir -p "$redis_dir" "$flin_dir"
    free_port redis_port
    free_port flin_port
    redis-server --bind "$HOST" --port "$redis_port" --appendonly yes --appendfsync "$fsync" \
        --save '' --dir "$redis_dir" >"$redis_dir.log" 2>&1 &
    redis_pid=$!
    if [[ -n ${FLIN_SERVER_CMD:-} ]]; then
        local cmd=${FLIN_SERVER_CMD//\{port\}/$flin_port}
        cmd=${cmd//\{dir\}/$flin_dir}
        cmd=${cmd//\{fsync\}/$fsync}
        bash -c "exec $cmd" >"$flin_dir.log" 2>&1 &
    else
        "$TARGET/release/flin-server" --dir "$flin_dir" --bind "$HOST" --port "$flin_port" \
            --fsync "$fsync" >"$flin_dir.log" 2>&1 &
    fi
    flin_pid=$!
    wait_ping redis-server "$redis_pid" "$redis_port" "$redis_dir.log"
    wait_ping flin "$flin_pid" "$flin_port" "$flin_dir.log"
    # A short unmeasured load on each, so the first cell does not pay for cold start
    # (AOF creation, page faults, first allocations).
    run_load "$redis_port" set 16 1 "$WARMUP_REQUESTS" >/dev/null
    run_load "$flin_port" set 16 1 "$WARMUP_REQUESTS" >/dev/null
    echo "compare.sh: redis pid $redis_pid port $redis_port, flin pid $flin_pid port $flin_port, fsync $fsync" >&2
}

# --- one measurement --------------------------------------------------------------------------
# run_load PORT TEST CLIENTS PIPELINE N: prints the ops/s of TEST (set|get).
run_load() {
    local port=$1 test=$2 clients=$3 pipeline=$4 n=$5 out
    if ((loadgen)); then
        local ratio=1:0
        [[ $test == get ]] && ratio=0:1
        out=$("$FLIN_BENCH" --addr "$HOST:$port" --clients "$clients" --pipeline "$pipeline" \
            --requests "$n" --value-size "$VALUE_SIZE_BYTES" --keyspace "$KEYSPACE" \
            --ratio "$ratio" --csv --quiet) || die "flin-bench failed against port $port"
    else
        out=$(redis-benchmark -h "$HOST" -p "$port" -t "$test" -d "$VALUE_SIZE_BYTES" \
            -r "$KEYSPACE" -n "$n" -c "$clients" -P "$pipeline" --csv) \
            || die "redis-benchmark failed against port $port"
    fi
    local rps
    rps=$(grep "^\"${test^^}\"," <<<"$out" | head -1 | cut -d, -f2 | tr -d '"')
    [[ -n $rps ]] || die "no ${test^^} result in: $out"
    echo "$rps"
}

# measure PID PORT TEST CLIENTS PIPELINE N: prints "ops/s cpu_us_per_op".
measure() {
    local pid=$1 port=$2 test=$3 clients=$4 pipeline=$5 n=$6 before after rps
    before=$(cpu_ticks "$pid")
    rps=$(run_load "$port" "$test" "$clients" "$pipeline" "$n")
    after=$(cpu_ticks "$pid")
    awk -v rps="$rps" -v t="$((after - before))" -v hz="$CLK_TCK" -v n="$n" \
        'BEGIN { printf "%s %.3f\n", rps, t * 1e6 / hz / n }'
}

rows=()   # "test|cell|fsync|redis_ops|flin_ops|redis_cpu|flin_cpu"

# run_cell INDEX CLIENTS PIPELINE FSYNC TESTS...: both servers, alternating who goes first
# (by cell and by repetition), medians of --repeat measurements.
run_cell() {
    local index=$1 clients=$2 pipeline=$3 fsync=$4 test round result
    shift 4
    local n=$requests
    ((pipeline > 1)) && n=$((requests * PIPELINED_FACTOR))
    for test in "$@"; do
        local redis_ops=() flin_ops=() redis_cpu=() flin_cpu=()
        echo "compare.sh: ${test^^} c$clients P$pipeline fsync $fsync, $n requests x $repeat" >&2
        for ((round = 0; round < repeat; round++)); do
            local order=(redis flin)
            (((index + round) % 2 == 1)) && order=(flin redis)
            local server
            for server in "${order[@]}"; do
                if [[ $server == redis ]]; then
                    result=$(measure "$redis_pid" "$redis_port" "$test" "$clients" "$pipeline" "$n")
                    redis_ops+=("${result% *}")
                    redis_cpu+=("${result#* }")
                else
                    result=$(measure "$flin_pid" "$flin_port" "$test" "$clients" "$pipeline" "$n")
                    flin_ops+=("${result% *}")
                    flin_cpu+=("${result#* }")
                fi
            done
        done
        rows+=("${test^^}|c$clients P$pipeline|$fsync|$(median "${redis_ops[@]}")|$(median "${flin_ops[@]}")|$(median "${redis_cpu[@]}")|$(median "${flin_cpu[@]}")")
    done
}

# --- the matrix -------------------------------------------------------------------------------
start_servers everysec
for i in "${!CELLS[@]}"; do
    run_cell "$i" "${CELLS[i]%:*}" "${CELLS[i]#*:}" everysec set get
done
stop_servers
if ((fsync_always)); then
    start_servers always
    run_cell 0 16 1 always set
    stop_servers
fi

# --- output -----------------------------------------------------------------------------------
tool=redis-benchmark
((loadgen)) && tool=flin-bench
echo
echo "load: $tool, $requests requests per unpipelined test (x$PIPELINED_FACTOR pipelined), ${VALUE_SIZE_BYTES}-byte values, $KEYSPACE keys, median of $repeat"
printf '%-5s %-9s %-9s %14s %14s %7s %10s %10s\n' test cell fsync "ops/s redis" "ops/s flin" ratio "CPU us/op" "CPU us/op"
printf '%-5s %-9s %-9s %14s %14s %7s %10s %10s\n' "" "" "" "" "" flin/red redis flin
for row in "${rows[@]}"; do
    IFS='|' read -r test cell fsync redis_ops flin_ops redis_cpu flin_cpu <<<"$row"
    awk -v t="$test" -v c="$cell" -v f="$fsync" -v r="$redis_ops" -v l="$flin_ops" \
        -v rc="$redis_cpu" -v lc="$flin_cpu" 'BEGIN {
            printf "%-5s %-9s %-9s %14.0f %14.0f %7.2f %10.2f %10.2f\n", t, c, f, r, l, (r > 0 ? l / r : 0), rc, lc }'
done

if [[ -n $json_out || -n $chart_out ]]; then
    json_file=${json_out:-$WORK/table.json}
    mkdir -p "$(dirname "$json_file")"
    {
        printf '{"tool":"%s","requests":%s,"repeat":%s,"value_size_bytes":%s,"keyspace":%s,"rows":[' \
            "$tool" "$requests" "$repeat" "$VALUE_SIZE_BYTES" "$KEYSPACE"
        separator=""
        for row in "${rows[@]}"; do
            IFS='|' read -r test cell fsync redis_ops flin_ops redis_cpu flin_cpu <<<"$row"
            awk -v sep="$separator" -v t="$test" -v c="$cell" -v f="$fsync" -v r="$redis_ops" \
                -v l="$flin_ops" -v rc="$redis_cpu" -v lc="$flin_cpu" 'BEGIN {
                    split(c, parts, /[ cP]+/)
                    printf "%s\n{\"test\":\"%s\",\"cell\":\"%s\",\"clients\":%d,\"pipeline\":%d,\"fsync\":\"%s\",", sep, t, c, parts[2], parts[3], f
                    printf "\"redis_ops_per_sec\":%.2f,\"flin_ops_per_sec\":%.2f,\"ratio\":%.4f,", r, l, (r > 0 ? l / r : 0)
                    printf "\"redis_cpu_us_per_op\":%.3f,\"flin_cpu_us_per_op\":%.3f}", rc, lc }'
            separator=","
        done
        printf '\n]}\n'
    } >"$json_file"
    [[ -n $json_out ]] && echo "compare.sh: wrote $json_out" >&2
    if [[ -n $chart_out ]]; then
        "$FLIN_BENCH" chart --json "$json_file" --out "$chart_out" || die "chart failed"
    fi
fi
